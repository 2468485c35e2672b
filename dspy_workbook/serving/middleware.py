"""What wraps every request: its id, the body-size limit, metrics, rate headers and the access log.

One pure ASGI middleware rather than several (or Starlette's `BaseHTTPMiddleware`, which costs a
task and a queue per request): it runs on every request, so it is the service's hot path.
"""

import os
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import Request
from starlette.datastructures import MutableHeaders

from .errors import STATUS_TYPES, error_response
from .limiter import RateDecision, rate_headers
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
        outcome = {"status": 500}

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
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
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                response = error_response(
                    413,
                    "payload_too_large",
                    f"request body over {self.max_body_bytes} bytes",
                    request_id,
                )
                await response(scope, receive, send_with_headers)
            else:
                await self.app(scope, receive, send_with_headers)
        finally:
            metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            status = outcome["status"]
            known = route if route in ("/predict", "/health", "/ready", "/metrics") else "other"
            metrics.requests.labels(known, scope.get("method", ""), str(status)).inc()
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
                        "method": scope.get("method"),
                        "path": route,
                        "status": status,
                        "latency_ms": round(elapsed * 1000, 2),
                        "client": state.get("client"),
                        "error_type": state.get("error_type"),
                    },
                )
