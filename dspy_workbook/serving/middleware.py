"""What wraps every request: its id, the body-size limit, metrics, rate headers and the access log.

One pure ASGI middleware rather than several (or Starlette's `BaseHTTPMiddleware`, which costs a
task and a queue per request): it runs on every request, so it is the service's hot path.

* **The body limit counts the bytes received**, not the `Content-Length` a client announces: a
  chunked body has none. The app reads the body through a `receive` that stops at the limit
  (413), so an endless or 10 MB body costs at most the limit in memory, never all of it.
* **Every answer carries `X-Request-ID` and `X-Served-By`, a 500 too.** Starlette answers an
  unhandled exception in `ServerErrorMiddleware`, outside every user middleware, so its 500 would
  lack them: a bug is answered here instead — a JSON 500 with the headers, and one log line with
  the traceback.
* **Metric labels come from closed sets** (`metrics.method_label`): a client may send any method.
"""

import os
import re
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import Request
from starlette.datastructures import MutableHeaders

from .errors import STATUS_TYPES, ServiceError, error_response
from .limiter import RateDecision, rate_headers
from .metrics import method_label
from .service import Service

__all__ = ["ObserveMiddleware", "request_id_of"]

# A client's X-Request-ID is kept only when it cannot forge or break a log line.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def request_id_of(request: Request) -> str:
    """The id `ObserveMiddleware` gave this request (a fresh one if it did not run)."""
    return request.scope.get("state", {}).get("request_id") or uuid.uuid4().hex


class ObserveMiddleware:
    """Pure ASGI (no `BaseHTTPMiddleware`: that one costs a task and a queue per request)."""

    def __init__(self, app: Any, service: Service, max_body_bytes: int) -> None:
        self.app, self.service, self.max_body_bytes = app, service, max_body_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        metrics, started = self.service.metrics, time.perf_counter()
        outcome = {"status": 500, "started": False}
        limit, received = self.max_body_bytes, 0

        async def receive_within_limit() -> dict:
            # Raised as an HTTPException so that FastAPI, reading the body, answers it as a 413.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body") or b"")
                if received > limit:
                    raise ServiceError(413, "payload_too_large", f"request body over {limit} bytes")
            return message

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                outcome["status"], outcome["started"] = message["status"], True
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                headers["X-Served-By"] = f"worker-{os.getpid()}"  # which worker answered
                decision: RateDecision | None = state.get("rate")
                if decision is not None:
                    for name, value in rate_headers(decision).items():
                        headers[name] = value
            await send(message)

        route = scope.get("path", "")
        length = dict(scope.get("headers") or ()).get(b"content-length")
        metrics.in_flight.inc()
        try:
            if length is not None and length.isdigit() and int(length) > limit:
                state["error_type"] = "payload_too_large"
                response = error_response(
                    413, "payload_too_large", f"request body over {limit} bytes", request_id
                )
                await response(scope, receive, send_with_headers)
            else:
                await self.app(scope, receive_within_limit, send_with_headers)
        except Exception as exc:
            if outcome["started"]:  # too late for a 500: Starlette and the server take it from here
                raise
            if isinstance(exc, ServiceError):  # e.g. the 413 of a body read outside FastAPI
                state["error_type"] = exc.error_type
                response = error_response(
                    exc.status_code, exc.error_type, str(exc.detail), request_id, exc.headers
                )
                await response(scope, receive, send_with_headers)
                return
            state["error_type"] = "internal_error"
            self.service.log.error(
                "unhandled error",
                extra={
                    "request_id": request_id,
                    "exception": type(exc).__name__,
                    "traceback": "".join(traceback.format_exception(exc))[-8000:],
                },
            )
            response = error_response(
                500, "internal_error", "internal error; quote the request id", request_id
            )
            await response(scope, receive, send_with_headers)
        finally:
            metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            status = outcome["status"]
            known = route if route in ("/predict", "/health", "/ready", "/metrics") else "other"
            method = method_label(scope.get("method"))
            metrics.requests.labels(known, method, str(status)).inc()
            metrics.duration.labels(known).observe(elapsed)
            if status >= 400:
                metrics.errors.labels(
                    state.get("error_type")
                    or STATUS_TYPES.get(
                        status, "internal_error" if status >= 500 else "client_error"
                    )
                ).inc()
            if route != "/metrics":
                self.service.log.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": str(scope.get("method"))[:16],
                        "path": route[:200],
                        "status": status,
                        "latency_ms": round(elapsed * 1000, 2),
                        "client": state.get("client"),
                        "error_type": state.get("error_type"),
                    },
                )
