"""One latency summary for the whole workbook: count, mean, spread and percentiles, via numpy.

Every exercise that reports latencies uses this module, so the same samples always give the same
p50/p90/p95/p99 (numpy's default linear interpolation between closest ranks) in every notebook,
benchmark and test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["LatencySummary", "percentile", "summarize_latencies", "summary_table"]


def _clean(samples: Iterable[float]) -> np.ndarray:
    values = np.asarray(list(samples), dtype=float)
    if values.size == 0:
        raise ValueError("no samples to summarize: measure at least one call first")
    if not np.all(np.isfinite(values)):
        raise ValueError("latency samples must be finite numbers (found NaN or infinity)")
    if np.any(values < 0):
        raise ValueError("latency samples must be >= 0 seconds")
    return values


def percentile(samples: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0–100) of `samples`, numpy's linear interpolation."""
    if not (isinstance(q, int | float) and 0 <= q <= 100):
        raise ValueError(f"q is a percentage between 0 and 100, got {q!r}")
    return float(np.percentile(_clean(samples), q))


@dataclass(frozen=True)
class LatencySummary:
    """Latencies in seconds: how many, typical (median), spread, and the tail."""

    count: int
    mean: float
    stdev: float
    min: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float

    @property
    def spread(self) -> float:
        """Interquartile-free spread used in reports: p90 − p50 (how far the slow tail reaches)."""
        return self.p90 - self.p50

    def as_dict(self, *, unit: str = "s") -> dict[str, float | int]:
        """The fields as a dict; `unit="ms"` converts every time to milliseconds (rounded to µs)."""
        scale = {"s": 1.0, "ms": 1000.0}[unit]
        out: dict[str, float | int] = {}
        for name, value in asdict(self).items():
            out[name if name == "count" else f"{name} {unit}"] = (
                value if name == "count" else round(value * scale, 6 if unit == "s" else 3)
            )
        return out

    def __str__(self) -> str:
        return (
            f"n={self.count}  p50 {self.p50 * 1000:.1f} ms  p95 {self.p95 * 1000:.1f} ms  "
            f"p99 {self.p99 * 1000:.1f} ms  (min {self.min * 1000:.1f}, max {self.max * 1000:.1f})"
        )


def summarize_latencies(samples: Iterable[float]) -> LatencySummary:
    """Summarize per-call latencies in seconds. Refuses an empty or non-finite sample clearly."""
    values = _clean(samples)
    p50, p90, p95, p99 = (float(v) for v in np.percentile(values, [50, 90, 95, 99]))
    return LatencySummary(
        count=int(values.size),
        mean=float(values.mean()),
        stdev=float(values.std(ddof=1)) if values.size > 1 else 0.0,
        min=float(values.min()),
        p50=p50,
        p90=p90,
        p95=p95,
        p99=p99,
        max=float(values.max()),
    )


def summary_table(named: Mapping[str, Iterable[float]], *, unit: str = "ms"):
    """A pandas DataFrame, one row per name, with the summary of each list of seconds."""
    import pandas as pd

    rows = {
        name: summarize_latencies(samples).as_dict(unit=unit) for name, samples in named.items()
    }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "what"
    return frame
