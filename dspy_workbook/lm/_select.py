"""Choose and configure the course language model from one setting.

`WORKBOOK_LM` picks the backend:

* ``local`` (default) — SmolLM2-135M-Instruct in-process with llama.cpp: offline, no key,
  real tokens.
* ``sim`` — the simulated remote provider: deterministic, with latency, faults and rate limits.
* anything else — a hosted model by its LiteLLM id (``openai/gpt-4o-mini``,
  ``ollama_chat/llama3.2``).

Every backend is a `dspy.LM`, so the rest of a notebook never changes when the setting does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import dspy

from .._errors import BackendError
from ..env import LM, sim_latency
from ._hosted import CourseJSONAdapter, HostedLM
from ._sim import AsyncSimEngine, SimEngine, sim_lm

__all__ = ["BACKEND_ENV", "BackendInfo", "backend_name", "course_lm", "describe", "setup"]

BACKEND_ENV = LM
DEFAULT_BACKEND = "local"


@dataclass(frozen=True)
class BackendInfo:
    """What `setup` chose, printable in a notebook and in a CI log."""

    name: str
    model: str
    detail: str

    def __str__(self) -> str:
        return f"Course LM: {self.name} — {self.model} ({self.detail})"

    def _repr_html_(self) -> str:
        return f"<b>Course LM:</b> <code>{self.name}</code> — {self.model} <i>({self.detail})</i>"


def backend_name(backend: str | None = None) -> str:
    """The backend to use: the argument, else `$WORKBOOK_LM`, else ``local``."""
    name = (backend or os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND).strip()
    if not name:
        raise BackendError(f"{BACKEND_ENV} is empty: use 'local', 'sim' or a LiteLLM model id")
    return name


def _hosted_lm(model: str, **lm_kwargs) -> dspy.LM:
    """A hosted model by LiteLLM id; refuses early (naming the variable) if its key is missing."""
    if "/" not in model:
        raise BackendError(
            f"Unknown backend {model!r}. Use 'local', 'sim', or a LiteLLM id with a provider "
            "prefix, "
            "e.g. 'openai/gpt-4o-mini' or 'ollama_chat/llama3.2'."
        )
    try:
        import litellm

        env = litellm.validate_environment(model=model)
    except Exception:  # an id LiteLLM does not know: let DSPy report it on first call
        env = {"keys_in_environment": True, "missing_keys": []}
    if not env.get("keys_in_environment", True) and "api_key" not in lm_kwargs:
        keys = ", ".join(env.get("missing_keys") or ["the provider's API key"])
        raise BackendError(
            f"{model} needs {keys} in the environment. Set it where Jupyter starts "
            f"(e.g. `export {keys.split(',')[0]}=...`), restart the kernel, and run this cell "
            "again. "
            f"Without a key, unset {BACKEND_ENV} to use the embedded local model."
        )
    return HostedLM(model, **lm_kwargs)


def course_lm(backend: str | None = None, **options) -> dspy.LM:
    """Build the course LM for `backend` (see module docstring) without configuring DSPy."""
    name = backend_name(backend)
    if name == "local":
        from .local import local_lm

        return local_lm(**options)
    if name == "sim":
        options.setdefault("latency", sim_latency())
        return sim_lm(**options)
    return _hosted_lm(name, **options)


def describe(lm: dspy.LM) -> BackendInfo:
    """A one-line description of an LM built by `course_lm` (recognised by its engine's type)."""
    from .local import AsyncLocalLlamaEngine, LocalLlamaEngine  # no llama.cpp import here

    engine = getattr(lm, "engine", None)
    if isinstance(engine, AsyncLocalLlamaEngine):
        engine = engine.sync
    if isinstance(engine, LocalLlamaEngine):
        return BackendInfo("local", lm.model, "llama.cpp on this CPU, offline, no API key")
    if isinstance(engine, AsyncSimEngine):
        engine = engine.sync
    if isinstance(engine, SimEngine):
        return BackendInfo("sim", lm.model, f"simulated provider, latency {engine.latency:g} s")
    return BackendInfo("hosted", lm.model, "remote provider via your API key")


def setup(backend: str | None = None, *, quiet: bool = False, **options) -> dspy.LM:
    """Configure DSPy for the course and return the LM; run it in each notebook's first cell.

    DSPy's JSON adapter is used everywhere: the local model's decoding is constrained to the JSON
    schema of the signature's outputs, which is what makes a 135M model's answers always parse; a
    hosted model is asked for the same schema (`response_format`, see `_hosted.py`).
    DSPy's built-in cache is kept in memory only, so every fresh kernel starts cold and the
    measurements in the notebooks repeat; Exercise 1 turns the disk tier on where it teaches it.
    """
    lm = course_lm(backend, **options)
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    dspy.configure(lm=lm, adapter=CourseJSONAdapter())
    if not quiet:
        print(describe(lm))
    return lm
