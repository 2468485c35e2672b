"""Profile records and their tables: time, CPU, Python memory and process memory of a code block.

`tracemalloc` counts allocations made through Python's allocator only. llama.cpp's weights are a
memory-mapped file and its KV cache is C memory: both are invisible to it, and both show up in
the resident set size (RSS) of the process, which `rss_bytes()` reads.

Wall time against CPU time tells *what kind* of slow a block is: a block that waits (for the
network, a sleep, another thread's lock) uses little CPU; a block that computes uses about one
CPU-second per second per busy thread — and the local model computes on threads of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import psutil

__all__ = [
    "MB",
    "ProfileRecord",
    "no_profile",
    "profile_table",
    "rss_bytes",
    "stage_table",
    "to_mb",
]

MB = 1024 * 1024


def rss_bytes() -> int:
    """This process's resident set size now, in bytes."""
    return int(psutil.Process().memory_info().rss)


def to_mb(n_bytes: float) -> float:
    """Bytes to MiB, rounded to 0.01."""
    return round(n_bytes / MB, 2)


@dataclass(frozen=True)
class ProfileRecord:
    """One profiled block: wall and CPU time, Python peak above its start, RSS, nesting depth."""

    name: str
    seconds: float  # wall time of the block
    cpu_seconds: float  # CPU time the whole process used meanwhile (all threads)
    python_peak: int  # bytes: the most Python memory held at once, above the block's start
    rss: int  # bytes: the process's resident set size when the block ended
    depth: int = 0  # profiles open around this one


@contextlib.contextmanager
def no_profile(name: str) -> Iterator[None]:
    """A stand-in for `Profiler.profile` that measures nothing (a program run unprofiled)."""
    yield


def profile_table(records: Sequence[ProfileRecord]):
    """A DataFrame of `records` in the order given (names indented by depth, sizes in MiB)."""
    import pandas as pd

    rows = [
        {
            "block": "  " * max(0, r.depth) + str(r.name),
            "seconds": round(r.seconds, 4),
            "CPU s": round(r.cpu_seconds, 4),
            "python peak MiB": to_mb(r.python_peak),
            "RSS MiB": to_mb(r.rss),
        }
        for r in records
    ]
    return pd.DataFrame(rows, columns=["block", "seconds", "CPU s", "python peak MiB", "RSS MiB"])


def stage_table(records: Sequence[ProfileRecord]):
    """One row per block name, totals over its records: how often, how long, which kind of slow.

    `share` is the name's wall time over the outermost blocks' (depth 0) total. `CPU/wall` near 0
    means the block waited; near 1 per busy thread, that it computed.
    """
    import pandas as pd

    if not records:
        raise ValueError("no records yet: profile some blocks first")
    total = sum(r.seconds for r in records if r.depth == 0) or float("nan")
    names: dict[str, list[ProfileRecord]] = {}
    for record in records:
        names.setdefault(record.name, []).append(record)
    rows = []
    for name, group in names.items():
        seconds = sum(r.seconds for r in group)
        cpu = sum(r.cpu_seconds for r in group)
        rows.append(
            {
                "block": "  " * min(r.depth for r in group) + str(name),
                "runs": len(group),
                "seconds": round(seconds, 3),
                "share": f"{seconds / total:.0%}" if total == total else "",
                "CPU s": round(cpu, 3),
                "CPU/wall": round(cpu / seconds, 2) if seconds > 0 else float("nan"),
                "python peak MiB": max(to_mb(r.python_peak) for r in group),
                "RSS MiB": max(to_mb(r.rss) for r in group),
            }
        )
    return pd.DataFrame(rows).set_index("block")
