"""Load a model with llama.cpp's "extra buffer types" (weight repacking, Intel AMX) on or off.

`Llama(...)` takes no such option, so llama.cpp's default model parameters are swapped while it
loads. Whether to turn them off is `runtime.extra_buffer_types_enabled`'s decision; this module
is only the switch, and imports nothing but the standard library and (lazily) llama_cpp, so the
model probe (`performance/_probe_script.py`), which runs in a bare process, loads it by path and
switches exactly as the workbook's own runtime does.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["extra_buffer_types"]

_params_lock = threading.Lock()


@contextlib.contextmanager
def extra_buffer_types(enabled: bool) -> Iterator[None]:
    """Models loaded inside this block use llama.cpp's extra buffer types iff `enabled`."""
    from llama_cpp import llama_cpp as bindings

    with _params_lock:
        original = bindings.llama_model_default_params

        def defaults() -> Any:
            params = original()
            params.use_extra_bufts = enabled
            return params

        bindings.llama_model_default_params = defaults
        try:
            yield
        finally:
            bindings.llama_model_default_params = original
