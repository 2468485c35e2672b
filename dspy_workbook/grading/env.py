"""The one definition of the environment grading runs in: the simulated provider, fast.

The autograder, the round-trip tests and the answer-key runs all use `GRADING_ENV`; nothing else
sets these variables, so a student's JupyterLab keeps the local model (`make lab`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..env import GRADING_LM, LM, SIM_LATENCY, read

__all__ = ["GRADING_ENV", "grading_env"]

GRADING_ENV: Mapping[str, str] = {LM: "sim", SIM_LATENCY: "0.01"}


def grading_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) with the grading backend chosen.

    `$WORKBOOK_GRADING_LM` grades on another backend (e.g. `local`) when an instructor asks.
    """
    env = dict(os.environ if base is None else base)
    env.update(GRADING_ENV)
    backend = read(GRADING_LM, env)
    if backend is not None:
        env[LM] = backend
    return env
