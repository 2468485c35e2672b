"""Support code for Exercise 6 (monitoring and observability).

Provided here is the plumbing around what you build in the notebook (the metrics collector's
hooks and the adaptive detector): the collector's storage and per-call usage capture
(`CollectorBase`, `CallUsage`), the price table, labelled questions and the quality metric, the
statistics and business report, alert management with sinks and a non-blocking dispatcher, a
webhook receiver, a simulated provider you can break on purpose, system sampling, dashboards,
Prometheus exposition and a real Prometheus server for the advanced part.
"""

from ._alerts import Alert, AlertDispatcher, CallbackSink, LogSink, Sink, WebhookSink
from ._collector import CollectorBase, named_inputs, reported_confidence
from ._dashboard import LiveView, dashboard_figure
from ._labels import LabelledQuality, labelled_pairs
from ._manager import AlertManager, BatchMeans
from ._observation import Observation, PredictionState, monotonic_index, observations_frame
from ._prices import PRICES, Price, answer_cost, price_of
from ._prometheus import LATENCY_BUCKETS, METRIC_NAMES, MetricsServer, PrometheusMetrics
from ._promserver import CONFIG_DIR, PrometheusServer, PrometheusUnavailable, promtool
from ._receiver import WebhookReceiver
from ._report import STAT_COLUMNS, business_metrics, metric_stats
from ._scenario import Faults, ScenarioEngine, scenario_lm
from ._system import SystemSample, SystemSampler, sample_system
from ._usage import CallUsage
from ._workload import fresh_cache, run_workload, workload_questions

__all__ = [
    "Alert",
    "AlertDispatcher",
    "AlertManager",
    "BatchMeans",
    "CONFIG_DIR",
    "CallUsage",
    "CallbackSink",
    "CollectorBase",
    "Faults",
    "LATENCY_BUCKETS",
    "LabelledQuality",
    "LiveView",
    "LogSink",
    "METRIC_NAMES",
    "MetricsServer",
    "Observation",
    "OpenTelemetrySpans",
    "PRICES",
    "Price",
    "PredictionState",
    "PrometheusMetrics",
    "PrometheusServer",
    "PrometheusUnavailable",
    "STAT_COLUMNS",
    "ScenarioEngine",
    "Sink",
    "SystemSample",
    "SystemSampler",
    "WebhookReceiver",
    "WebhookSink",
    "answer_cost",
    "business_metrics",
    "dashboard_figure",
    "fresh_cache",
    "labelled_pairs",
    "metric_stats",
    "monotonic_index",
    "named_inputs",
    "observations_frame",
    "price_of",
    "promtool",
    "reported_confidence",
    "run_workload",
    "sample_system",
    "scenario_lm",
    "workload_questions",
]


def __getattr__(name: str):
    """`OpenTelemetrySpans` is imported on first use: opentelemetry-sdk is only needed for it."""
    if name == "OpenTelemetrySpans":
        from ._otel import OpenTelemetrySpans

        return OpenTelemetrySpans
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
