"""Prometheus metrics of one app, in a registry of its own.

A registry per app (never prometheus-client's global `REGISTRY`): building the app twice — a
notebook cell run again, two apps in one test — would otherwise raise
`ValueError: Duplicated timeseries in CollectorRegistry`.

Metric names (scraped by Exercise 6 from `GET /metrics`):

| name | type | labels | meaning |
|---|---|---|---|
| `dspy_api_requests_total` | counter | `route`, `method`, `status` | every answered request |
| `dspy_api_request_duration_seconds` | histogram | `route` | time from request to response |
| `dspy_api_errors_total` | counter | `type` | refusals and failures (types below) |
| `dspy_api_cache_hits_total` | counter | — | `/predict` answers served from the answer cache |
| `dspy_api_cache_misses_total` | counter | — | `/predict` answers that needed the LM |
| `dspy_api_lm_duration_seconds` | histogram | — | time spent in the DSPy program on a miss |
| `dspy_api_confidence` | histogram | `method` | confidence reported (`logprobs` or `agreement`) |
| `dspy_api_in_flight` | gauge | — | requests being served right now |
| `dspy_api_redis_unavailable_total` | counter | `component` | decisions made without Redis |

Error types: `validation_error`, `bad_request`, `unauthorized`, `payload_too_large`,
`rate_limited`, `lm_unavailable`, `lm_timeout`, `internal_error`, `not_found`,
`method_not_allowed`, `limiter_unavailable` (Redis down and `when_redis_down="refuse"`).

Every label takes its values from a closed set, so a client cannot grow the page: `route` is one
of the service's routes or `other`, `method` one of `HTTP_METHODS` or `other` (a client may send
any token as a method, and 500 invented ones were 501 series), `status` a status the service
chose, `type` an error type above, `component` `limiter` or `cache`.

With several uvicorn workers each process has its own registry: scrape each, or use
prometheus-client's multiprocess mode (not set up here).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "HTTP_METHODS", "ServiceMetrics", "method_label"]

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
REDIS_COMPONENTS = ("limiter", "cache")


def method_label(method: object) -> str:
    """The `method` label: a standard method (HTTP methods are case-sensitive), else `other`."""
    return method if method in HTTP_METHODS else "other"  # type: ignore[return-value]


_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServiceMetrics:
    """The metrics above, registered in `self.registry` (fresh for every instance)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "dspy_api_requests", "Requests answered", ["route", "method", "status"], registry=r
        )
        self.duration = Histogram(
            "dspy_api_request_duration_seconds",
            "Request latency",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "dspy_api_errors", "Refused or failed requests, by type", ["type"], registry=r
        )
        self.cache_hits = Counter(
            "dspy_api_cache_hits", "Answers served from the answer cache", registry=r
        )
        self.cache_misses = Counter(
            "dspy_api_cache_misses", "Answers that needed the LM", registry=r
        )
        self.lm_duration = Histogram(
            "dspy_api_lm_duration_seconds",
            "Time in the DSPy program",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.confidence = Histogram(
            "dspy_api_confidence",
            "Confidence reported",
            ["method"],
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
            registry=r,
        )
        self.in_flight = Gauge("dspy_api_in_flight", "Requests being served", registry=r)
        self.redis_unavailable = Counter(
            "dspy_api_redis_unavailable",
            "Rate-limit and cache decisions made without Redis (failed, timed out or skipped)",
            ["component"],
            registry=r,
        )

    def count_redis_unavailable(self, component: str) -> None:
        """One decision made without Redis (`component`: `limiter` or `cache`)."""
        self.redis_unavailable.labels(component if component in REDIS_COMPONENTS else "other").inc()

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
