"""Exercise 6, advanced part: a real Prometheus scrapes Exercise 5's service on loopback.

The service (`dspy_workbook.serving.create_app`) runs in a background uvicorn thread on the
simulated provider; the test sends it real HTTP requests, lets Prometheus (Debian's package,
on PATH) scrape its `/metrics` every second, and checks with PromQL that the request count and
the latency quantile are what the service served.
"""

from __future__ import annotations

import time

import httpx
import numpy as np

import dspy_workbook as wb
from dspy_workbook import monitoring as wbm
from dspy_workbook.serving import Settings, create_app, standin_parts, start_background

SERVICE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def _bucket(value: float) -> tuple[float, float]:
    edges = (0.0, *SERVICE_BUCKETS, float("inf"))
    return next((lo, hi) for lo, hi in zip(edges, edges[1:], strict=False) if lo < value <= hi)


def test_prometheus_counts_and_times_what_the_exercise_5_service_served(
    prometheus_binary,
) -> None:
    settings = Settings(
        api_keys={"ex6": "ex6-key"},
        rate_per_second=1000,
        rate_burst=1000,
        backend="sim",
        confidence="agreement",
        confidence_samples=2,
    )
    app = create_app(settings, lm=wb.sim_lm(latency=0.03, cache=False), parts=standin_parts())
    server = start_background(app, port=18600, name="ex6-prometheus-test")
    try:
        questions = [f"What is question number {i}?" for i in range(20)]
        seconds = []
        with httpx.Client(
            base_url=server.url, headers={"X-API-Key": "ex6-key"}, timeout=30
        ) as client:
            for question in questions + questions[:5]:  # the last five come from the answer cache
                started = time.perf_counter()
                response = client.post("/predict", json={"question": question})
                seconds.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
        target = f"{server.host}:{server.port}"
        with wbm.PrometheusServer([target], scrape_interval="1s", rules=False) as prometheus:
            served = prometheus.wait_for(
                'sum(dspy_api_requests_total{route="/predict"})', lambda v: v >= 25, timeout=30
            )
            hits = prometheus.value("sum(dspy_api_cache_hits_total)")
            p95 = prometheus.value(
                "histogram_quantile(0.95, sum by (le) "
                '(dspy_api_request_duration_seconds_bucket{route="/predict"}))'
            )
            up = prometheus.value("up")
    finally:
        server.stop()
    assert served == 25 and hits == 5 and up == 1.0
    # The server-side time is at most what the client saw, and at least the provider's 30 ms
    # for the 20 answers that needed the LM — which are the slowest 80 %, p95 among them.
    assert _bucket(0.03)[0] <= p95 <= _bucket(max(seconds))[1], (p95, sorted(seconds))
    assert p95 <= _bucket(float(np.percentile(seconds, 95)))[1] * 1.0001
