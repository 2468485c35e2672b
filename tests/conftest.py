"""Shared fixtures: the repository root, and an environment for subprocesses of this venv."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # tests import `build` and `answer_key` from tools/

import build  # noqa: E402

_CACHE_ROOT = tempfile.mkdtemp(prefix="workbook-test-cache-")


def pytest_configure(config: pytest.Config) -> None:
    """Caches, logs and profiles of every test and notebook kernel go to one temporary folder,
    never into `source/ch07/` (nbgrader would ship them) or the student's `.workbook_cache/`.
    Exercise 5's service has no answers in it: tests that build it without `parts=` (and the
    servers they start) get the master's reference parts (`tools/reference_service.py`)."""
    os.environ["WORKBOOK_CACHE_DIR"] = _CACHE_ROOT
    reference = ROOT / "tools" / "reference_service.py"
    os.environ.setdefault("WORKBOOK_SERVICE_PARTS", f"{reference}:parts")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_CACHE_ROOT, ignore_errors=True)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def venv_env() -> dict[str, str]:
    """This interpreter's environment with its bin/ first on PATH (nbgrader calls `alembic`)."""
    return {**build.venv_env(), "MPLBACKEND": "Agg"}


@pytest.fixture(autouse=True)
def fresh_dspy_cache():
    """Each test starts with DSPy's cache empty and in memory only (never ~/.dspy_cache)."""
    import dspy

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    yield
