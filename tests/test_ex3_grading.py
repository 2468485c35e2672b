"""Exercise 3's graded cells beyond the catalogue: one task's cell never costs another's points,
and a graded cell ends in seconds even for a quadratic redaction.

Right and wrong answers to each task, and whether the self-check and the hidden tests agree on
them, live in the one catalogue (`tests/catalogue/ex3_debugging.py`, run by `tests/_kit.py`);
every task graded with all the others blank is `tests/test_graded_cells.py`'s. Here the kit runs
the master as the autograder runs a student's notebook, with some earlier tasks left as the
release's stub: a student who skipped them must still get the later tasks' points.
"""

from __future__ import annotations

import threading

import pytest

from tests._kit import code_cells, kernel
from tests.catalogue.ex3_debugging import MASTER, REDACT


def test_the_graded_tasks_are_the_three_core_ones() -> None:
    graded = {c.grade_id for c in code_cells(MASTER) if c.is_graded}
    assert graded == {"test_tracer", "test_redact", "test_bottleneck"}


# (("tracer", "redact"), ("test_bottleneck",)): tests/test_graded_cells.py, Task 3 alone
@pytest.mark.sim
@pytest.mark.parametrize(
    ("blank", "later"),
    [
        (("tracer",), ("test_redact", "test_bottleneck")),
        (("redact",), ("test_bottleneck",)),
    ],
)
def test_an_unfinished_task_does_not_cost_a_later_one(blank, later) -> None:
    with kernel(MASTER, blank=blank, through="test_bottleneck") as notebook:
        for grade_id in later:
            error = notebook.ran(grade_id).error
            assert error is None, f"{grade_id} failed with {blank} left blank: {error!r}"
        own = [notebook.ran(f"test_{task}") for task in blank]
        assert all(run.error is not None for run in own), "a blank task scored"


@pytest.mark.sim
def test_a_quadratic_redaction_fails_its_cell_within_the_graders_bound() -> None:
    # the grader stops a cell at 120 s; a quadratic submission must fail in seconds, not hang
    quadratic = next(s for s in REDACT if s.name.startswith("Unicode addresses but quadratic"))
    with kernel(MASTER, replace={"redact": quadratic.source}, until="test_redact") as notebook:
        graded = notebook.cell("test_redact").source
        result: list[bool] = []

        def grade() -> None:
            try:
                notebook.run(graded, "<test_redact>")
            except Exception:
                result.append(False)
            else:
                result.append(True)

        worker = threading.Thread(target=grade, daemon=True)
        worker.start()
        worker.join(120)
    assert result == [False], "the graded cell did not finish within the grader's 120 s"
