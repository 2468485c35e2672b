"""A webhook receiver on loopback: what a chat tool or pager would be, for tests and demos."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["WebhookReceiver"]


class WebhookReceiver:
    """Collects JSON POSTed to `url` (127.0.0.1, a free port); `delay`/`status` simulate trouble."""

    def __init__(self, *, delay: float = 0.0, status: int = 200) -> None:
        self.received: list[dict[str, Any]] = []
        self.delay, self.status = delay, status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if receiver.delay:
                    time.sleep(receiver.delay)
                try:
                    receiver.received.append(json.loads(body))
                except ValueError:
                    receiver.received.append({"invalid": body.decode(errors="replace")})
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # keep notebooks and test logs quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/alerts"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The received alerts once there are at least `count` (or what arrived by `timeout`)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.received)
