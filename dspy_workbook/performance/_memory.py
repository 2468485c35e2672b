"""Process memory as the operating system sees it (psutil), beside what tracemalloc can see.

`tracemalloc` counts allocations made through Python's allocator only. llama.cpp's weights are a
memory-mapped file and its KV cache is C memory: both are invisible to it, and both show up in
the resident set size (RSS) of the process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psutil

__all__ = ["MB", "ProfileRecord", "profile_table", "rss_bytes", "to_mb"]

MB = 1024 * 1024


def rss_bytes() -> int:
    """This process's resident set size now, in bytes."""
    return int(psutil.Process().memory_info().rss)


def to_mb(n_bytes: float) -> float:
    """Bytes to MiB, rounded to 0.01."""
    return round(n_bytes / MB, 2)


@dataclass(frozen=True)
class ProfileRecord:
    """One profiled block: wall time, Python peak above its start, process RSS, nesting depth."""

    name: str
    seconds: float
    python_peak: int  # bytes, tracemalloc's peak above what was traced when the block started
    rss_before: int  # bytes
    rss_after: int  # bytes
    depth: int = 0  # profiles open around this one


def profile_table(records: Sequence[ProfileRecord]):
    """A DataFrame of `records` (sizes in MiB), in the order given."""
    import pandas as pd

    rows = [
        {
            "name": r.name,
            "depth": r.depth,
            "seconds": round(r.seconds, 4),
            "python_peak_mb": to_mb(r.python_peak),
            "rss_before_mb": to_mb(r.rss_before),
            "rss_after_mb": to_mb(r.rss_after),
            "rss_change_mb": to_mb(r.rss_after - r.rss_before),
        }
        for r in records
    ]
    columns = [
        "name",
        "depth",
        "seconds",
        "python_peak_mb",
        "rss_before_mb",
        "rss_after_mb",
        "rss_change_mb",
    ]
    return pd.DataFrame(rows, columns=columns)
