"""The instructor's commands, run exactly as the README writes them, from a plain shell.

`make grade`, `make feedback` and `make grades.csv` are run with a PATH that does not contain the
virtualenv (nbgrader shells out to `alembic` through PATH; the Makefile must take care of it) and
with no `WORKBOOK_*` settings. The course is a small one of its own (`COURSE=`), whose notebook
records which backend the grading kernel got: grading must run on the simulated model although
nothing in the grader's environment says so (it is chosen inside `nbgrader_config.py`, for
autograde's kernels only).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.slow

ASSIGNMENT = "ch07"


def _course(tmp: Path) -> Path:
    """A course with one notebook: a solution cell and a 2-point test of the grading backend."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "name": "python3",
        }
    }
    answer = nbformat.v4.new_code_cell(
        "import os\n### BEGIN SOLUTION\nbackend = os.environ.get('WORKBOOK_LM')\n### END SOLUTION"
    )
    answer.metadata["nbgrader"] = {
        "grade": False,
        "grade_id": "answer",
        "locked": False,
        "schema_version": 3,
        "solution": True,
        "task": False,
    }
    test = nbformat.v4.new_code_cell("assert backend == 'sim', backend")
    test.metadata["nbgrader"] = {
        "grade": True,
        "grade_id": "test_backend",
        "locked": True,
        "points": 2,
        "schema_version": 3,
        "solution": False,
        "task": False,
    }
    nb.cells = [answer, test]
    source = tmp / "course" / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    nbformat.write(nb, source / "probe.ipynb")
    return tmp / "course"


def _plain_shell_env() -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WORKBOOK_", "VIRTUAL_ENV", "PYTHONPATH"))
    }
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)
    return env


def _make(root: Path, target: str, course: Path) -> str:
    result = subprocess.run(
        ["make", "--no-print-directory", target, f"COURSE={course}"],
        cwd=root,
        env=_plain_shell_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"make {target} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout + result.stderr


def test_grade_feedback_and_grades_csv_work_from_a_plain_shell(root: Path, tmp_path: Path) -> None:
    course = _course(tmp_path)
    _make(root, "release", course)
    released = json.loads((course / "release" / ASSIGNMENT / "probe.ipynb").read_text())
    assert "BEGIN SOLUTION" not in json.dumps(released)
    for student, notebook in {
        "ada": course / "source" / ASSIGNMENT / "probe.ipynb",
        "bob": course / "release" / ASSIGNMENT / "probe.ipynb",
    }.items():
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        folder.joinpath("probe.ipynb").write_bytes(notebook.read_bytes())

    _make(root, "grade", course)
    _make(root, "feedback", course)
    _make(root, "grades.csv", course)

    rows = {row["student_id"]: row for row in csv.DictReader((course / "grades.csv").open())}
    assert float(rows["ada"]["score"]) == 2.0, (
        "the grading kernel did not run on the simulated model"
    )
    assert float(rows["bob"]["score"]) == 0.0
    for student in ("ada", "bob"):
        page = (course / "feedback" / student / ASSIGNMENT / "probe.html").read_text()
        assert "Score:" in page
