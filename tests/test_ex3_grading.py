"""Exercise 3's graded cells beyond the catalogue: one task's cell never costs another's points,
and a graded cell ends in seconds even for a quadratic redaction.

Right and wrong answers to each task, and whether the self-check and the hidden tests agree on
them, live in the one catalogue (`tests/catalogue/ex3_debugging.py`, run by `tests/_kit.py`).
Here a graded cell runs in a namespace made of the master's solution cells
(`tools/answer_key.py`) with one earlier task swapped for nbgrader's stub: a student who skipped
it must still get the later tasks' points.
"""

from __future__ import annotations

import threading

import dspy
import jupytext
import pytest
from answer_key import load_solutions  # tools/ is on sys.path: see conftest

from tests.catalogue.ex3_debugging import MASTER, REDACT

SOLUTIONS = ("tracer", "redact", "bottleneck")


def graded_cells() -> dict[str, str]:
    """grade_id -> source of each graded test cell of the master (hidden tests included)."""
    from tests._kit import MASTERS

    cells = jupytext.read(MASTERS / f"{MASTER}.py", fmt="py:percent").cells
    return {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
    }


def _namespace(blank: tuple[str, ...] = ()) -> dict:
    """The master's imports, program and solutions; the tasks in `blank` as the release's stub."""
    solved = [g for g in SOLUTIONS if g not in blank]
    namespace = vars(load_solutions(MASTER, *solved, definitions=["DraftAndReview"]))
    if blank:
        namespace.update(vars(load_solutions(MASTER, *blank, blank=True)))
    return {**namespace, "__name__": "__main__"}


def passes(grade_id: str, namespace: dict) -> bool:
    """Does graded cell `grade_id` run without an exception (nbgrader: full points)?"""
    try:
        with dspy.context(adapter=dspy.JSONAdapter()):  # as `wb.setup()` configures it
            exec(compile(graded_cells()[grade_id], f"<{grade_id}>", "exec"), dict(namespace))
    except Exception:
        return False
    return True


def test_the_graded_tasks_are_the_three_core_ones() -> None:
    assert set(graded_cells()) == {"test_tracer", "test_redact", "test_bottleneck"}


@pytest.mark.parametrize(
    ("blank", "later"),
    [
        (("tracer",), ("test_redact", "test_bottleneck")),
        (("redact",), ("test_bottleneck",)),
        (("tracer", "redact"), ("test_bottleneck",)),
    ],
)
def test_an_unfinished_task_does_not_cost_a_later_one(blank, later) -> None:
    namespace = _namespace(blank)
    for grade_id in later:
        assert passes(grade_id, namespace), f"{grade_id} failed with {blank} left blank"
    own = {"tracer": "test_tracer", "redact": "test_redact"}
    assert not any(passes(own[task], namespace) for task in blank), "a blank task scored"


def test_a_quadratic_redaction_fails_its_cell_within_the_graders_bound() -> None:
    # the grader stops a cell at 120 s; a quadratic submission must fail in seconds, not hang
    quadratic = next(s for s in REDACT if s.name.startswith("Unicode addresses but quadratic"))
    namespace = _namespace()
    exec(compile(quadratic.source, "<submission>", "exec"), namespace)
    result: list[bool] = []
    worker = threading.Thread(
        target=lambda: result.append(passes("test_redact", namespace)), daemon=True
    )
    worker.start()
    worker.join(120)
    assert result == [False], "the graded cell did not finish within the grader's 120 s"
