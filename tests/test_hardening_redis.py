"""Exercise 5's service when Redis fails: killed, frozen (SIGSTOP), and back again (issue 21).

The policy (documented in `dspy_workbook.serving.redis_state`): every Redis call is bounded in
time; the answer cache treats a failure as a miss; the rate limiter lets requests through with one
logged warning per outage and a metric (`when_redis_down="allow"`, the default), or refuses them
with 503 and `Retry-After` (`"refuse"`); when Redis answers again everything is shared again.

Redis is Debian's `redis-server` on loopback, on a free port, with no persistence; each test starts
its own and stops it. Every request and wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

import dspy_workbook as wb
from dspy_workbook.net import free_port, stop_process, wait_for_http
from dspy_workbook.serving import Settings, create_app, standin_parts
from dspy_workbook.serving.logs import capture_logs

ROOT = Path(__file__).resolve().parents[1]
KEY = {"X-API-Key": "redis-fault-key"}
OUTAGE = "redis unavailable"  # the one warning an outage logs
BACK = "redis is back"


class RedisProcess:
    """A private redis-server on 127.0.0.1 that a test can freeze, thaw, kill and restart."""

    def __init__(self, folder: Path, binary: str) -> None:
        self.binary = binary
        self.port, self.folder = free_port(), folder
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.folder), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as probe:
                    probe.sendall(b"PING\r\n")
                    if probe.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.thaw()  # a stopped process cannot act on SIGTERM
            stop_process(self.process, grace=5)

    def keys(self) -> list[str]:
        import redis

        with redis.Redis(port=self.port, socket_timeout=2, decode_responses=True) as client:
            return sorted(client.keys("*"))


@pytest.fixture
def redis_server(tmp_path, redis_server_binary):  # conftest: skipped without it, fails in CI
    server = RedisProcess(tmp_path, redis_server_binary)
    try:
        yield server
    finally:
        server.stop()


def run(coro, seconds: float = 120):
    return asyncio.run(asyncio.wait_for(coro, seconds))


def settings(url: str, **changes) -> Settings:
    return Settings(
        api_keys={"tester": KEY["X-API-Key"]},
        rate_per_second=100,
        rate_burst=100,
        redis_url=url,
        namespace="fault",
    ).with_(**changes)


async def _until_back(post, entries: list[dict], seconds: float = 15) -> httpx.Response:
    """Post until the service has logged that Redis is back (its breaker retries once a second)."""
    deadline = time.monotonic() + seconds
    while True:
        response = await post("Are you back?")
        if any(e["msg"] == BACK for e in entries) or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.2)


def _metric(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


def test_a_frozen_redis_lets_requests_through_with_one_warning_and_recovers(redis_server):
    app = create_app(
        settings(redis_server.url), lm=wb.sim_lm(latency=0.0, cache=False), parts=standin_parts()
    )
    seconds: list[float] = []

    async def go(entries: list[dict]):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

            async def post(question: str) -> httpx.Response:
                started = time.perf_counter()
                response = await client.post("/predict", json={"question": question}, headers=KEY)
                seconds.append(time.perf_counter() - started)
                return response

            before = await post("Cached before the outage?")
            redis_server.freeze()
            try:
                during = [await post(f"During the outage {i}?") for i in range(8)]
            finally:
                redis_server.thaw()
            back = await _until_back(post, entries)
            cached = await post("Cached before the outage?")
            metrics = (await client.get("/metrics")).text
            await app.state.service.close()
            return before, during, back, cached, metrics

    with capture_logs() as entries:
        before, during, back, cached, metrics = run(go(entries))
    print(f"request seconds: first {seconds[0]:.3f}, during the outage {seconds[1:9]}")
    assert before.status_code == 200 and before.headers["x-ratelimit-remaining"] == "99"
    assert [r.status_code for r in during] == [200] * 8, [r.text[:120] for r in during]
    messages = [e["msg"] for e in entries]
    assert messages.count(OUTAGE) == 1, [m for m in messages if "redis" in m]
    assert messages.count(BACK) == 1, [m for m in messages if "redis" in m]
    assert "unhandled error" not in messages
    outage = next(e for e in entries if e["msg"] == OUTAGE)
    assert outage["level"] == "warning" and outage["policy"] == "allow"
    assert "traceback" not in outage
    # back to one shared bucket and one shared cache
    assert back.status_code == 200 and "fault:bucket:tester" in redis_server.keys()
    assert cached.json()["cached"] is True
    assert _metric(metrics, 'dspy_api_redis_unavailable_total{component="limiter"}') >= 8
    assert _metric(metrics, 'dspy_api_redis_unavailable_total{component="cache"}') >= 8


def test_a_refusing_limiter_answers_503_with_retry_after_while_redis_is_down(redis_server):
    app = create_app(
        settings(redis_server.url, when_redis_down="refuse", redis_timeout=0.2),
        lm=wb.sim_lm(latency=0.0, cache=False),
        parts=standin_parts(),
    )

    async def go(entries: list[dict]):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

            async def post(question: str) -> httpx.Response:
                return await client.post("/predict", json={"question": question}, headers=KEY)

            first = await post("q")
            redis_server.kill()
            refused = [await post(f"q{i}") for i in range(5)]
            health = await client.get("/health")
            redis_server.start()
            back = await _until_back(post, entries)
            await app.state.service.close()
            return first, refused, health, back

    with capture_logs() as entries:
        first, refused, health, back = run(go(entries))
    assert first.status_code == 200
    assert [r.status_code for r in refused] == [503] * 5, [r.text[:120] for r in refused]
    for response in refused:
        error = response.json()["error"]
        assert error["type"] == "limiter_unavailable"
        assert error["request_id"] == response.headers["x-request-id"]
        assert int(response.headers["retry-after"]) >= 1
    assert health.status_code == 200
    assert [e["msg"] for e in entries].count(OUTAGE) == 1
    assert back.status_code == 200 and "fault:bucket:tester" in redis_server.keys()


def test_redis_killed_under_two_workers_gives_no_500_and_one_line_per_worker(
    redis_server, tmp_path
):
    port = free_port()
    env = {
        **os.environ,
        "WORKBOOK_LM": "sim",
        "WORKBOOK_SIM_LATENCY": "0.01",
        "WORKBOOK_API_KEYS": f"tester:{KEY['X-API-Key']}",
        "WORKBOOK_REDIS_URL": redis_server.url,
        "WORKBOOK_SERVICE_PARTS": "dspy_workbook.serving.standins:standin_parts",
        "WORKBOOK_RATE_PER_SECOND": "1000",
        "WORKBOOK_RATE_BURST": "1000",
        "WORKBOOK_CACHE_DIR": str(tmp_path / "cache"),
    }
    log = tmp_path / "uvicorn.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory",
             "dspy_workbook.serving.app:app_from_env", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "2", "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def post(i: int) -> int:
        response = httpx.post(
            url + "/predict", json={"question": f"two workers {i}"}, headers=KEY, timeout=15
        )
        return response.status_code

    try:
        wait_for_http(url + "/health")
        with ThreadPoolExecutor(4) as pool:
            before = list(pool.map(post, range(20)))
            redis_server.kill()
            during = list(pool.map(post, range(20, 60)))
    finally:
        stop_process(process)
    text = log.read_text()
    assert set(before) == {200}, before
    assert set(during) == {200}, sorted(set(during))
    assert "Traceback" not in text, text[-2000:]
    assert 1 <= text.count(OUTAGE) <= 2, text[-2000:]  # one per worker that saw the outage
