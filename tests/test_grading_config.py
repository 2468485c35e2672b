"""`nbgrader_config.py`: grading's backend reaches autograde's kernels and nothing else; Validate
runs with autograde's limits, through the workbook's handler in every student's settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from traitlets.config.loader import PyFileConfigLoader

from dspy_workbook.grading import GRADING_ENV, grading_env
from dspy_workbook.grading.execute import GradingExecute
from dspy_workbook.grading.validate import grading_validator


def _load(root: Path):
    return PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()


def test_loading_the_config_changes_no_environment_variable(root: Path) -> None:
    before = dict(os.environ)
    _load(root)
    assert dict(os.environ) == before


def test_autograde_runs_nbgraders_own_pipeline_with_the_grading_kernel(root: Path) -> None:
    from nbgrader.converters.autograde import Autograde

    default = [step.__name__ for step in Autograde().autograde_preprocessors]
    configured = [step.__name__ for step in _load(root).Autograde.autograde_preprocessors]
    assert configured == ["GradingExecute" if name == "Execute" else name for name in default]


def test_grading_env_sets_the_simulated_backend_and_honours_an_override() -> None:
    env = grading_env({"PATH": "/bin", "WORKBOOK_LM": "local"})
    assert {k: env[k] for k in GRADING_ENV} == dict(GRADING_ENV) and env["PATH"] == "/bin"
    assert grading_env({"WORKBOOK_GRADING_LM": "local"})["WORKBOOK_LM"] == "local"


def test_validate_runs_notebooks_with_autogrades_preprocessor_and_limits(root: Path) -> None:
    config = _load(root)
    validator = grading_validator()
    steps = [step.__name__ for step in validator.preprocessors]
    assert steps == ["CheckCellMetadata", "ClearOutput", "GradingExecute"]
    execute = GradingExecute(parent=validator)
    assert (execute.timeout, execute.student_seconds, execute.interrupt_on_timeout) == (
        config.Execute.timeout,
        config.GradingExecute.student_seconds,
        True,
    )


@pytest.mark.parametrize("settings", ["etc/jupyter-student", "hub/jupyter/student"])
def test_students_validate_through_the_workbooks_handler(root: Path, settings: str) -> None:
    """nbgrader's own handler runs the notebook in the server's event loop: it is off, and the
    workbook's extension serves the Validate button instead (on a laptop and on the hub)."""
    server = json.loads((root / settings / "jupyter_server_config.json").read_text())
    extensions = server["ServerApp"]["jpserver_extensions"]
    assert extensions["nbgrader.server_extensions.validate_assignment"] is False
    assert extensions["dspy_workbook.grading.validate_extension"] is True
