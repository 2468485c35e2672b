"""Drive a program with a stream of questions, with a progress bar that is quiet outside Jupyter."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..progress import track  # the workbook's progress bar: a widget in JupyterLab, silent in CI

__all__ = ["fresh_cache", "run_workload", "workload_questions"]


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


@contextlib.contextmanager
def fresh_cache() -> Iterator[Any]:
    """DSPy's cache, empty and in memory only, for the duration of the block (then the old one).

    A demo that shows what the cache does — misses first, hits on repeats — measures the same
    thing every time it runs, instead of hits only once an earlier run (or an earlier session, via
    the disk cache) has answered everything.
    """
    import dspy
    from dspy.clients.cache import Cache

    with dspy._cache_lock:
        previous = dspy.__dict__.get("cache")
    if previous is None:
        previous = dspy.cache  # builds the default cache, as DSPy does on first use
    fresh = Cache(
        enable_disk_cache=False,
        enable_memory_cache=True,
        disk_cache_dir="",
        disk_size_limit_bytes=0,
        memory_max_entries=10_000,
    )
    with dspy._cache_lock:
        dspy.cache = fresh
    try:
        yield fresh
    finally:
        with dspy._cache_lock:
            dspy.cache = previous
