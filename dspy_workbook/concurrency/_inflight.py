"""Count how many calls are running at once, and the peak, for code that is not an LM."""

from __future__ import annotations

from types import TracebackType

__all__ = ["InFlight"]


class InFlight:
    """`async with counter:` around a call; `.current` and `.peak` say how many overlapped.

    Asyncio runs one task at a time on one thread, so plain integers are safe here: no other task
    can run between reading and writing them.
    """

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0
        self.total = 0

    async def __aenter__(self) -> InFlight:
        self.current += 1
        self.total += 1
        self.peak = max(self.peak, self.current)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.current -= 1

    def __repr__(self) -> str:
        return f"InFlight(current={self.current}, peak={self.peak}, total={self.total})"
