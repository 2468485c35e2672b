"""Run a student's program the way a notebook cell runs it: with an event loop already running.

In JupyterLab every cell runs while the kernel's asyncio loop runs, so code that calls
`asyncio.run` fails there. A self-check runs in a helper thread, and a test runner may have no
running loop at all; `like_a_cell` gives both the notebook's condition, so they judge the same
code the way the student's own cells will.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ..threads import run_async

__all__ = ["like_a_cell"]

T = TypeVar("T")


def like_a_cell(fn: Callable[..., T], /, *args: Any, timeout: float = 60.0, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` inside a running event loop (in a helper thread, in this context:
    `dspy.context` holds); its exception comes back as it is, `BoundExceeded` after `timeout`."""

    async def cell() -> T:
        return fn(*args, **kwargs)

    return run_async(cell, timeout=timeout)
