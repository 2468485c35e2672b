"""Validate gives autograde's verdict, on the grading model, and a hanging notebook cannot hold it.

The probe notebook (`tools/gradeday/probe.py`: two tasks, visible and hidden tests) is validated
solved and unfinished, as the Validate button's subprocess does (`dspy_workbook.grading.validate`);
the button's coroutine (`run_validation`) is run on a notebook that never finishes. The server
extension in a real JupyterLab: `tests/test_lab_starts.py`; pressed in a browser:
`tests/test_browser.py`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from dspy_workbook.grading.validate import validate
from dspy_workbook.grading.validate_extension import run_validation
from tools.gradeday.probe import ASSIGNMENT, NOTEBOOK, probe_course

pytestmark = pytest.mark.slow  # nbgrader's Validator and real kernels

STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


@pytest.fixture
def probe(root: Path, tmp_path: Path) -> Path:
    """The probe notebook, solved (its source, solutions inside)."""
    course = probe_course(tmp_path, root / "nbgrader_config.py")
    return course / "source" / ASSIGNMENT / NOTEBOOK


def _with_solutions(notebook: Path, source: str) -> None:
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = source
    nbformat.write(nb, notebook)


def test_a_solved_notebook_passes_and_an_unfinished_one_fails_on_each_graded_cell(
    probe: Path,
) -> None:
    assert validate(probe) == {}
    _with_solutions(probe, STUB)
    failed = validate(probe)["failed"]
    assert [f["source"].splitlines()[0] for f in failed] == [
        "assert double(2) == 4",
        "assert greet('Ada') == 'Hello, Ada!'",
    ]
    # As released: the stub raises at the top, so the tests find no function to call.
    assert all("NameError" in f["raw_error"] for f in failed), failed


def test_validate_runs_on_the_grading_model(probe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The student's own setting (the local model) does not reach Validate's kernel."""
    monkeypatch.setenv("WORKBOOK_LM", "local")
    _with_solutions(
        probe,
        "import os\nBACKEND = os.environ.get('WORKBOOK_LM')\n"
        "def double(x):\n    return 2 * x\ndef greet(name):\n    return f'Hello, {name}!'\n",
    )
    nb = nbformat.read(probe, as_version=4)
    nb.cells[3].source = "assert BACKEND == 'sim', BACKEND\n" + nb.cells[3].source
    nbformat.write(nb, probe)
    assert validate(probe) == {}


def test_a_validation_past_its_bound_is_stopped_with_a_clear_reply(probe: Path) -> None:
    _with_solutions(probe, "import time\nwhile True:\n    time.sleep(0.1)\n")
    reply = asyncio.run(run_validation(probe, seconds=5))
    assert reply["success"] is False and "stopped after 5 s" in reply["value"], reply


def test_the_command_line_prints_nbgraders_reply_or_one_line(probe: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "dspy_workbook.grading.validate", str(probe)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0 and json.loads(run.stdout) == {"success": True, "value": {}}
    missing = subprocess.run(
        [sys.executable, "-m", "dspy_workbook.grading.validate", str(probe.with_name("no.ipynb"))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and missing.stderr.startswith("error: no such notebook")
    assert len(missing.stderr.strip().splitlines()) == 1, missing.stderr
