"""Every `WORKBOOK_*` environment variable, named once: its default, what it does, who reads it.

The README's settings table lists exactly these, and no other `WORKBOOK_*` name appears in the
code (`tests/test_settings_table.py` checks both). A module that reads one takes its name from
here; a value that needs parsing has its reader here, so it is parsed — and refused with one
clear line — in one place. This module imports nothing of the workbook's but its errors: any
floor may use it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from ._errors import BackendError

__all__ = ["VARIABLES", "Variable", "read", "sim_latency"]


@dataclass(frozen=True)
class Variable:
    """One setting: its name, its default as a person would write it, and what it changes."""

    name: str
    default: str
    what: str
    read_by: str  # the module that reads it (relative to the repository root)
    area: str  # "notebooks", "grading", "service" or "hub": who sets it


# Every setting's name starts so (the grading sandbox passes these variables through).
PREFIX = "WORKBOOK_"

# Names used in code. Each one is also a row of VARIABLES below. The hub's are read by
# hub/jupyterhub_config.py, which runs inside JupyterHub and does not import this package.
LM = "WORKBOOK_LM"
SIM_LATENCY = "WORKBOOK_SIM_LATENCY"
CACHE_DIR = "WORKBOOK_CACHE_DIR"
PROGRESS = "WORKBOOK_PROGRESS"
LLAMA_EXTRA_BUFFERS = "WORKBOOK_LLAMA_EXTRA_BUFFERS"
GRADING_LM = "WORKBOOK_GRADING_LM"
SANDBOX = "WORKBOOK_SANDBOX"
SERVICE_PARTS = "WORKBOOK_SERVICE_PARTS"
API_KEYS = "WORKBOOK_API_KEYS"
RATE_PER_SECOND = "WORKBOOK_RATE_PER_SECOND"
RATE_BURST = "WORKBOOK_RATE_BURST"
MAX_QUESTION_CHARS = "WORKBOOK_MAX_QUESTION_CHARS"
LM_TIMEOUT = "WORKBOOK_LM_TIMEOUT"
CONFIDENCE = "WORKBOOK_CONFIDENCE"
CONFIDENCE_SAMPLES = "WORKBOOK_CONFIDENCE_SAMPLES"
CACHE_SIZE = "WORKBOOK_CACHE_SIZE"
REDIS_URL = "WORKBOOK_REDIS_URL"
REDIS_TIMEOUT = "WORKBOOK_REDIS_TIMEOUT"
WHEN_REDIS_DOWN = "WORKBOOK_WHEN_REDIS_DOWN"

_PKG = "dspy_workbook/"
_SERVICE = _PKG + "serving/settings.py"
_HUB = "hub/jupyterhub_config.py"

VARIABLES: tuple[Variable, ...] = (
    # -- the notebooks (a student's shell or kernel) --
    Variable(
        LM,
        "local",
        "the course LM: `local` (the embedded model), `sim` (the simulated provider) or a "
        "LiteLLM model id (`openai/gpt-4o-mini`)",
        _PKG + "lm/_select.py",
        "notebooks",
    ),
    Variable(
        SIM_LATENCY,
        "0.2",
        "seconds each call to the simulated provider takes (grading sets 0.01)",
        _PKG + "env.py",
        "notebooks",
    ),
    Variable(
        CACHE_DIR,
        "`.workbook_cache/` beside the notebook",
        "the one folder for caches, logs, profiles and generated models",
        _PKG + "paths.py",
        "notebooks",
    ),
    Variable(
        PROGRESS,
        "shown where someone watches",
        "`1`/`0` forces progress bars on or off",
        _PKG + "progress.py",
        "notebooks",
    ),
    Variable(
        LLAMA_EXTRA_BUFFERS,
        "detected from the CPU",
        "`1`/`0` turns llama.cpp's extra buffer types (weight repacking, AMX) on or off",
        _PKG + "lm/local/runtime.py",
        "notebooks",
    ),
    # -- grading (the instructor's shell; autograde's kernels get the grading model) --
    Variable(
        GRADING_LM,
        "sim",
        "the backend the grading kernels get instead of the simulated provider",
        _PKG + "grading/env.py",
        "grading",
    ),
    Variable(
        SANDBOX,
        "auto",
        "`1`: grade only inside bubblewrap; `0`: never; `auto`: when it is installed",
        _PKG + "grading/sandbox.py",
        "grading",
    ),
    # -- Exercise 5's service (uvicorn, the container, Lambda) --
    Variable(
        SERVICE_PARTS,
        "(none)",
        "`module:name` or `/path/to/file.py:name`: the service's graded parts "
        "(`tools/reference_service.py:parts` for the reference answers)",
        _PKG + "serving/service.py",
        "service",
    ),
    Variable(
        API_KEYS,
        "none: every request refused",
        "comma-separated `client:key` pairs, or bare keys",
        _SERVICE,
        "service",
    ),
    Variable(
        RATE_PER_SECOND,
        "5",
        "tokens added to each key's bucket per second",
        _SERVICE,
        "service",
    ),
    Variable(
        RATE_BURST,
        "10",
        "bucket size: requests a key may send at once",
        _SERVICE,
        "service",
    ),
    Variable(
        MAX_QUESTION_CHARS,
        "2000",
        "longest question accepted (422 beyond)",
        _SERVICE,
        "service",
    ),
    Variable(
        LM_TIMEOUT,
        "20",
        "seconds a prediction may take before the answer is 504",
        _SERVICE,
        "service",
    ),
    Variable(
        CONFIDENCE,
        "auto",
        "`logprobs`, `agreement`, or `auto` (log-probabilities when the model gives them)",
        _SERVICE,
        "service",
    ),
    Variable(
        CONFIDENCE_SAMPLES,
        "3",
        "answers compared by the `agreement` method",
        _SERVICE,
        "service",
    ),
    Variable(
        CACHE_SIZE,
        "1024",
        "answers kept by the in-memory answer cache (0: off)",
        _SERVICE,
        "service",
    ),
    Variable(
        REDIS_URL,
        "none: in memory",
        "share the rate limiter and the answer cache across workers",
        _SERVICE,
        "service",
    ),
    Variable(
        REDIS_TIMEOUT,
        "0.5",
        "seconds one Redis call may take before it counts as failed",
        _SERVICE,
        "service",
    ),
    Variable(
        WHEN_REDIS_DOWN,
        "allow",
        "the rate limiter while Redis is down: `allow` requests or `refuse` them (503)",
        _SERVICE,
        "service",
    ),
    # -- the course JupyterHub (hub/README.md) --
    Variable(
        "WORKBOOK_HUB_DIR",
        "/srv/dspy-ch07",
        "the hub's folder: user lists, database, cookie secret, exchange",
        _HUB,
        "hub",
    ),
    Variable(
        "WORKBOOK_HUB_EXCHANGE",
        "`$WORKBOOK_HUB_DIR/exchange`",
        "nbgrader's exchange folder (the hub passes it on to every server)",
        _HUB,
        "hub",
    ),
    Variable(
        "WORKBOOK_HUB_VENV",
        "the repository's `.venv`",
        "the virtualenv every user's server runs",
        _HUB,
        "hub",
    ),
    Variable(
        "WORKBOOK_HUB_MODE",
        "production",
        "`production`: Unix passwords, a server per Unix account; `trial`: shared passwords, "
        "one account (never for a real class)",
        _HUB,
        "hub",
    ),
    Variable(
        "WORKBOOK_HUB_STUDENT_PASSWORD",
        "(none)",
        "trial mode: the students' shared password (8 characters at least)",
        _HUB,
        "hub",
    ),
    Variable(
        "WORKBOOK_HUB_INSTRUCTOR_PASSWORD",
        "(none)",
        "trial mode: the instructors' shared password (32 characters at least)",
        _HUB,
        "hub",
    ),
    Variable(
        "WORKBOOK_HUB_SHARED_MODEL",
        "off",
        "`1`: one copy of the course model, as a hub-managed service every kernel calls",
        _HUB,
        "hub",
    ),
    Variable("WORKBOOK_HUB_MODEL_PORT", "8765", "the shared model's loopback port", _HUB, "hub"),
    Variable("WORKBOOK_HUB_MODEL_THREADS", "2", "CPU threads of the shared model", _HUB, "hub"),
)
_NAMES = frozenset(v.name for v in VARIABLES)


def read(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The variable's value with surrounding spaces removed; None when unset or blank."""
    if name not in _NAMES:
        raise KeyError(f"{name} is not a workbook setting (dspy_workbook/env.py lists them)")
    value = (os.environ if env is None else env).get(name, "").strip()
    return value or None


def sim_latency(default: float = 0.2, env: Mapping[str, str] | None = None) -> float:
    """`$WORKBOOK_SIM_LATENCY` in seconds (`default` when unset); anything but a finite number
    ≥ 0 is refused in one line that names the variable."""
    raw = read(SIM_LATENCY, env)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise BackendError(f"{SIM_LATENCY}={raw!r}: use a number of seconds ≥ 0, e.g. 0.2")
    return value
