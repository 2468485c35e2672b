"""Fast-forward: an event loop whose clock jumps over idle waits, so tests of rates are quick.

A token bucket that lets 20 requests a second through needs about 1.5 s of real waiting for 30
requests, and a test of "the budget holds after idling" needs a second of idling on top. On a
`FastForwardLoop` the same waits take no real time: whenever every task is asleep, the loop's
clock jumps to the next wake-up instead of sleeping until it. Everything the loop schedules
(`asyncio.sleep`, `asyncio.timeout`, `loop.call_later`) follows the jumps, and so does code that
reads the loop's clock (`loop.time()`, or a clock it was handed: `TokenBucket(clock=loop.time)`).

What it does not change: `time.monotonic()` and `time.perf_counter()` keep real time and see none
of the jumps, and work that blocks the thread (`time.sleep`, a long computation) still takes real
time — the loop's clock includes it, so a blocked loop shows as a stall. Use it only for code that
waits on asyncio timers: work handed to threads still takes real time while the clock may jump
past it.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..threads import run_with_timeout

__all__ = ["FastForwardLoop", "run_fast_forward"]

T = TypeVar("T")


class _JumpingSelector:
    """The loop's own selector, except that a wait with nothing ready moves the clock instead."""

    def __init__(self, selector: selectors.BaseSelector, loop: FastForwardLoop) -> None:
        self._selector = selector
        self._loop = loop

    def select(self, timeout: float | None = None) -> list:
        ready = self._selector.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # no timer at all: only real I/O (another thread's wake-up) can come
            return self._selector.select(None)
        self._loop.jumped += timeout  # every task is asleep until the next timer: go there now
        return []

    def __getattr__(self, name: str) -> Any:  # register, unregister, get_map, close …
        return getattr(self._selector, name)


class FastForwardLoop(asyncio.SelectorEventLoop):
    """An event loop whose `time()` is real time plus every idle wait it skipped (`jumped`)."""

    def __init__(self) -> None:
        super().__init__()
        self.jumped = 0.0
        self._selector = _JumpingSelector(self._selector, self)

    def time(self) -> float:
        return super().time() + self.jumped


def run_fast_forward(main: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    """`main()` on a fresh `FastForwardLoop` in a helper thread (so it works inside a notebook
    cell, whose own loop is running); `threads.BoundExceeded` after `timeout` real seconds."""

    def go() -> T:
        with asyncio.Runner(loop_factory=FastForwardLoop) as runner:
            return runner.run(main())

    return run_with_timeout(go, timeout=timeout, name="workbook-fast-forward")
