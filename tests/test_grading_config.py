"""`nbgrader_config.py`: grading's backend reaches autograde's kernels and nothing else."""

from __future__ import annotations

import os
from pathlib import Path

from traitlets.config.loader import PyFileConfigLoader

from dspy_workbook.grading import GRADING_ENV, grading_env


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
