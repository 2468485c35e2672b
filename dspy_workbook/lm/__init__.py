"""The course language models: embedded local model, simulated provider, hosted models."""

from ._select import BACKEND_ENV, BackendInfo, backend_name, course_lm, describe, setup
from ._sim import AsyncSimEngine, SimEngine, SimStats, request_inputs, request_text, sim_lm

__all__ = [
    "AsyncSimEngine", "BACKEND_ENV", "BackendInfo", "SimEngine", "SimStats", "backend_name",
    "course_lm", "describe", "request_inputs", "request_text", "setup", "sim_lm",
]


def local_lm(**lm_kwargs):
    """The embedded SmolLM2-135M model as a `dspy.LM` (imported lazily: llama.cpp is heavy)."""
    from ._local import local_lm as build

    return build(**lm_kwargs)
