"""Latency percentiles without numpy: small samples, exact definitions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["LatencySummary", "percentile", "summarize"]


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0–100), interpolating between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of an empty sample")
    if not 0 <= q <= 100:
        raise ValueError(f"q is a percentage between 0 and 100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class LatencySummary:
    """How many requests, how fast overall, and how long one took (median and tail)."""

    n: int
    seconds: float
    requests_per_second: float
    p50: float
    p95: float


def summarize(latencies: Sequence[float], wall_seconds: float) -> LatencySummary:
    """Summarize per-request latencies measured during a run that took `wall_seconds`."""
    if wall_seconds <= 0:
        raise ValueError(f"wall_seconds must be > 0, got {wall_seconds}")
    return LatencySummary(
        n=len(latencies),
        seconds=wall_seconds,
        requests_per_second=len(latencies) / wall_seconds,
        p50=percentile(latencies, 50),
        p95=percentile(latencies, 95),
    )
