"""A tiny course with one notebook, two tasks and hidden tests: for tests and the benchmark.

Its tests check types as well as values (`type(...) is int`), so an object whose `__eq__` always
says True does not pass them. `submission()` writes a student's notebook from the release with
chosen code in each solution cell, so tests do not depend on the real exercises' content.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import nbformat

__all__ = [
    "ASSIGNMENT",
    "HIDDEN_MARKER",
    "MAX_SCORE",
    "NOTEBOOK",
    "SOLUTIONS",
    "probe_course",
    "submission",
]

ASSIGNMENT = "ch07"
NOTEBOOK = "probe.ipynb"
HIDDEN_MARKER = "hidden-probe-check-7f3a"
MAX_SCORE = 3.0
SOLUTIONS = {
    "double": "def double(x):\n    return 2 * x\n",
    "greet": "def greet(name):\n    return f'Hello, {name}!'\n",
}


def _meta(
    grade_id: str,
    *,
    solution: bool = False,
    grade: bool = False,
    locked: bool = False,
    points: float = 0,
) -> dict:
    meta = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": 3,
        "solution": solution,
        "task": False,
    }
    if grade:
        meta["points"] = points
    return meta


def _cell(source: str, **meta: object) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = _meta(**meta)  # type: ignore[arg-type]
    return cell


def probe_course(folder: Path, config: Path) -> Path:
    """`folder/course` with `nbgrader_config.py` (copied from `config`) and `source/ch07/probe`."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "name": "python3",
        }
    }
    intro = nbformat.v4.new_markdown_cell("# Probe\nTwo tasks: `double` (2 points), `greet` (1).")
    intro.metadata["nbgrader"] = _meta("intro", locked=True)
    nb.cells = [
        intro,
        _cell("import os", grade_id="setup", locked=True),
        _cell(
            "### BEGIN SOLUTION\n" + SOLUTIONS["double"] + "### END SOLUTION",
            grade_id="double",
            solution=True,
        ),
        _cell(
            "assert double(2) == 4\n### BEGIN HIDDEN TESTS\n"
            "assert type(double(21)) is int and double(21) == 42, 'double(21) must be the int 42'"
            f"  # {HIDDEN_MARKER}\n"
            "### END HIDDEN TESTS",
            grade_id="test_double",
            grade=True,
            locked=True,
            points=2,
        ),
        _cell(
            "### BEGIN SOLUTION\n" + SOLUTIONS["greet"] + "### END SOLUTION",
            grade_id="greet",
            solution=True,
        ),
        _cell(
            "assert greet('Ada') == 'Hello, Ada!'\n### BEGIN HIDDEN TESTS\n"
            "assert type(greet('Bo')) is str and greet('Bo') == 'Hello, Bo!'\n"
            "### END HIDDEN TESTS",
            grade_id="test_greet",
            grade=True,
            locked=True,
            points=1,
        ),
    ]
    course = folder / "course"
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(nb, course / "source" / ASSIGNMENT / NOTEBOOK)
    (course / "nbgrader_config.py").write_text(config.read_text())
    return course


def submission(
    release: Path, answers: Mapping[str, str], tests: Mapping[str, str] | None = None
) -> str:
    """The released notebook's JSON with `answers[grade_id]` in solution cells (others untouched)
    and `tests[grade_id]` in read-only test cells (a student editing what they should not)."""
    nb = json.loads(release.read_text())
    for cell in nb["cells"]:
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell["source"] = answers[grade_id]
        if tests and grade_id in tests:
            cell["source"] = tests[grade_id]
    return json.dumps(nb, indent=1)
