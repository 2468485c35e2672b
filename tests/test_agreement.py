"""✅ means full marks: every self-check and its task's hidden tests agree, on every master.

For each master, every submission of its catalogue (`tests/catalogue/`), plus each graded task's
own solution (`reference`) and nbgrader's stub (`blank`), goes through the task's self-check and
its graded cell with `tests/_kit.py`. A test fails when they disagree — ✅ with the hidden points
lost, ❌/💥/💡 with them won — or when the entry does not get what it deserves. A seventh master
gets the reference and blank proofs without writing anything.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from functools import cache

import pytest

from tests._kit import MASTERS, ROOT, Outcome, code_cells, graded_tasks
from tests.catalogue import catalogues

STEMS = [p.stem for p in sorted(MASTERS.glob("0[1-9]_*.py"))]
CATALOGUES = catalogues()
HIDDEN = "### BEGIN HIDDEN TESTS"


def _cases() -> list:
    cases = []
    for stem in STEMS:
        tasks = graded_tasks(code_cells(stem))
        names = [(e.task, e.name) for e in CATALOGUES.get(stem, [])]
        names += [(t, kind) for t in tasks for kind in ("reference", "blank")]
        cases += [pytest.param(stem, t, n, id=f"{stem}:{t}:{n}") for t, n in names]
    return cases


@cache
def outcomes(stem: str) -> dict[tuple[str, str], Outcome]:
    """Every submission of `stem`, graded once in a process of its own (`python -m tests._kit`)."""
    result = subprocess.run(
        [sys.executable, "-m", "tests._kit", stem, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if not result.stdout.strip():
        raise AssertionError(f"the kit failed on {stem}:\n{result.stderr[-3000:]}")
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    return {(r["task"], r["name"]): Outcome(**r) for r in rows}


@pytest.mark.parametrize(("stem", "task", "name"), _cases())
def test_self_check_agrees_with_hidden_tests(stem: str, task: str, name: str) -> None:
    outcome = outcomes(stem).get((task, name))
    assert outcome is not None, f"{stem}: {task}/{name} was not graded (duplicate name?)"
    assert outcome.agrees, outcome.row()


@pytest.mark.parametrize("stem", STEMS)
def test_every_hidden_assert_says_why(stem: str) -> None:
    """A student who loses a point reads why: every hidden assert carries a message."""
    bare = []
    for cell in code_cells(stem):
        if not cell.is_graded or HIDDEN not in cell.source:
            continue
        hidden = cell.source.split(HIDDEN, 1)[1].split("### END HIDDEN TESTS", 1)[0]
        tree = ast.parse(textwrap.dedent(hidden))
        bare += [
            f"{cell.grade_id} line {node.lineno}: {ast.unparse(node)[:80]}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Assert) and node.msg is None
        ]
    assert not bare, f"{stem}: hidden asserts without a message:\n" + "\n".join(bare)


def test_catalogue_names_are_unique_per_task() -> None:
    for stem, entries in CATALOGUES.items():
        keys = [(e.task, e.name) for e in entries]
        dupes = {k for k in keys if keys.count(k) > 1 or k[1] in ("reference", "blank")}
        assert not dupes, f"{stem}: catalogue names used twice or reserved: {sorted(dupes)}"


def test_self_checks_never_load_hidden_tests() -> None:
    """The self-checks ship to students: they may not import tests, tools or the masters."""
    forbidden = ("tests", "tools", "answer_key", "jupytext", "nbgrader")
    for path in sorted((ROOT / "dspy_workbook" / "checks").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            bad = [n for n in names if n.split(".")[0] in forbidden]
            assert not bad, f"{path.name} imports {bad}"
        assert "source/ch07" not in path.read_text(), f"{path.name} reads the masters"


def test_every_master_has_a_catalogue() -> None:
    missing = [stem for stem in STEMS if stem not in CATALOGUES]
    assert not missing, f"no catalogue in tests/catalogue/ for {missing}"
