"""Every answer key in solutions/ runs on its own, as a plain script, to the end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dspy_workbook.grading import grading_env

ROOT = Path(__file__).resolve().parents[1]
KEYS = sorted((ROOT / "solutions").glob("exercise*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("script", KEYS, ids=[k.stem for k in KEYS])
def test_answer_key_runs_to_the_end(script: Path, venv_env: dict[str, str], tmp_path: Path) -> None:
    env = grading_env(venv_env)
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"{script.name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    )
