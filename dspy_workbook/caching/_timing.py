"""Timing helpers: run questions through a cached module, record each call's time and hit/miss."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CallRecord", "ManualClock", "hit_rate_curve", "latency_table", "p50", "run_stream", "time_calls",
]


@dataclass(frozen=True)
class CallRecord:
    """One call of a stream: what was asked, how long it took, and whether the cache answered."""

    question: str
    seconds: float
    hit: bool


def run_stream(module: Any, questions: Iterable[str], *, field: str = "question") -> list[CallRecord]:
    """Call `module(**{field: q})` per question; a call is a hit when `module.hits` went up."""
    if not hasattr(module, "hits"):
        raise TypeError(f"{type(module).__name__} has no `hits` counter: pass your cached module")
    records = []
    for question in questions:
        before = module.hits
        start = time.perf_counter()
        module(**{field: question})
        seconds = time.perf_counter() - start
        records.append(CallRecord(question, seconds, module.hits > before))
    return records


def hit_rate_curve(records: Sequence[CallRecord]) -> list[float]:
    """Cumulative hit rate after each call (0.0 before any hit)."""
    curve, hits = [], 0
    for count, record in enumerate(records, start=1):
        hits += record.hit
        curve.append(hits / count)
    return curve


def time_calls(call: Callable[[], Any], n: int, *,
               before_each: Callable[[], Any] | None = None) -> list[float]:
    """Seconds taken by each of `n` calls of `call` (`before_each` runs untimed, e.g. a reset)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    times = []
    for _ in range(n):
        if before_each is not None:
            before_each()
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def p50(seconds: Sequence[float]) -> float:
    """The median, in seconds."""
    if not seconds:
        raise ValueError("p50 of no measurements")
    return statistics.median(seconds)


def latency_table(samples: dict[str, Sequence[float]]) -> list[dict[str, float | str | int]]:
    """Rows `{what, calls, p50 ms, p90 ms}` for each named list of seconds (a DataFrame's input)."""
    rows = []
    for name, values in samples.items():
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        rows.append({"what": name, "calls": len(ordered), "p50 ms": round(p50(ordered) * 1000, 3),
                     "p90 ms": round(p90 * 1000, 3)})
    return rows


class ManualClock:
    """A clock you move by hand: pass it as `clock=` to test expiry without sleeping."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds` (never backwards: real clocks used for TTL don't)."""
        if seconds < 0:
            raise ValueError(f"a clock only moves forward, got {seconds}")
        self.now += seconds
