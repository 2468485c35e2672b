"""Drive a program with a stream of questions, with a progress bar that is quiet outside Jupyter."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..progress import track  # the workbook's progress bar: a widget in JupyterLab, silent in CI

__all__ = ["run_workload", "workload_questions"]


def workload_questions(n: int, pairs: Sequence[tuple[str, str]] | None = None) -> list[str]:
    """`n` labelled questions, cycling through the set in a fixed order."""
    from ._labels import labelled_pairs

    pool = [q for q, _ in (pairs or labelled_pairs())]
    return [pool[i % len(pool)] for i in range(n)]


def run_workload(
    program: Callable[..., Any],
    questions: Sequence[str],
    *,
    before: Callable[[int], None] | None = None,
    desc: str = "predictions",
) -> list[Any]:
    """Call `program(question=q)` for each question; `before(i)` runs first (inject faults there).

    A failing prediction is kept as its exception (the collector records it); the loop goes on.
    """
    results = []
    for i, question in enumerate(track(questions, desc)):
        if before is not None:
            before(i)
        try:
            results.append(program(question=question))
        except Exception as exc:  # a monitored failure, not a reason to stop the workload
            results.append(exc)
    return results
