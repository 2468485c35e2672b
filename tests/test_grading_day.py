"""The instructor's grading day, run as the README writes it, on a synthetic class.

A probe course (one notebook, two tasks, hidden tests; `tools/gradeday/probe.py`) is released with
`make release COURSE=…`, a class of seven submissions arrives as an LMS zip, and
`tools/grade_class.py` collects, grades (two students at once), writes feedback and exports the
grades, from a shell whose PATH does not contain the virtualenv. Each student gets the expected
score and a line in the log that says what happened; the whole run is bounded; the gradebook holds
one consistent submission per student; hidden tests never reach the release, and feedback leaves
them out when asked to.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tools.gradeday.autograde import autograde_class
from tools.gradeday.probe import (
    ASSIGNMENT,
    HIDDEN_MARKER,
    MAX_SCORE,
    NOTEBOOK,
    SOLUTIONS,
    probe_course,
    submission,
)

pytestmark = pytest.mark.slow

HANG = "import time\nwhile True:\n    time.sleep(0.1)\n"
# student -> (answers, edited tests, expected score, what their log line must say)
CLASS = {
    "complete": (SOLUTIONS, None, 3.0, r"\bok$"),
    "blank": ({}, None, 0.0, r"double NotImplementedError"),
    "partial": ({"double": SOLUTIONS["double"]}, None, 2.0, r"test_greet"),
    "hangs": ({"double": HANG, "greet": SOLUTIONS["greet"]}, None, 1.0, r"double timed out"),
    "importerror": (
        {
            "double": "import module_that_is_not_there\n" + SOLUTIONS["double"],
            "greet": SOLUTIONS["greet"],
        },
        None,
        1.0,
        r"double ModuleNotFoundError",
    ),
    # `x + 2` passes the visible test (2 + 2 == 4) but not the hidden one; the edited test cell
    # that would have hidden that is put back by nbgrader.
    "editedtest": (
        {"double": "def double(x):\n    return x + 2\n"},
        {"test_double": "assert True"},
        0.0,
        r"edited read-only cell\(s\) test_double.*restores",
    ),
    "notjson": (None, None, 0.0, r"probe.ipynb is not a valid notebook"),
}


def _plain_shell_env() -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WORKBOOK_SANDBOX", "VIRTUAL_ENV", "PYTHONPATH"))
    }
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)
    return env


def _run(root: Path, *command: str, timeout: float = 300) -> str:
    result = subprocess.run(
        list(command),
        cwd=root,
        env=_plain_shell_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{output[-4000:]}"
    return output


def _lms_zip(course: Path, folder: Path) -> Path:
    """The class as an LMS download: `<student>_<user id>_<file id>_probe.ipynb` in one zip."""
    release = course / "release" / ASSIGNMENT / NOTEBOOK
    archive = folder / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n, (student, (answers, tests, _, _)) in enumerate(CLASS.items()):
            text = (
                '{"cells": [ {"cell_type": "code", '
                if answers is None
                else (submission(release, answers, tests))
            )
            zf.writestr(f"{student}_{1000 + n}_{77000 + n}_probe.ipynb", text)
    return archive


@pytest.fixture(scope="module")
def grading_day(root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("grading-day")
    course = probe_course(tmp, root / "nbgrader_config.py")
    python = str(Path(sys.executable))
    tool = str(root / "tools" / "grade_class.py")
    _run(root, "make", "--no-print-directory", "release", f"COURSE={course}")
    archive = _lms_zip(course, tmp)
    logs = {
        "collect": _run(
            root, python, tool, "--course", str(course), "collect", "--zip", str(archive)
        ),
        # The hanging cell is stopped after 5 s; the subprocess bound is the run's bound.
        "grade": _run(
            root,
            python,
            tool,
            "--course",
            str(course),
            "grade",
            "--jobs",
            "2",
            "--timeout",
            "5",
            timeout=240,
        ),
        "feedback": _run(root, python, tool, "--course", str(course), "feedback"),
        "export": _run(
            root, python, tool, "--course", str(course), "export", str(course / "grades.csv")
        ),
    }
    return {"course": course, "logs": logs, "tool": tool, "python": python}


def test_every_student_gets_the_expected_score(grading_day: dict) -> None:
    course: Path = grading_day["course"]
    rows = {row["student_id"]: row for row in csv.DictReader((course / "grades.csv").open())}
    scores = {student: float(rows[student]["score"]) for student in CLASS}
    assert scores == {student: spec[2] for student, spec in CLASS.items()}
    assert {float(rows[s]["max_score"]) for s in CLASS} == {MAX_SCORE}


def test_each_student_has_a_clear_line_in_the_log(grading_day: dict) -> None:
    log: str = grading_day["logs"]["grade"]
    for student, (_, _, score, says) in CLASS.items():
        line = next((ln for ln in log.splitlines() if ln.startswith(f"{student} ")), None)
        assert line is not None, f"no line for {student} in:\n{log}"
        assert f"{score:5.1f} / {MAX_SCORE:.1f}" in line, line
        assert re.search(says, line), f"{student}: {line!r} does not say {says!r}"
    assert "collected 7 students" in grading_day["logs"]["collect"]


def test_the_gradebook_holds_one_consistent_submission_per_student(grading_day: dict) -> None:
    course: Path = grading_day["course"]
    with sqlite3.connect(course / "gradebook.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        per_student = dict(
            db.execute(
                "SELECT student.id, COUNT(submitted_assignment.id) FROM student LEFT JOIN "
                "submitted_assignment ON submitted_assignment.student_id = student.id "
                "GROUP BY student.id"
            )
        )
        # Every graded submission has one grade row per graded cell, none twice.
        grades = db.execute(
            "SELECT submitted_assignment.student_id, COUNT(grade.id), "
            "COUNT(DISTINCT grade.cell_id) FROM grade "
            "JOIN submitted_notebook ON grade.notebook_id = submitted_notebook.id "
            "JOIN submitted_assignment ON submitted_notebook.assignment_id = "
            "submitted_assignment.id GROUP BY submitted_assignment.student_id"
        ).fetchall()
    assert set(per_student) == set(CLASS)
    assert all(count <= 1 for count in per_student.values()), per_student
    assert all(rows == cells == 2 for _, rows, cells in grades), grades


def test_the_invalid_notebook_is_kept_and_the_edited_test_cell_restored(grading_day: dict) -> None:
    course: Path = grading_day["course"]
    kept = course / "submitted" / "notjson" / ASSIGNMENT / f"{NOTEBOOK}.invalid"
    assert kept.read_text().startswith('{"cells": ['), "the student's file must be kept as is"
    graded = json.loads((course / "autograded" / "editedtest" / ASSIGNMENT / NOTEBOOK).read_text())
    test = next(
        c
        for c in graded["cells"]
        if c["metadata"].get("nbgrader", {}).get("grade_id") == "test_double"
    )
    assert "assert double(2) == 4" in "".join(test["source"])


def test_feedback_shows_hidden_tests_by_default_and_hides_them_on_request(
    grading_day: dict, root: Path
) -> None:
    course: Path = grading_day["course"]
    page = course / "feedback" / "complete" / ASSIGNMENT / "probe.html"
    assert HIDDEN_MARKER in page.read_text(), "nbgrader's default shows hidden tests"
    assert "hidden tests SHOWN" in grading_day["logs"]["feedback"]
    _run(
        root,
        grading_day["python"],
        grading_day["tool"],
        "--course",
        str(course),
        "feedback",
        "--hide-hidden-tests",
    )
    pages = sorted((course / "feedback").glob(f"*/{ASSIGNMENT}/*.html"))
    assert len(pages) == len(CLASS) - 1  # the student without a readable notebook has none
    for page in pages:
        html = page.read_text()
        assert HIDDEN_MARKER not in html and "BEGIN HIDDEN TESTS" not in html, page
        assert "Score:" in html and "hidden tests: not shown" in html


_HIDDEN = re.compile(r"BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.DOTALL)


def _hidden_lines(master: Path) -> set[str]:
    """Lines of the master's hidden tests that appear nowhere else in it (distinctive ones)."""
    sources = ["".join(cell["source"]) for cell in json.loads(master.read_text())["cells"]]
    hidden = {
        line.strip()
        for source in sources
        for block in _HIDDEN.findall(source)
        for line in block.splitlines()
    }
    visible = {line.strip() for source in sources for line in _HIDDEN.sub("", source).splitlines()}
    return {line for line in hidden - visible if len(line) > 12 and not line.startswith("#")}


def test_hidden_tests_never_reach_release_or_notebooks(root: Path, grading_day: dict) -> None:
    course: Path = grading_day["course"]
    shipped = {
        p: p.read_text()
        for p in [
            *(root / "release" / ASSIGNMENT).glob("*.ipynb"),
            *(root / "notebooks").glob("*.ipynb"),
            course / "release" / ASSIGNMENT / NOTEBOOK,
        ]
    }
    for path, text in shipped.items():
        assert "BEGIN HIDDEN TESTS" not in text, path
        master = (course if path.name == NOTEBOOK else root) / "source" / ASSIGNMENT / path.name
        shipped_lines = {
            line.strip()
            for cell in json.loads(text)["cells"]
            for line in "".join(cell["source"]).splitlines()
        }
        leaked = sorted(_hidden_lines(master) & shipped_lines)
        assert not leaked, f"{path} contains hidden test lines of {master.name}: {leaked[:3]}"
    probe = _hidden_lines(course / "source" / ASSIGNMENT / NOTEBOOK)
    assert any(HIDDEN_MARKER in line for line in probe), "the probe's hidden test was not found"


def _processes_mentioning(text: str) -> list[int]:
    """Processes whose command line or working folder mentions `text` (the kernel's is in it)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if text.encode() in (proc / "cmdline").read_bytes() or text in str(
                (proc / "cwd").readlink()
            ):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_a_student_run_past_its_bound_is_stopped_with_its_kernels(
    grading_day: dict, tmp_path: Path
) -> None:
    course = tmp_path / "course"
    shutil.copytree(grading_day["course"], course)
    start = time.monotonic()
    (run,) = autograde_class(
        course, ASSIGNMENT, ["hangs"], args=["--Execute.timeout=120"], student_timeout=10
    )
    assert run.timed_out and time.monotonic() - start < 60
    time.sleep(1)
    assert _processes_mentioning(str(course)) == [], "a kernel of the stopped run is still alive"
