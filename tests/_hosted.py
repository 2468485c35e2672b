"""A small loopback HTTP proxy in front of the OpenAI-compatible server, for the hosted-path tests.

It records each request body and can degrade the provider the way real ones do: strip
``response_format``/``logprobs`` (a provider that ignores them), answer 401/429 itself, answer
slowly, or drop the connection without an answer. One instance serves a whole test session; each
test sets `mode` (and resets it) — tests using it do not run in parallel.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Proxy"]

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Proxy:
    """`upstream`: the server's base URL (``http://127.0.0.1:PORT/v1``)."""

    upstream: str
    mode: str = "pass"  # pass | strip | 401 | 429 | slow | drop
    retry_after: float = 1.0
    failures: int = 1  # how many requests 429/drop before passing again
    delay: float = 5.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def reset(self, mode: str = "pass", **settings: Any) -> Proxy:
        with self._lock:
            self.mode, self.requests, self.statuses = mode, [], []
            self.retry_after, self.failures, self.delay = 1.0, 1, 5.0
            for key, value in settings.items():
                setattr(self, key, value)
        return self

    def start(self) -> Proxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                self._forward(b"")

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                self._forward(self.rfile.read(length))

            def _answer(self, status: int, body: dict, headers: dict[str, str] | None = None):
                data = json.dumps(body).encode()
                self.send_response(status)
                for key, value in {**(headers or {}), "Content-Type": "application/json"}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                proxy.statuses.append(status)

            def _forward(self, body: bytes) -> None:
                payload = json.loads(body) if body else {}
                with proxy._lock:
                    proxy.requests.append(payload)
                    mode, count = proxy.mode, len(proxy.requests)
                failing = count <= proxy.failures
                if mode == "401":
                    return self._answer(
                        401,
                        {"error": {"message": "Incorrect API key provided", "type": "auth"}},
                    )
                if mode == "429" and failing:
                    return self._answer(
                        429,
                        {"error": {"message": "Rate limit reached", "type": "rate_limit"}},
                        {"Retry-After": f"{proxy.retry_after:g}"},
                    )
                if mode == "drop" and failing:
                    proxy.statuses.append(0)
                    self.close_connection = True
                    self.connection.shutdown(2)  # no status line: the client sees a reset
                    return None
                if mode == "slow":
                    time.sleep(proxy.delay)
                if mode == "strip" and payload:
                    for key in ("response_format", "logprobs", "top_logprobs"):
                        payload.pop(key, None)
                    body = json.dumps(payload).encode()
                target = urlsplit(proxy.upstream)
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=600)
                path = target.path.rstrip("/") + self.path.removeprefix("/v1")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                upstream.request(self.command, path, body=body or None, headers=headers)
                response = upstream.getresponse()
                data = response.read()  # a stream arrives whole, then goes on as its SSE events
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in _HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                proxy.statuses.append(response.status)
                upstream.close()
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
