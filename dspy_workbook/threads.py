"""Run work in a helper thread with a time bound, keeping the caller's `dspy.context`.

A plain `threading.Thread` does **not** inherit context variables (and `dspy.context` is one), so
each helper copies the caller's context first. Notebook cells already run an event loop, so
`asyncio.run` inside a cell fails; `run_async` runs the coroutine on a fresh loop in a thread.
A thread cannot be killed: on time-out it is left to finish as a daemon and the caller moves on.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["BoundExceeded", "run_async", "run_with_timeout"]

T = TypeVar("T")


class BoundExceeded(TimeoutError):
    """The work did not finish within the caller's bound (not a `TimeoutError` the work raised)."""


def run_with_timeout(
    fn: Callable[..., T], *args: Any, timeout: float, name: str = "workbook", **kwargs: Any
) -> T:
    """`fn(*args, **kwargs)` in a daemon thread with this context; `BoundExceeded` after `timeout`.

    The function's own exception (any `BaseException`, a `TimeoutError` it raised included) is
    re-raised in the caller's thread unchanged, so the two cases stay apart.
    """
    if not (isinstance(timeout, int | float) and timeout > 0 and timeout == timeout):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    context = contextvars.copy_context()
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = context.run(fn, *args, **kwargs)
        except BaseException as exc:  # handed back to the calling thread
            box["error"] = exc

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise BoundExceeded(f"did not finish within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def run_async(main: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
    """`asyncio.run(main())` in a helper thread with this context; works in a cell and a script."""
    try:
        return run_with_timeout(lambda: asyncio.run(main()), timeout=timeout, name="workbook-async")
    except BoundExceeded:
        raise BoundExceeded(f"the coroutine did not finish within {timeout:g} s") from None
