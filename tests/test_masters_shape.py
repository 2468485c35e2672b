"""Every exercise master has the same shape, checked statically — a new exercise gets this for free.

* its release replaces every solution with the stub that raises `NotImplementedError` and ships
  no solution or hidden-test text;
* every graded cell exercises the student's code (it names something a solution cell defines),
  so a blank notebook cannot pass it by accident (the round trip proves the scores);
* it has the parts a student relies on: objectives, prerequisites, time per task, hints on demand,
  `check_all()`, how to submit, a questionnaire.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from tools.build import ASSIGNMENT, ROOT, master_notebooks

EXERCISES = [p for p in master_notebooks() if not p.stem.startswith("00")]
STUB = "raise NotImplementedError()"
SECRET_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS")


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _nbgrader(cell: dict) -> dict:
    return cell["metadata"].get("nbgrader", {})


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _defined_names(code: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def _used_names(code: str) -> set[str]:
    tree = ast.parse(code)
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} | {
        node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
    }


@pytest.mark.parametrize("master", EXERCISES, ids=[m.stem for m in EXERCISES])
def test_the_release_has_stubs_and_no_secrets(master: Path) -> None:
    release = ROOT / "release" / ASSIGNMENT / master.name
    cells = _cells(release)
    solutions = [c for c in cells if _nbgrader(c).get("solution") and c["cell_type"] == "code"]
    assert solutions, f"{master.stem} has no solution cells"
    for cell in solutions:
        assert STUB in _source(cell), f"{_nbgrader(cell)['grade_id']}: no stub in the release"
    text = release.read_text()
    for marker in SECRET_MARKERS:
        assert marker not in text, f"{master.stem}'s release contains {marker!r}"


@pytest.mark.parametrize("master", EXERCISES, ids=[m.stem for m in EXERCISES])
def test_every_graded_cell_uses_what_a_solution_cell_defines(master: Path) -> None:
    cells = _cells(master)
    student_names: set[str] = set()
    for cell in cells:
        if _nbgrader(cell).get("solution") and cell["cell_type"] == "code":
            student_names |= _defined_names(_source(cell))
    graded = [c for c in cells if _nbgrader(c).get("grade") and c["cell_type"] == "code"]
    assert graded, f"{master.stem} has no graded cells"
    for cell in graded:
        used = _used_names(_source(cell))
        assert used & student_names, (
            f"{_nbgrader(cell)['grade_id']} uses nothing the student writes: a free point"
        )


SHAPE = {
    "learning objectives": r"objectives",
    "prerequisites": r"prerequisite",
    "time per task": r"\b\d+\s*min",
    "hints on demand": r"\.hint\(",
    "a final check_all()": r"\.check_all\(\)",
    "how to submit": r"submit",
    "a questionnaire": r"questionnaire",
}


@pytest.mark.parametrize("master", EXERCISES, ids=[m.stem for m in EXERCISES])
def test_the_notebook_has_the_parts_a_student_relies_on(master: Path) -> None:
    text = "\n".join(_source(c) for c in _cells(master)).lower()
    missing = [part for part, pattern in SHAPE.items() if not re.search(pattern, text)]
    assert not missing, f"{master.stem} lacks: {', '.join(missing)}"
