"""The grading preprocessor runs what can change a score, within the grading time limits.

Small notebooks run through `GradingExecute` in this process (a real kernel each, no sandbox:
`tests/test_grading_sandbox.py` covers it): cells after the last graded one are not run, a
notebook without graded cells starts no kernel, a cell past its limit says which limit stopped
it, and one student's notebooks share one bound: once it is used up, their remaining graded
cells score zero while other students are unaffected.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import nbformat
import pytest
from nbformat import NotebookNode
from nbgrader.converters import Autograde
from nbgrader.coursedir import CourseDirectory
from nbgrader.utils import determine_grade

from dspy_workbook.grading.execute import GradingExecute, last_graded_cell

pytestmark = pytest.mark.slow  # a real kernel per notebook


def _notebook(*cells: tuple[str, int | None]) -> NotebookNode:
    """Code cells from (source, points); points given: a graded (test) cell."""
    nb = nbformat.v4.new_notebook()
    for index, (source, points) in enumerate(cells):
        cell = nbformat.v4.new_code_cell(source)
        if points is not None:
            cell.metadata["nbgrader"] = {
                "grade": True,
                "grade_id": f"test_{index}",
                "points": points,
                "locked": True,
                "schema_version": 3,
                "solution": False,
                "task": False,
            }
        nb.cells.append(cell)
    return nb


def _run(
    nb: NotebookNode,
    folder: Path,
    student: str | None = None,
    run: object = None,
    **traits: object,
) -> None:
    """Grade `nb` as `student`'s notebook, in grading run `run` (an nbgrader converter)."""
    resources: dict = {"metadata": {"path": str(folder)}}
    if student is not None:
        resources["nbgrader"] = {"student": student, "assignment": "ch07", "notebook": "nb"}
    GradingExecute(parent=run, sandbox="off", **traits).preprocess(nb, resources)


def _grading_run(tmp_path: Path) -> Autograde:
    """One `nbgrader autograde` (or one Formgrader click): its students' time is counted anew."""
    return Autograde(coursedir=CourseDirectory(root=str(tmp_path)))


def _errors(cell: NotebookNode) -> list[tuple[str, str]]:
    return [(o.ename, o.evalue) for o in cell.outputs if o.output_type == "error"]


def _score(cell: NotebookNode) -> float:
    return determine_grade(cell, logging.getLogger("test"))[0]


def test_cells_after_the_last_graded_cell_are_not_run(tmp_path: Path) -> None:
    nb = _notebook(
        ("x = 21", None),
        ("assert x * 2 == 42", 1),
        ("open('after.txt', 'w').write('ran')", None),  # going further, check_all(): no points
        ("raise SystemExit('a later cell ran')", None),
    )
    assert last_graded_cell(nb) == 1
    _run(nb, tmp_path)
    assert _score(nb.cells[1]) == 1, _errors(nb.cells[1])
    assert not (tmp_path / "after.txt").exists(), "a cell after the last graded one was run"
    assert nb.cells[2].outputs == [] and nb.cells[3].outputs == []


def test_a_notebook_without_graded_cells_is_not_run(tmp_path: Path) -> None:
    nb = _notebook(("open('ran.txt', 'w').write('ran')", None))
    _run(nb, tmp_path)
    assert not (tmp_path / "ran.txt").exists() and nb.cells[0].outputs == []


def test_a_cell_past_the_cell_limit_says_so_and_scores_zero(tmp_path: Path) -> None:
    nb = _notebook(("import time\ntime.sleep(120)", 2), ("assert True", 1))
    _run(nb, tmp_path, timeout=2)
    # The interrupt shows as the kernel's KeyboardInterrupt, then the limit's own error.
    error = _errors(nb.cells[0])[-1]
    assert error[0] == "CellTimeoutError" and "more than 2 s" in error[1], error
    assert _score(nb.cells[0]) == 0 and _score(nb.cells[1]) == 1  # the next cell still runs


def test_one_students_notebooks_share_one_time_bound(tmp_path: Path) -> None:
    student, other = f"hangs-{uuid.uuid4().hex[:6]}", f"fine-{uuid.uuid4().hex[:6]}"
    run = _grading_run(tmp_path)
    limits = {"timeout": 30, "student_seconds": 3}
    first = _notebook(("import time\ntime.sleep(120)", 2))
    _run(first, tmp_path, student, run, **limits)
    error = _errors(first.cells[0])[-1]
    assert error[0] == "GradingTimeUsedUp" and "grading time (3 s in all)" in error[1], error

    later = _notebook(("open('ran.txt', 'w').write('ran')", None), ("assert True", 1))
    _run(later, tmp_path, student, run, **limits)
    assert not (tmp_path / "ran.txt").exists(), "the student's time was up, yet a cell ran"
    assert [e[0] for e in _errors(later.cells[1])] == ["GradingTimeUsedUp"]
    assert _score(later.cells[1]) == 0, "a graded cell that was not run must score zero"

    theirs = _notebook(("open('ran.txt', 'w').write('ran')", None), ("assert True", 1))
    _run(theirs, tmp_path, other, run, **limits)
    assert (tmp_path / "ran.txt").exists() and _score(theirs.cells[1]) == 1

    # Grading the same student again (a new `nbgrader autograde`, or Formgrader's button in the
    # same server) starts their time afresh.
    (tmp_path / "ran.txt").unlink()
    again = _notebook(("open('ran.txt', 'w').write('ran')", None), ("assert True", 1))
    _run(again, tmp_path, student, _grading_run(tmp_path), **limits)
    assert (tmp_path / "ran.txt").exists() and _score(again.cells[1]) == 1
