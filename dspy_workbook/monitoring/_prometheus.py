"""Prometheus exposition of the collector's observations: one registry per exporter.

Prometheus *pulls*: it scrapes `/metrics` on a schedule and keeps the time series, so the process
only keeps running totals (counters, histogram buckets) — constant memory however long it runs.
Each `PrometheusMetrics` owns a `CollectorRegistry`: prometheus-client's global registry refuses
to register a metric name twice ("Duplicated timeseries"), which is exactly what re-running a
notebook cell would do.

The metric names are the contract with `monitoring/alerts.yml` and the Grafana dashboard
(`METRIC_NAMES`; a test checks that every name they use is exported).

A counter only goes up and a histogram's sum only accumulates, for the life of the process: one
NaN added makes it NaN *forever*, one negative latency makes a sum decrease (which Prometheus reads
as a counter reset). So `observe` checks an observation once, before it touches any metric, and
accounts it all or not at all: a bad one (a latency that is NaN, infinite or negative, a negative
or fractional token count, a cost that is infinite or negative, a quality or confidence outside
0..1) changes nothing but `dspy_observations_rejected_total{reason}`. A cost of NaN is the
collector's "no price for this model": the prediction is counted, its cost is not, and
`dspy_cost_unknown_total{model}` says how many such predictions there were — the same rule as
`business_metrics` (which skips NaN costs), so the two agree.
"""

from __future__ import annotations

import math
import numbers
import threading

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    start_http_server,
)

from ._observation import Observation
from ._system import SystemSample

__all__ = [
    "LATENCY_BUCKETS",
    "METRIC_NAMES",
    "MetricsServer",
    "PrometheusMetrics",
    "observation_problem",
]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
QUALITY_BUCKETS = (0.25, 0.5, 0.75, 1.0)
METRIC_NAMES = {
    "predictions": "dspy_predictions_total",
    "latency": "dspy_prediction_latency_seconds",
    "tokens": "dspy_tokens_total",
    "cache_hits": "dspy_cache_hits_total",
    "cost": "dspy_cost_dollars_total",
    "quality": "dspy_answer_quality",
    "confidence": "dspy_answer_confidence",
    "threads": "dspy_process_threads",
    "system_cpu": "dspy_system_cpu_percent",
    "system_memory": "dspy_system_memory_percent",
    "cost_unknown": "dspy_cost_unknown_total",
    "rejected": "dspy_observations_rejected_total",
}
REJECT_REASONS = ("latency", "tokens", "cost", "quality", "confidence")


def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def observation_problem(obs: Observation) -> tuple[str, str] | None:
    """(reason, message) when `obs` must not reach a metric, else None. NaN cost is allowed: it
    means "price unknown". `reason` is one of `REJECT_REASONS` (a closed set: it is a label)."""
    if not (_real(obs.latency) and math.isfinite(obs.latency) and obs.latency >= 0):
        return "latency", f"latency must be a finite number of seconds >= 0, got {obs.latency!r}"
    for name in ("input_tokens", "output_tokens"):
        value = getattr(obs, name)
        if not (isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0):
            return "tokens", f"{name} must be a whole number >= 0, got {value!r}"
    if not (
        _real(obs.cost) and (math.isnan(obs.cost) or (math.isfinite(obs.cost) and obs.cost >= 0))
    ):
        return "cost", f"cost must be dollars >= 0 (NaN: price unknown), got {obs.cost!r}"
    for name in ("quality", "confidence"):
        value = getattr(obs, name)
        if value is not None and not (_real(value) and 0.0 <= value <= 1.0):
            return name, f"{name} must be in 0..1 or None, got {value!r}"
    return None


class PrometheusMetrics:
    """Counters and histograms fed by `observe(observation)`; expose with `serve()` or `text()`."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r, n = self.registry, METRIC_NAMES
        self.predictions = Counter(
            n["predictions"].removesuffix("_total"),
            "Predictions served, by outcome",
            ["model", "status"],
            registry=r,
        )
        self.latency = Histogram(
            n["latency"],
            "End-to-end prediction latency",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            n["tokens"].removesuffix("_total"), "Billed tokens", ["model", "direction"], registry=r
        )
        self.cache_hits = Counter(
            n["cache_hits"].removesuffix("_total"),
            "Predictions answered by DSPy's cache",
            ["model"],
            registry=r,
        )
        self.cost = Counter(
            n["cost"].removesuffix("_total"), "Spend on billed tokens (USD)", ["model"], registry=r
        )
        self.quality = Histogram(
            n["quality"],
            "Quality of labelled answers (0..1)",
            ["model"],
            buckets=QUALITY_BUCKETS,
            registry=r,
        )
        self.confidence = Histogram(
            n["confidence"],
            "Confidence the program reported (0..1)",
            ["model"],
            buckets=(0.5, 0.7, 0.9, 1.0),
            registry=r,
        )
        self.threads = Gauge(n["threads"], "Threads of this process", registry=r)
        self.system_cpu = Gauge(n["system_cpu"], "Machine CPU in use (%)", registry=r)
        self.system_memory = Gauge(n["system_memory"], "Machine memory in use (%)", registry=r)
        self.cost_unknown = Counter(
            n["cost_unknown"].removesuffix("_total"),
            "Predictions whose cost is unknown (no price for the model)",
            ["model"],
            registry=r,
        )
        self.rejected = Counter(
            n["rejected"].removesuffix("_total"),
            "Observations refused before touching any metric, by the first bad field",
            ["reason"],
            registry=r,
        )
        self.last_rejection = ""  # the message of the most recent rejection
        self._lock = threading.Lock()  # one observation's updates are applied together
        if process:  # process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds, …
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)

    def observe(self, obs: Observation) -> bool:
        """Account one prediction (use as a collector listener): True, or False when it was
        rejected (counted in `dspy_observations_rejected_total`, nothing else changed)."""
        problem = observation_problem(obs)
        if problem is not None:
            reason, self.last_rejection = problem
            self.rejected.labels(reason).inc()
            return False
        model = obs.model or "unknown"
        with self._lock:
            self.predictions.labels(model, "ok" if obs.ok else "error").inc()
            self.latency.labels(model).observe(obs.latency)
            self.tokens.labels(model, "input").inc(obs.input_tokens)
            self.tokens.labels(model, "output").inc(obs.output_tokens)
            if math.isnan(obs.cost):
                self.cost_unknown.labels(model).inc()
            else:
                self.cost.labels(model).inc(obs.cost)
            if obs.cache_hit:
                self.cache_hits.labels(model).inc()
            if obs.quality is not None:
                self.quality.labels(model).observe(obs.quality)
            if obs.confidence is not None:
                self.confidence.labels(model).observe(obs.confidence)
        return True

    def observe_system(self, sample: SystemSample) -> None:
        """Set the system gauges from a psutil sample."""
        self.threads.set(sample.threads)
        self.system_cpu.set(sample.system_cpu_percent)
        self.system_memory.set(sample.system_memory_percent)

    def text(self) -> str:
        """The exposition Prometheus would scrape, as text."""
        return generate_latest(self.registry).decode()

    def serve(self) -> MetricsServer:
        """Serve `/metrics` on 127.0.0.1 at a free port (stop it with `.close()` or `with`)."""
        return MetricsServer(self.registry)


class MetricsServer:
    """prometheus-client's HTTP exporter for one registry, on loopback, stoppable."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._server, self._thread = start_http_server(0, addr="127.0.0.1", registry=registry)
        self.port = self._server.server_port
        self._closed = threading.Event()

    @property
    def target(self) -> str:
        """`host:port` as Prometheus's scrape config wants it."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.target}/metrics"

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
