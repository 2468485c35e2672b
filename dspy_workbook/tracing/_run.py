"""Run a coroutine to completion from a notebook cell or a script alike."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["run_async"]

T = TypeVar("T")


def run_async(main: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
    """`asyncio.run(main())` in a worker thread that inherits this context (dspy.context included).

    Jupyter already runs an event loop, so `asyncio.run` fails in a cell; a thread of its own
    works in a notebook and in the answer-key script the same way.
    """
    context = contextvars.copy_context()
    box: dict[str, object] = {}

    def work() -> None:
        try:
            box["value"] = context.run(asyncio.run, main())
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"the coroutine did not finish within {timeout:g} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
