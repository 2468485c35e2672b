"""Did a run stay within a rate? Count events in every sliding window."""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["max_per_window"]


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
