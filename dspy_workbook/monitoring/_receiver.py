"""A webhook receiver on loopback: what a chat tool or pager would be, for tests and demos."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["WebhookReceiver"]


class WebhookReceiver:
    """Collects JSON POSTed to `url` (127.0.0.1, a free port); `delay`, `status` and `trickle`
    simulate trouble.

    `delay` waits before answering; `trickle` answers one byte every `trickle` seconds (about 100
    bytes in all), like a receiver that is overloaded or a proxy that is stuck: a client whose
    time-out applies to each socket read would wait for the whole answer.
    """

    def __init__(self, *, delay: float = 0.0, status: int = 200, trickle: float = 0.0) -> None:
        self.received: list[dict[str, Any]] = []
        self.delay, self.status, self.trickle = delay, status, trickle
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
                if receiver.trickle:
                    self._trickle(receiver.trickle)
                    return
                self.send_response(receiver.status)
                self.end_headers()

            def _trickle(self, pause: float) -> None:
                body = b'{"ok": true, "note": "answered one byte at a time"}'
                answer = (
                    f"HTTP/1.1 {receiver.status} OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode() + body
                self.close_connection = True
                for byte in answer:
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:  # the client gave up: stop trickling
                        return
                    time.sleep(pause)

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
