"""Every answer key in solutions/ runs on its own, as a plain script, to the end."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dspy_workbook.grading import grading_env
from tools.answer_key import ANSWER_KEYS, run_answer_key


@pytest.mark.slow
@pytest.mark.parametrize("script", ANSWER_KEYS, ids=[k.stem for k in ANSWER_KEYS])
def test_answer_key_runs_to_the_end(script: Path, venv_env: dict[str, str], tmp_path: Path) -> None:
    failure = run_answer_key(sys.executable, script, grading_env(venv_env), tmp_path)
    assert failure is None, failure
