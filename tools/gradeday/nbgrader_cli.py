"""Run nbgrader as a subprocess of this virtualenv: the one command line, and the one environment
(this virtualenv's bin/ first on PATH) that every tool, test and benchmark starts it with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["config_dir", "nbgrader", "nbgrader_command", "venv_env"]

ROOT = Path(__file__).resolve().parents[2]


def config_dir(course: Path) -> Path:
    """Where nbgrader runs (it reads `nbgrader_config.py` from its working folder): the course
    when it has its own configuration, else this repository (whose configuration grades on the
    simulated model in the sandbox; `--CourseDirectory.root` still points at the course)."""
    return course if (course / "nbgrader_config.py").is_file() else ROOT


def venv_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment with this interpreter's bin/ first on PATH (nbgrader shells out to
    `alembic`, notebooks to `jupyter`), then `extra` on top."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        **(extra or {}),
    }


def nbgrader_command(*args: str) -> list[str]:
    """`nbgrader ARGS` with this virtualenv's Python, through the workbook's faster start-up
    (`dspy_workbook.grading.nbgrader_main`: the same nbgrader, ~1 s of CPU less per run)."""
    return [sys.executable, "-m", "dspy_workbook.grading.nbgrader_main", *args]


def nbgrader(
    course: Path, *args: str, timeout: float | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`nbgrader ARGS --CourseDirectory.root=COURSE` in COURSE; output captured, never raises
    on a non-zero exit (nbgrader exits 1 when any one submission failed; callers decide)."""
    return subprocess.run(
        nbgrader_command(*args, f"--CourseDirectory.root={course}"),
        cwd=config_dir(course),
        env=env or venv_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
