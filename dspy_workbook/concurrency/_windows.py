"""Did a run stay within a rate? Count events in every sliding window, or hold them against the
budget of a token bucket over every stretch of time at once."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Overrun", "max_per_window", "worst_overrun"]


def max_per_window(times: Iterable[float], window: float = 1.0) -> int:
    """The largest number of `times` inside any half-open window `[t, t + window)`.

    Only windows that start at an event need checking: sliding a window's start forward to the
    next event never loses an event, so the maximum is always reached at one of them.
    """
    if not (isinstance(window, int | float) and math.isfinite(window) and window > 0):
        raise ValueError(f"window must be a positive number of seconds, got {window!r}")
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


@dataclass(frozen=True)
class Overrun:
    """`count` events within `span` seconds, where a bucket allows only `allowed` of them."""

    count: int
    span: float
    allowed: float

    def __str__(self) -> str:
        return (
            f"{self.count} acquisitions passed within {self.span:.3f} s, where the budget "
            f"(burst + rate × {self.span:.3f} s) allows {self.allowed:.2f}"
        )


def worst_overrun(
    times: Iterable[float], *, rate: float, burst: float, slack: float = 0.5
) -> Overrun | None:
    """The stretch of time in which `times` most exceed a token bucket's budget, or None.

    A bucket of `burst` tokens refilled at `rate` per second lets at most `burst + rate × span`
    requests through in any stretch of `span` seconds — every stretch, not a few window sizes
    chosen in advance, so a limiter that lets one request too many through on each refill is
    found whatever the timing. `slack` (in tokens) forgives timestamps taken a moment after the
    limiter let the request go.
    """
    ordered = sorted(times)
    worst: Overrun | None = None
    worst_excess = slack
    for i, first in enumerate(ordered):
        for j in range(i, len(ordered)):
            span = ordered[j] - first
            allowed = burst + rate * span
            excess = j - i + 1 - allowed
            if excess > worst_excess:
                worst, worst_excess = Overrun(j - i + 1, span, allowed), excess
    return worst
