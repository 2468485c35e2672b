"""Exercise 5 bench: the service under `wrk`, next to a bare FastAPI endpoint, in one run.

Run:  PYTHONPATH=. python bench/bench_serving.py [--seconds 5] [--connections 16]
      needs Debian's `wrk` and `redis-server` (apt-get install -y wrk redis-server)

Everything listens on 127.0.0.1 on free ports and is stopped at the end. Backend: the simulated
provider (no model noise). Rows:

1. **bare** — a FastAPI app with one `POST /predict` that validates the same body and returns a
   constant: the ceiling of the web stack itself (uvicorn + FastAPI + pydantic).
2. **service, cache hits** — `create_app(...)` with 1 worker and the master's reference parts
   (`tools/reference_service.py`), every request the same question (an answer-cache hit): auth,
   rate limiter, cache, metrics, JSON logs, request ids. Goal: at least 50% of bare's
   requests/second.
3. **service, cache misses** — every request a new question, the simulated LM answering in
   50 ms: latency percentiles (p50/p99) under a bounded concurrent load.
4. **limit across 2 workers** — `--workers 2`, limiter in memory vs in Redis, a limit of
   5/s with a burst of 10, hammered for `--seconds`: admitted vs allowed (burst + rate × time).

Figures only: nothing asserts a speed (the machine is shared; timings are noisy).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from dspy_workbook import env as var
from dspy_workbook.net import free_port, stop_process, wait_for_http

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key-0123456789"

# -- the bare endpoint (served by uvicorn as `bench_serving:bare_app`) ----------------------------
bare_app = FastAPI()


class _Question(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    question: str = Field(min_length=1, max_length=2000)


@bare_app.post("/predict")
async def bare_predict(body: _Question) -> dict[str, object]:
    return {"question": body.question, "answer": "constant", "confidence": 1.0}


@bare_app.get("/health")
async def bare_health() -> dict[str, str]:
    return {"status": "ok"}


# -- wrk scripts ------------------------------------------------------------------------------
_WRK_SAME = f"""
wrk.method = "POST"
wrk.body = '{{"question": "What is the capital of France?"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "{KEY}"
"""

# A new connection per request: the kernel spreads connections over the workers (keep-alive
# connections opened at once may all land in one worker, which would hide a per-worker limit).
_WRK_SAME_CLOSE = _WRK_SAME + 'wrk.headers["Connection"] = "close"\n'

_WRK_DISTINCT = f"""
local counter = 0
local thread_id = 0
setup = function(thread) thread:set("tid", thread_id); thread_id = thread_id + 1 end
request = function()
  counter = counter + 1
  local body = string.format('{{"question": "Bench miss %d-%d?"}}', tid, counter)
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json",
                                  ["X-API-Key"] = "{KEY}"}}, body)
end
"""


@contextmanager
def _process(cmd: list[str], env: dict[str, str], ready_url: str | None = None) -> Iterator[None]:
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        if ready_url:
            wait_for_http(ready_url)
        yield
    finally:
        stop_process(proc)


@contextmanager
def _uvicorn(
    target: str,
    env: dict[str, str],
    workers: int = 1,
    factory: bool = False,
    app_dir: str | None = None,
) -> Iterator[str]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    if factory:
        cmd.append("--factory")
    if app_dir:
        cmd += ["--app-dir", app_dir]
    url = f"http://127.0.0.1:{port}"
    with _process(cmd, env, url + "/health"):
        yield url


@contextmanager
def _redis(folder: str) -> Iterator[str]:
    port = free_port()
    cmd = [
        shutil.which("redis-server") or "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        folder,
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    with _process(cmd, dict(os.environ)):
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"


def _unit(value: str) -> float:
    """wrk's '1.23ms' / '456.00us' / '1.02s' → seconds."""
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def wrk(url: str, script: str, seconds: int, connections: int) -> dict[str, float]:
    """Run wrk on `url` with a Lua `script`; requests/s, latency percentiles, non-2xx count."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script)
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "10s",
                "--latency",
                "-s",
                lua.name,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    finally:
        os.unlink(lua.name)
    result = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "non2xx": int(m.group(1))
        if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out))
        else 0,
    }
    for pct in ("50", "90", "99"):
        result[f"p{pct}"] = _unit(re.search(rf"\s{pct}%\s+(\S+)", out).group(1))
    return result


def _service_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        var.LM: "sim",
        var.API_KEYS: f"bench:{KEY}",
        var.RATE_PER_SECOND: "1000000",
        var.RATE_BURST: "1000000",
        var.SIM_LATENCY: "0.05",
        # the package holds no answer to Exercise 5: the service gets the master's reference parts
        var.SERVICE_PARTS: f"{ROOT / 'tools' / 'reference_service.py'}:parts",
    }
    env.update(extra or {})
    return env


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=5, help="duration of each wrk run")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections")
    args = parser.parse_args()
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            raise SystemExit(
                f"{tool} is missing: apt-get install -y {tool.split('-')[0]}"
                f"{'-server' if tool == 'redis-server' else ''}"
            )
    s, c = args.seconds, args.connections

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        env = _service_env({var.CACHE_DIR: tmp})
        with _uvicorn("bench_serving:bare_app", env, app_dir=str(ROOT / "bench")) as url:
            bare = wrk(url + "/predict", _WRK_SAME, s, c)
        with _uvicorn("dspy_workbook.serving.app:app_from_env", env, factory=True) as url:
            httpx.post(
                url + "/predict",
                json={"question": "What is the capital of France?"},
                headers={"X-API-Key": KEY},
                timeout=30,
            )  # warm the answer cache
            hits = wrk(url + "/predict", _WRK_SAME, s, c)
            misses = wrk(url + "/predict", _WRK_DISTINCT, s, min(c, 8))

        limits = {}
        limit_env = {var.RATE_PER_SECOND: "5", var.RATE_BURST: "10"}
        with _redis(tmp) as redis_url:
            for backend, extra in (("memory", {}), ("redis", {var.REDIS_URL: redis_url})):
                env = _service_env({var.CACHE_DIR: tmp, **limit_env, **extra})
                with _uvicorn(
                    "dspy_workbook.serving.app:app_from_env", env, workers=2, factory=True
                ) as url:
                    started = time.monotonic()
                    run = wrk(url + "/predict", _WRK_SAME_CLOSE, s, c)
                    elapsed = time.monotonic() - started
                admitted = run["requests"] - run["non2xx"]
                limits[backend] = (admitted, 10 + 5 * elapsed, run["requests"])

    print(f"{'row':<34}{'req/s':>10}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}")
    for name, row in (
        ("bare FastAPI endpoint", bare),
        ("service /predict, cache hits", hits),
        ("service /predict, misses (LM 50ms)", misses),
    ):
        print(
            f"{name:<34}{row['rps']:>10.0f}{row['p50'] * 1e3:>10.2f}{row['p90'] * 1e3:>10.2f}"
            f"{row['p99'] * 1e3:>10.2f}"
        )
    ratio = hits["rps"] / bare["rps"]
    print(
        f"\ncache hits vs bare: {ratio:.0%} of bare's requests/s (goal >= 50%: "
        f"{'met' if ratio >= 0.5 else 'NOT met'}); wrk -t1 -c{c} -d{s}s, 1 worker each"
    )
    print(
        f"p99 under {min(c, 8)} concurrent connections of cache misses: "
        f"{misses['p99'] * 1e3:.1f} ms"
    )
    for backend, (admitted, allowed, total) in limits.items():
        verdict = "held" if admitted <= allowed else "EXCEEDED"
        print(
            f"limit across 2 workers, {backend:<6}: admitted {admitted} / allowed "
            f"{allowed:.0f} of {total} requests -> {verdict}"
        )


if __name__ == "__main__":
    main()
