"""`ruff check` and `ruff format --check` (pinned in requirements.txt, configured in pyproject.toml)
over the support package, tools, tests, benchmarks and the masters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RUFF = Path(sys.executable).with_name("ruff")


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff_is_clean(root: Path, command: list[str]) -> None:
    result = subprocess.run(
        [str(RUFF), *command, "."], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (
        f"ruff {' '.join(command)}:\n{result.stdout[-4000:]}{result.stderr}"
    )
