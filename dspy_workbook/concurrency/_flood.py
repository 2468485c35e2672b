"""A rate limiter under a flood: when each request passed, and whether the event loop stalled.

Times are the running loop's clock (`loop.time()`): real seconds on an ordinary loop, and the
jumping clock of a `FastForwardLoop`, where `trial_bucket` runs a bucket so that a test of a
20-per-second limiter over several seconds takes milliseconds.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ._fastforward import run_fast_forward

__all__ = ["Flood", "FloodUnfinished", "flood", "trial_bucket"]


@dataclass(frozen=True)
class Flood:
    """`n` acquisitions started together at `start` (the loop's clock, in seconds)."""

    start: float
    passed: list[float]  # when each acquisition returned, in completion order
    longest_stall: float  # seconds the event loop was late waking a 10 ms ticker, at worst
    total_stall: float  # those delays added up

    @property
    def took(self) -> float:
        """From the start to the last acquisition that returned."""
        return max(self.passed, default=self.start) - self.start


class FloodUnfinished(Exception):
    """Not every acquisition returned within the flood's bound (on the loop's clock)."""

    def __init__(self, n: int, returned: int, within: float, why: str = "") -> None:
        super().__init__(f"{returned} of {n} `acquire()` calls returned within {within:g} s{why}")
        self.n, self.returned, self.within = n, returned, within


async def flood(limiter: Any, n: int, within: float | None = None) -> Flood:
    """Call `await limiter.acquire()` `n` times at once; a ticker measures loop stalls meanwhile.

    A limiter that sleeps with `time.sleep` instead of `asyncio.sleep` still lets requests
    through at the right rate, but freezes every other task: the stall figures show it. With
    `within`, acquisitions still waiting after that many seconds are cancelled and
    `FloodUnfinished` says how many returned.
    """
    loop = asyncio.get_running_loop()
    passed: list[float] = []
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - before - 0.01)

    async def one() -> None:
        await limiter.acquire()
        passed.append(loop.time())

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = loop.time()
    try:
        async with asyncio.timeout(within):
            await asyncio.gather(*(one() for _ in range(n)))
    except TimeoutError:
        raise FloodUnfinished(n, len(passed), within or 0.0) from None
    finally:
        done.set()
        await tick
    return Flood(start, passed, max(lags, default=0.0), sum(lags))


def trial_bucket(
    bucket_class: Any, *, rate: float, burst: int, n: int, idle: float, seconds: float = 20.0
) -> list[Flood]:
    """Two floods of `n` on one `bucket_class(rate=…, burst=…, clock=loop.time)`, `idle` seconds
    apart, on a `FastForwardLoop`: the waits are skipped, so this takes milliseconds, not the
    seconds the same test needs in real time.

    Each flood may take `(n - burst) / rate × 3 + 1` seconds of loop time before it counts as
    unfinished (`FloodUnfinished`); the whole trial at most `seconds` of real time
    (`threads.BoundExceeded`).
    """
    within = (n - burst) / rate * 3 + 1

    async def main() -> list[Flood]:
        bucket = bucket_class(rate=rate, burst=burst, clock=asyncio.get_running_loop().time)
        first = await flood(bucket, n, within)
        await asyncio.sleep(idle)  # idle: a bucket may refill to `burst`, never beyond
        return [first, await flood(bucket, n, within)]

    try:
        return run_fast_forward(main, timeout=seconds)
    except FloodUnfinished as exc:
        raise FloodUnfinished(
            exc.n,
            exc.returned,
            exc.within,
            f" at {rate:g}/s with a burst of {burst}, on a clock that skips idle waits: does "
            "`acquire` return once a token is back, and read the time only with `self.clock()`?",
        ) from None
