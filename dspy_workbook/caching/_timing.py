"""Timing helpers: run questions through a cached module, record each call's time and hit/miss.

Summaries of the recorded seconds (p50, p90, …) come from `dspy_workbook.stats`, the workbook's
one latency summary; nothing here computes a percentile.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..progress import track as progress

__all__ = [
    "CallRecord",
    "ManualClock",
    "check_seconds",
    "hit_rate_curve",
    "run_stream",
    "time_calls",
]


@dataclass(frozen=True)
class CallRecord:
    """One call of a stream: what was asked, how long it took, and whether the cache answered."""

    question: str
    seconds: float
    hit: bool


def run_stream(
    module: Any, questions: Iterable[str], *, field: str = "question"
) -> list[CallRecord]:
    """Call `module(**{field: q})` per question; a call is a hit when `module.hits` went up."""
    if not hasattr(module, "hits"):
        raise TypeError(f"{type(module).__name__} has no `hits` counter: pass your cached module")
    records = []
    for question in progress(list(questions), "stream"):
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


def time_calls(
    call: Callable[[], Any],
    n: int,
    *,
    before_each: Callable[[], Any] | None = None,
    desc: str | None = None,
) -> list[float]:
    """Seconds taken by each of `n` calls of `call` (`before_each` runs untimed, e.g. a reset)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    times = []
    for _ in progress(range(n), desc or "timing"):
        if before_each is not None:
            before_each()
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def check_seconds(name: str, value: Any) -> float:
    """`value` as a number of seconds >= 0, or a ValueError that says what is wrong with it.

    A TTL of NaN would silently switch expiry off (every comparison with NaN is False), and a
    negative or infinite one means nothing: refuse them, and bools and strings, clearly.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        usable = False
    else:
        usable = 0 <= value <= sys.float_info.max  # False for NaN, infinity and huge ints
    if not usable:
        raise ValueError(
            f"{name} must be a finite number of seconds >= 0 (for no expiry use ttl=None), "
            f"got {value!r}"
        )
    return float(value)


class ManualClock:
    """A clock you move by hand: pass it as `clock=` to test expiry without sleeping."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        if not math.isfinite(start):
            raise ValueError(f"a clock starts at a finite time, got {start}")
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds` (never backwards: real clocks used for TTL don't)."""
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(
                f"a clock only moves forward by a finite number of seconds, got {seconds}"
            )
        self.now += seconds
