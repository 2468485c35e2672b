"""`AsyncLocalLlamaEngine`: the local engine for `acall`, `asyncify` and async streaming.

It wraps a `LocalLlamaEngine` and shares its model, thread and queue; the event loop waits on an
`asyncio.Queue` fed from the model's thread, so it never blocks, and a cancelled task stops its
generation at the next token while the cancellation itself propagates unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Mapping
from typing import Any

from dspy.clients.engines import AsyncEngine
from dspy.lm15 import Request, Response

from .convert import Event, response_from, stream_event
from .engine import LocalLlamaEngine

__all__ = ["AsyncLocalLlamaEngine"]


class AsyncLocalLlamaEngine(AsyncEngine):
    """Async twin of `LocalLlamaEngine`: same model and thread; never blocks the event loop."""

    supports_function_calling = False
    supports_reasoning = False
    supports_response_schema = True
    supported_params = LocalLlamaEngine.supported_params

    def __init__(self, sync: LocalLlamaEngine | None = None, **engine_options: Any) -> None:
        """Wrap `sync` (or a new `LocalLlamaEngine(**engine_options)`): one model, one queue."""
        if sync is not None and engine_options:
            raise TypeError("pass either an engine or engine options, not both")
        self.sync = sync if sync is not None else LocalLlamaEngine(**engine_options)

    def dump_state(self) -> dict[str, Any]:
        """The wrapped engine's settings."""
        return self.sync.dump_state()

    @classmethod
    def load_state(cls, state: Mapping[str, Any]) -> AsyncLocalLlamaEngine:
        """Rebuild from `dump_state()` (a shared model is reused, not loaded twice)."""
        return cls(LocalLlamaEngine.load_state(state))

    async def _events(self, request: Request) -> AsyncIterator[Event]:
        """The generation's events, delivered to this event loop; cancelling stops it."""
        loop = asyncio.get_running_loop()
        channel: asyncio.Queue[Event] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: Event) -> None:
            try:
                loop.call_soon_threadsafe(channel.put_nowait, item)
            except RuntimeError:  # the event loop is closed: nobody is listening any more
                stop.set()

        future = self.sync._submit(request, emit, stop)
        try:
            try:
                item = await asyncio.wait_for(channel.get(), self.sync.wait_timeout)
            except TimeoutError:
                if future.cancel():
                    raise self.sync.busy_error() from None
                item = await channel.get()
            while item[0] not in ("done", "error"):
                yield item
                item = await channel.get()
            if item[0] == "error":
                raise item[1]
        finally:
            stop.set()  # cancelled, closed early or finished: the model's thread moves on

    async def complete(self, request: Request) -> Response:
        """Generate one whole answer (a cancelled await stops the generation at the next token)."""
        async with contextlib.aclosing(self._events(request)) as events:
            items = [item async for item in events]
        return response_from(request, items)

    async def stream(self, request: Request) -> AsyncIterator[Any]:
        """Generate one answer as stream events; closing or cancelling early frees the model."""
        async with contextlib.aclosing(self._events(request)) as events:
            async for item in events:
                yield stream_event(request, item)

    async def aclose(self) -> None:
        """Free the model if the wrapped engine owns it (in a thread: it waits for queued calls)."""
        await asyncio.to_thread(self.sync.close)
