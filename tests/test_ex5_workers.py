"""Exercise 5 beyond one process: real sockets, Redis, and two uvicorn workers sharing state.

Redis is Debian's `redis-server` (`apt-get install -y redis-server`), started here on loopback on
a free port with a temporary directory and no persistence. Every process and request is bounded
in time, and everything started is stopped.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

import dspy_workbook as wb
from dspy_workbook.net import free_port, stop_process, wait_for_http
from dspy_workbook.serving import (
    RedisAnswerCache,
    RedisRateLimiter,
    Settings,
    create_app,
    standin_parts,
)
from dspy_workbook.serving.server import find_free_port, running_servers, start_background

ROOT = Path(__file__).resolve().parents[1]
KEY = {"X-API-Key": "worker-test-key"}


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory, redis_server_binary):
    binary = redis_server_binary  # conftest: skipped without it, fails under CI
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(process, grace=10)


def run(coro, seconds: float = 30):
    return asyncio.run(asyncio.wait_for(coro, seconds))


# -- the Redis backends, in-process ---------------------------------------------------------------
def test_redis_limiter_shares_one_bucket_per_key(redis_url):
    import redis.asyncio as aioredis

    async def go():
        client = aioredis.from_url(redis_url, decode_responses=True)
        try:
            # two limiters = two workers; one bucket between them
            first = RedisRateLimiter(client, rate=0.5, burst=3, prefix="t-limit")
            second = RedisRateLimiter(client, rate=0.5, burst=3, prefix="t-limit")
            verdicts = [await (first if i % 2 else second).acquire("alice") for i in range(6)]
            other = await first.acquire("bob")
            return verdicts, other
        finally:
            await client.aclose()

    verdicts, other = run(go())
    assert [v.allowed for v in verdicts] == [True, True, True, False, False, False]
    assert verdicts[3].retry_after > 0 and verdicts[3].limit == 3
    assert other.allowed and other.remaining == 2


def test_redis_cache_round_trip(redis_url):
    import redis.asyncio as aioredis

    async def go():
        client = aioredis.from_url(redis_url, decode_responses=True)
        try:
            cache = RedisAnswerCache(client, prefix="t-cache", ttl=60)
            missing = await cache.get("k")
            await cache.put("k", {"answer": "42", "confidence": 0.5})
            return missing, await RedisAnswerCache(client, prefix="t-cache").get("k")
        finally:
            await client.aclose()

    assert run(go()) == (None, {"answer": "42", "confidence": 0.5})


# -- two uvicorn workers --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_workers(redis_url, tmp_path_factory):
    port = free_port()
    env = {
        **os.environ,
        "WORKBOOK_LM": "sim",
        "WORKBOOK_SIM_LATENCY": "0.01",
        "WORKBOOK_API_KEYS": f"tester:{KEY['X-API-Key']}",
        "WORKBOOK_REDIS_URL": redis_url,
        "WORKBOOK_SERVICE_PARTS": "dspy_workbook.serving.standins:standin_parts",
        "WORKBOOK_RATE_PER_SECOND": "1",
        "WORKBOOK_RATE_BURST": "10",
        "WORKBOOK_CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
    }
    log = tmp_path_factory.mktemp("log") / "uvicorn.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "dspy_workbook.serving.app:app_from_env",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "2",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url + "/health")
        yield url
    finally:
        stop_process(process)


def _post(url: str, question: str) -> httpx.Response:
    # a new connection per request, so the kernel spreads them over both workers
    return httpx.post(url + "/predict", json={"question": question}, headers=KEY, timeout=10)


def test_limit_holds_across_two_workers(two_workers):
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda i: _post(two_workers, f"limit {i}"), range(40)))
    elapsed = time.monotonic() - started
    statuses = Counter(r.status_code for r in responses)
    workers = {r.headers["x-served-by"] for r in responses}
    allowed = 10 + 1 * elapsed  # burst + rate × time
    assert set(statuses) <= {200, 429}, statuses
    assert len(workers) == 2, f"all requests reached one worker: {workers}"
    assert 10 <= statuses[200] <= allowed, f"admitted {statuses[200]}, allowed {allowed:.1f}"
    assert all(r.headers["x-ratelimit-limit"] == "10" for r in responses)


def test_an_answer_cached_by_one_worker_is_served_by_another(two_workers):
    time.sleep(3)  # refill a few tokens after the burst test
    first = _post(two_workers, "Which worker cached me?")
    assert first.status_code == 200 and first.json()["cached"] is False
    cached_by = first.headers["x-served-by"]
    for _ in range(60):
        again = _post(two_workers, "Which worker cached me?")
        if again.status_code == 429:
            time.sleep(float(again.headers["retry-after"]))
            continue
        if again.headers["x-served-by"] != cached_by:
            assert again.json()["cached"] is True
            assert again.json()["answer"] == first.json()["answer"]
            return
    pytest.fail("the other worker never answered")


# -- the embedded server (what the notebook's start cell does) ------------------------------------
def test_background_server_restart_reuses_the_port_and_stops_cleanly():
    settings = Settings(api_keys={"t": "k"})
    port = find_free_port("127.0.0.1", 18000)
    first = start_background(
        create_app(settings, lm=wb.sim_lm(latency=0.01), parts=standin_parts()), port=port, name="t"
    )
    try:
        assert httpx.get(first.url + "/health", timeout=5).json() == {"status": "ok"}
        second = start_background(
            create_app(settings, lm=wb.sim_lm(latency=0.01), parts=standin_parts()),
            port=port,
            name="t",
        )
        assert not first.running and second.port == port
        assert list(running_servers()) == ["t"]
        r = httpx.post(
            second.url + "/predict", json={"question": "q"}, headers={"X-API-Key": "k"}, timeout=5
        )
        assert r.status_code == 200
    finally:
        for server in running_servers().values():
            server.stop()
    assert running_servers() == {}
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)


def test_background_server_moves_to_the_next_port_when_busy():
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        server = start_background(
            create_app(Settings(), lm=wb.sim_lm(latency=0.01), parts=standin_parts()),
            port=busy,
            name="busy",
        )
        try:
            assert server.port != busy and server.requested_port == busy
            assert "was busy" in repr(server)
            assert httpx.get(server.url + "/health", timeout=5).status_code == 200
        finally:
            server.stop()
