"""A timing result you can trust and keep: every sample, the warm-up apart, and the machine.

`time_call` measures (warm-up calls apart, then repeats, with `timeit`) and returns a `Timing`;
`RegressionCheck` is what the student's regression guard returns. Baselines are JSON files
(samples + machine), written atomically, so a later run on the same machine can be compared.
"""

from __future__ import annotations

import json
import os
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import WorkbookError
from ..stats import LatencySummary, summarize_latencies
from ._machine import MachineInfo, machine_info

__all__ = [
    "BaselineError",
    "RegressionCheck",
    "Timing",
    "load_baseline",
    "save_baseline",
    "time_call",
]


class BaselineError(WorkbookError):
    """A saved baseline could not be read: missing, corrupt, or not a timing."""


@dataclass(frozen=True)
class Timing:
    """Seconds per call of `repeat` timed runs; the warm-up runs are kept apart, never mixed in."""

    samples: tuple[float, ...]
    warmup: tuple[float, ...] = ()
    machine: MachineInfo | None = None
    label: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "samples", tuple(float(s) for s in self.samples))
        object.__setattr__(self, "warmup", tuple(float(s) for s in self.warmup))
        if not self.samples:
            raise ValueError("a Timing needs at least one timed sample")

    @property
    def summary(self) -> LatencySummary:
        """The workbook's one latency summary of the timed samples."""
        return summarize_latencies(self.samples)

    @property
    def median(self) -> float:
        """The typical call, in seconds (robust to one slow outlier, unlike the mean)."""
        return self.summary.p50

    @property
    def spread(self) -> float:
        """How far the slow calls reach above the median: p90 − p50, in seconds."""
        return self.summary.spread

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (what `save_baseline` writes)."""
        return {
            "label": self.label,
            "samples": list(self.samples),
            "warmup": list(self.warmup),
            "machine": self.machine.as_dict() if self.machine else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timing:
        """Rebuild from `as_dict()`."""
        machine = data.get("machine")
        return cls(
            samples=tuple(data["samples"]),
            warmup=tuple(data.get("warmup", ())),
            machine=MachineInfo.from_dict(machine) if isinstance(machine, dict) else None,
            label=str(data.get("label", "")),
        )

    def __str__(self) -> str:
        warmups = ", ".join(f"{w * 1000:.1f}" for w in self.warmup)
        warm = f", warm-up {warmups} ms" if self.warmup else ""
        name = f"{self.label}: " if self.label else ""
        return (
            f"{name}median {self.median * 1000:.2f} ms, spread (p90−p50) "
            f"{self.spread * 1000:.2f} ms over {len(self.samples)} runs{warm}"
        )


def time_call(
    fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1, label: str = "", lm: Any = None
) -> Timing:
    """Call `fn` `warmup` times (timed, kept apart), then time `repeat` calls; note the machine.

    `timeit` does the timing: `time.perf_counter`, and garbage collection paused while a call is
    timed, so a collection that earlier code triggered does not land in the figure. `lm` is the
    model whose thread count the machine record names (default: DSPy's configured LM).
    """
    if not isinstance(repeat, int) or not isinstance(warmup, int) or repeat < 1 or warmup < 0:
        raise ValueError(
            f"need whole numbers repeat >= 1 and warmup >= 0, got repeat={repeat!r}, "
            f"warmup={warmup!r}"
        )
    warm = timeit.Timer(fn).repeat(repeat=warmup, number=1) if warmup else []
    samples = timeit.Timer(fn).repeat(repeat=repeat, number=1)
    return Timing(samples=samples, warmup=warm, machine=machine_info(lm), label=label)


@dataclass(frozen=True)
class RegressionCheck:
    """A regression guard's verdict: how much slower, how noisy, and whether it is a regression."""

    baseline_median: float
    current_median: float
    noise: float
    regression: bool
    notes: tuple[str, ...] = field(default=())

    @property
    def slowdown(self) -> float:
        """current − baseline median, in seconds (negative: faster)."""
        return self.current_median - self.baseline_median

    def __bool__(self) -> bool:  # `if check:` reads as "is there a regression?"
        return self.regression

    def __str__(self) -> str:
        verdict = "REGRESSION" if self.regression else "ok"
        extra = "".join(f"\n  note: {note}" for note in self.notes)
        return (
            f"{verdict}: median {self.baseline_median * 1000:.2f} → "
            f"{self.current_median * 1000:.2f} ms ({self.slowdown * 1000:+.2f} ms), "
            f"noise {self.noise * 1000:.2f} ms{extra}"
        )


def save_baseline(path: Path | str, timing: Timing) -> Path:
    """Write `timing` as JSON to `path`; a reader never sees half a file (write aside, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    aside.write_text(json.dumps(timing.as_dict(), indent=1), encoding="utf-8")
    aside.replace(path)
    return path


def load_baseline(path: Path | str) -> Timing:
    """The `Timing` saved at `path`; `BaselineError` (saying what to do) if it cannot be used."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Timing.from_dict(data)
    except FileNotFoundError:
        raise BaselineError(
            f"no baseline at {path}: save one first with `perf.save_baseline(path, timing)`"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BaselineError(
            f"the baseline at {path} is unreadable or not a timing ({exc}); "
            "delete it and save a new one"
        ) from None
