"""Every master's graded tasks are graded each on its own, as nbgrader's autograder runs them.

For each graded task of each master, `tests/_kit.py` runs the notebook as the autograder runs a
student's: every other task left as the release's stub (core and optional), this one solved as
in the master, a cell that raises does not stop the next. This task's graded cell must pass (no
task's points depend on another task's answer), and every other graded cell must fail (a blank
task scores nothing, whatever else is solved).
Whether a task's self-check and hidden tests agree, on the master's answer, the stub and the
catalogue's submissions, is `tests/test_agreement.py`'s. A seventh master is covered unwritten.
"""

from __future__ import annotations

import pytest

from tests._kit import MASTERS, code_cells, graded_tasks, kernel

STEMS = [p.stem for p in sorted(MASTERS.glob("0[1-9]_*.py"))]
pytestmark = pytest.mark.sim


def _cases() -> list:
    return [
        pytest.param(stem, task, id=f"{stem}:{task}")
        for stem in STEMS
        for task in graded_tasks(code_cells(stem))
    ]


@pytest.mark.parametrize(("stem", "task"), _cases())
def test_only_the_solved_task_scores(stem: str, task: str) -> None:
    cells = code_cells(stem)
    tests = {t: graded.grade_id for t, (_, _, graded) in graded_tasks(cells).items()}
    others = {c.grade_id for c in cells if c.is_solution and c.grade_id} - {task}
    last = max((c for c in cells if c.grade_id in tests.values()), key=lambda c: c.index)
    with kernel(stem, blank=others, through=last.grade_id) as notebook:
        own = notebook.ran(tests[task])
        assert own.error is None, (
            f"{stem}: {tests[task]} lost its points with only {task} solved: {own.error!r}"
        )
        for other, grade_id in tests.items():
            if other == task:
                continue
            assert notebook.ran(grade_id).error is not None, (
                f"{stem}: {grade_id} passed with {other} left blank (a blank task scored)"
            )


def test_a_notebook_run_here_leaves_logging_as_it_was() -> None:
    # Exercise 5's setup quietens the service's logger for its kernel; run in this process, that
    # must end with the notebook, or a later test's logs vanish depending on test order.
    import logging

    service = logging.getLogger("dspy_workbook.serving")
    root_handlers = logging.getLogger().handlers[:]
    before = (service.level, service.handlers[:], service.propagate, service.disabled)
    with kernel("05_deployment", until="request_model") as notebook:
        assert notebook.namespace["logging"].getLogger(service.name).level == logging.CRITICAL
    assert (service.level, service.handlers, service.propagate, service.disabled) == before
    assert logging.getLogger().handlers == root_handlers
