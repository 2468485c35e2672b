"""A rate limiter under a flood: when each request passed, and whether the event loop stalled."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Flood:
    """`n` acquisitions started together at `start` (perf_counter seconds)."""

    start: float
    passed: list[float]  # when each acquisition returned, in completion order
    longest_stall: float  # seconds the event loop was late waking a 10 ms ticker, at worst
    total_stall: float


async def flood(limiter: Any, n: int) -> Flood:
    """Call `await limiter.acquire()` `n` times at once; a ticker measures loop stalls meanwhile.

    A limiter that sleeps with `time.sleep` instead of `asyncio.sleep` still lets requests
    through at the right rate, but freezes every other task: the stall figures show it.
    """
    passed: list[float] = []
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - before - 0.01)

    async def one() -> None:
        await limiter.acquire()
        passed.append(time.perf_counter())

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = time.perf_counter()
    try:
        await asyncio.gather(*(one() for _ in range(n)))
    finally:
        done.set()
        await tick
    return Flood(start, passed, max(lags, default=0.0), sum(lags))
