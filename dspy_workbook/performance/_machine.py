"""Which machine a figure came from: CPU model, cores, load, llama.cpp's build and the threads used.

A latency means little without its machine. The same call takes 0.3 s on an idle 2-core laptop
and 1.5 s when three other processes share those cores, so every `Timing` carries a `MachineInfo`
and a regression guard can refuse to compare figures from two different machines.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from typing import Any

import psutil

__all__ = ["MachineInfo", "cpu_model", "llama_system_info", "machine_info"]


@dataclass(frozen=True)
class MachineInfo:
    """The hardware and settings a measurement ran with."""

    cpu: str
    logical_cores: int
    physical_cores: int | None
    load_average: float  # 1-minute load: > cores means other work competed for the CPU
    llama_cpp: str  # llama.cpp's CPU features as compiled (AVX2, …), or "" without llama.cpp
    n_threads: int | None  # threads the model ran with (local model), None if not known
    python: str

    def same_hardware(self, other: MachineInfo) -> bool:
        """True when `other` is the same CPU model, core count and thread setting."""
        return (self.cpu, self.logical_cores, self.n_threads) == (
            other.cpu,
            other.logical_cores,
            other.n_threads,
        )

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-friendly dict (saved with a baseline)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MachineInfo:
        """Rebuild from `as_dict()`; unknown keys are ignored, missing ones become empty."""
        defaults = {
            "cpu": "",
            "logical_cores": 0,
            "physical_cores": None,
            "load_average": 0.0,
            "llama_cpp": "",
            "n_threads": None,
            "python": "",
        }
        return cls(**{key: data.get(key, value) for key, value in defaults.items()})

    def __str__(self) -> str:
        threads = f", model threads {self.n_threads}" if self.n_threads else ""
        cores = f"{self.logical_cores} logical / {self.physical_cores or '?'} physical cores"
        return f"{self.cpu} · {cores} · load {self.load_average:.2f}{threads}"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, else `platform`)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def llama_system_info() -> str:
    """llama.cpp's `llama_print_system_info()` (its compiled CPU features), "" if not installed."""
    try:
        import llama_cpp
    except ImportError:
        return ""
    raw = llama_cpp.llama_print_system_info()
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    # Keep the features that are on: "AVX2 = 1 | FMA = 1 | …" -> "AVX2 FMA …".
    features = [
        part.split("=")[0].strip()
        for part in text.replace("CPU :", "").split("|")
        if part.strip().endswith("= 1")
    ]
    return " ".join(features) if features else text.strip()


def _threads_of(lm: Any) -> int | None:
    engine = getattr(lm, "engine", None)
    threads = getattr(engine, "n_threads", None)
    return threads if isinstance(threads, int) else None


def machine_info(lm: Any = None, *, n_threads: int | None = None) -> MachineInfo:
    """This machine, now. The thread count comes from `n_threads`, else from `lm`'s engine, else
    from DSPy's configured LM (the local model's engines know theirs; a remote provider has none).
    """
    if n_threads is None:
        if lm is None:
            import dspy

            lm = dspy.settings.lm
        n_threads = _threads_of(lm)
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):  # not available on Windows
        load = 0.0
    return MachineInfo(
        cpu=cpu_model(),
        logical_cores=psutil.cpu_count(logical=True) or 1,
        physical_cores=psutil.cpu_count(logical=False),
        load_average=round(load, 2),
        llama_cpp=llama_system_info(),
        n_threads=n_threads,
        python=platform.python_version(),
    )
