"""AWS Lambda entry point: the same app behind API Gateway, through Mangum.

Deploy the container image (or a zip of the package and a module with your service's parts)
with the handler `dspy_workbook.serving.lambda_handler.handler`; configure it with the same
`WORKBOOK_*` environment variables as the container, `WORKBOOK_SERVICE_PARTS` among them (the
module and name of your `ServiceParts`). Lambda's file system is read-only except `/tmp`: set
`WORKBOOK_CACHE_DIR=/tmp/workbook` and `DSPY_CACHEDIR=/tmp/dspy` there. Lambda runs one request at
a time per instance, so a shared rate limit needs `WORKBOOK_REDIS_URL` (e.g. ElastiCache).

The app is built on the first invocation and kept for the next ones (a warm instance reuses it);
its state is started lazily, so Mangum runs without the ASGI lifespan.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from mangum import Mangum

from .app import create_app
from .settings import Settings

__all__ = ["LambdaHandler", "handler", "make_handler"]

_HANDLER: LambdaHandler | None = None


class LambdaHandler:
    """Mangum around the app, with an event loop for the calling thread.

    Mangum runs each event with `asyncio.get_event_loop().run_until_complete(...)`; a thread
    without a loop (a helper thread; any thread on Python >= 3.14) has none, so one is made and
    kept per thread. Calling it while a loop is *running* in this thread is refused with a clear
    error: that is a notebook cell — call it from a helper thread there.
    """

    def __init__(self, adapter: Mangum) -> None:
        self.adapter = adapter
        self._local = threading.local()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "the Lambda handler runs its own event loop: call it from a thread "
                "without a running loop (e.g. dspy_workbook.threads.run_with_timeout)"
            )
        loop = getattr(self._local, "loop", None)
        if loop is None or loop.is_closed():
            loop = self._local.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        return self.adapter(event, context)


def make_handler(settings: Settings | None = None, **app_options: Any) -> LambdaHandler:
    """A Lambda handler around `create_app(settings, **app_options)` (settings and, without
    `parts=`, the service's parts default to the environment's)."""
    app = create_app(settings or Settings.from_env(), **app_options)
    return LambdaHandler(Mangum(app, lifespan="off"))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda handler: builds the app once per instance, then serves each event."""
    global _HANDLER
    if _HANDLER is None:
        _HANDLER = make_handler()
    return _HANDLER(event, context)
