"""Exercise 5's service under the probes of an adversarial review (issue 21), one class per test.

The body limit counts the bytes actually received (chunked bodies too) and stops reading at the
limit; metric labels come from closed sets; a 500 carries the request-id headers like every other
answer; an API key that HTTP cannot carry is refused when the service is configured. In-process
(httpx's ASGI transport, raw ASGI calls) plus one real-socket check of the chunked body; every
loop and wait is bounded.
"""

from __future__ import annotations

import asyncio
import re
import select
import socket

import dspy
import httpx
import pytest
from fastapi.testclient import TestClient

import dspy_workbook as wb
from dspy_workbook.serving import Settings, create_app, standin_parts, start_background
from dspy_workbook.serving.logs import capture_logs

KEY = {"X-API-Key": "hardening-key-1"}
MAX_CHARS = 100
JSON_KEY = {**KEY, "Content-Type": "application/json"}
LIMIT = MAX_CHARS * 6 + 1024  # the app's documented body limit for MAX_CHARS


def run(coro, seconds: float = 30):
    return asyncio.run(asyncio.wait_for(coro, seconds))


def make_app(**changes):
    settings = Settings(
        api_keys={"tester": KEY["X-API-Key"]},
        rate_per_second=1000,
        rate_burst=1000,
        max_question_chars=MAX_CHARS,
    ).with_(**changes)
    return create_app(settings, lm=wb.sim_lm(latency=0.0, cache=False), parts=standin_parts())


# -- 1. the body limit counts received bytes ------------------------------------------------------
def test_a_chunked_body_over_the_limit_is_413_not_parsed() -> None:
    async def chunks():
        # no Content-Length: httpx sends this with Transfer-Encoding: chunked
        yield b'{"question": "'
        for _ in range(200):
            yield b"x" * 50_000  # 10 MB in all
        yield b'"}'

    async def go():
        transport = httpx.ASGITransport(app=make_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post("/predict", content=chunks(), headers=JSON_KEY)

    response = run(go())
    assert response.status_code == 413, (response.status_code, response.text[:200])
    error = response.json()["error"]
    assert error["type"] == "payload_too_large"
    assert error["request_id"] == response.headers["x-request-id"]


def test_a_chunked_body_within_the_limit_is_answered() -> None:
    async def chunks():
        for piece in (b'{"question": ', b'"What is ', b'DSPy?"}'):
            yield piece

    async def go():
        transport = httpx.ASGITransport(app=make_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post("/predict", content=chunks(), headers=JSON_KEY)

    response = run(go())
    assert response.status_code == 200, response.text
    assert response.json()["question"] == "What is DSPy?"


def test_an_endless_body_is_read_only_up_to_the_limit() -> None:
    """Raw ASGI: the client's body never ends. The app must stop reading at the limit and answer
    413 (reading it whole would never return)."""
    app = make_app()
    pulled = {"messages": 0}
    sent: list[dict] = []
    chunk = b"x" * 4096

    async def receive() -> dict:
        pulled["messages"] += 1
        if pulled["messages"] > 10_000:  # 40 MB: the test's own bound, far past the limit
            raise AssertionError("the app kept reading an endless body")
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"t"),
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
            (b"x-api-key", KEY["X-API-Key"].encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("t", 80),
    }
    run(app(scope, receive, send), 60)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 413
    assert pulled["messages"] <= LIMIT // len(chunk) + 2, pulled


def test_a_chunked_body_over_the_limit_is_413_over_a_real_socket() -> None:
    server = start_background(make_app(), port=18700, name="hardening-chunked")
    try:
        with socket.create_connection((server.host, server.port), timeout=10) as sock:
            sock.sendall(
                b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n"
                + f"X-API-Key: {KEY['X-API-Key']}\r\n\r\n".encode()
            )
            answer = b""
            for _ in range(2000):  # at most 2 MB, 1 KB a chunk, until the server answers
                try:
                    sock.sendall(b"400\r\n" + b"x" * 1024 + b"\r\n")
                except OSError:  # the server answered and closed: read what it said
                    break
                if select.select([sock], [], [], 0.01)[0]:
                    break
            while b"\r\n\r\n" not in answer:
                try:
                    data = sock.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                answer += data
    finally:
        server.stop()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert re.search(rb"(?i)\r\nx-request-id: [0-9a-f]{32}\r\n", answer), answer[:400]


# -- 2. every metric label comes from a closed set ------------------------------------------------
def test_invented_methods_share_one_label_value() -> None:
    async def go():
        app = make_app()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for i in range(60):
                await client.request(f"INVENTED{i}", "/health")
            await client.request("get", "/health")  # lower case: a different method to HTTP
            await client.get("/health")
            return (await client.get("/metrics")).text

    text = run(go())
    methods = set(re.findall(r'dspy_api_requests_total\{[^}]*method="([^"]*)"', text))
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}, sorted(
        methods
    )[:10]
    assert "other" in methods and "GET" in methods
    statuses = set(re.findall(r'dspy_api_requests_total\{[^}]*status="([^"]*)"', text))
    assert all(s.isdigit() and len(s) == 3 for s in statuses), statuses


# -- 4. a 500 carries the same headers as every other answer --------------------------------------
class Broken(dspy.Module):
    async def aforward(self, question, **config):
        raise KeyError("internal detail")


def test_a_500_carries_the_request_id_and_worker_headers() -> None:
    settings = Settings(api_keys={"tester": KEY["X-API-Key"]})
    app = create_app(
        settings, lm=wb.sim_lm(latency=0.0, cache=False), program=Broken(), parts=standin_parts()
    )
    with capture_logs() as entries, TestClient(app, raise_server_exceptions=False) as client:
        given = client.post(
            "/predict", json={"question": "q"}, headers={**KEY, "X-Request-ID": "trace-500"}
        )
        fresh = client.post("/predict", json={"question": "q"}, headers=KEY)
    assert given.status_code == 500 and fresh.status_code == 500
    assert given.headers.get("x-request-id") == "trace-500"
    assert given.json()["error"]["request_id"] == "trace-500"
    assert fresh.headers.get("x-request-id") == fresh.json()["error"]["request_id"]
    assert fresh.headers.get("x-served-by", "").startswith("worker-")
    assert "internal detail" not in given.text and "Traceback" not in given.text
    errors = [e for e in entries if e["msg"] == "unhandled error"]
    assert [e["request_id"] for e in errors] == ["trace-500", fresh.headers["x-request-id"]]
    access = [e for e in entries if e["msg"] == "request"]
    assert [e["status"] for e in access] == [500, 500], access
    assert "internal detail" in errors[0].get("traceback", ""), errors[0]


def test_a_500_is_counted_as_an_internal_error() -> None:
    settings = Settings(api_keys={"tester": KEY["X-API-Key"]})
    app = create_app(
        settings, lm=wb.sim_lm(latency=0.0, cache=False), program=Broken(), parts=standin_parts()
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        client.post("/predict", json={"question": "q"}, headers=KEY)
        text = client.get("/metrics").text
    assert 'dspy_api_errors_total{type="internal_error"} 1.0' in text
    assert re.search(r'dspy_api_requests_total\{[^}]*status="500"[^}]*\} 1\.0', text), text


# -- 5. an API key HTTP cannot carry is refused when configured -----------------------------------
@pytest.mark.parametrize(
    "key", ["ключ-secret", "key with\ttab", "trailing-space ", "é-accent", "nul\x00key", ""]
)
def test_a_key_http_cannot_carry_is_refused_at_configuration(key: str) -> None:
    with pytest.raises(ValueError) as caught:
        Settings(api_keys={"ops": "good-key", "alice": key})
    message = str(caught.value)
    assert "alice" in message and "\n" not in message
    assert not key or key not in message  # the secret is never repeated in an error


def test_a_non_ascii_key_in_the_environment_is_refused_with_its_variable() -> None:
    with pytest.raises(ValueError, match="WORKBOOK_API_KEYS") as caught:
        Settings.from_env({"WORKBOOK_API_KEYS": "alice:ключ-secret"})
    assert "ASCII" in str(caught.value) and "ключ" not in str(caught.value)


def test_every_printable_ascii_key_still_works_end_to_end() -> None:
    key = "".join(chr(c) for c in range(0x21, 0x7F)) + " inner space"
    app = create_app(
        Settings(api_keys={"tester": key}),
        lm=wb.sim_lm(latency=0.0, cache=False),
        parts=standin_parts(),
    )
    with TestClient(app) as client:
        ok = client.post("/predict", json={"question": "q"}, headers={"X-API-Key": key})
    assert ok.status_code == 200, ok.text
