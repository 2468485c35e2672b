"""`dspy_workbook.net.wait_for_http` against a loopback server that wants a key."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from dspy_workbook.net import wait_for_http

KEY = {"Authorization": "Bearer right"}


class _KeyedHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 — the name http.server calls
        self.send_response(
            200 if self.headers.get("Authorization") == KEY["Authorization"] else 401
        )
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def keyed_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _KeyedHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/models"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_waits_until_the_server_answers_200_to_the_request_with_its_headers(keyed_url: str) -> None:
    wait_for_http(keyed_url, 5, headers=KEY)


def test_a_refusal_is_not_an_answer_and_the_timeout_names_the_url(keyed_url: str) -> None:
    with pytest.raises(TimeoutError, match=keyed_url):
        wait_for_http(keyed_url, 0.5)  # 401 without the key: not ready, until the deadline
    with pytest.raises(TimeoutError):
        wait_for_http(keyed_url, 0.5, headers={"Authorization": "Bearer wrong"})
