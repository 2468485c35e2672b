"""Support code for Exercise 6 (monitoring and observability).

Provided here is the plumbing around what you build in the notebook (the metrics collector, the
statistics, the adaptive detector and the alert manager): per-call usage capture, the price table,
labelled questions and the quality metric, a simulated provider you can break on purpose, system
sampling, alert sinks and a non-blocking dispatcher, a webhook receiver, dashboards, Prometheus
exposition and a real Prometheus server for the advanced part.
"""

from ._alerts import Alert, AlertDispatcher, CallbackSink, LogSink, Sink, WebhookSink
from ._dashboard import LiveView, dashboard_figure
from ._labels import LabelledQuality, labelled_pairs
from ._observation import Observation, PredictionState, observations_frame
from ._prices import PRICES, Price, answer_cost, price_of
from ._prometheus import LATENCY_BUCKETS, METRIC_NAMES, MetricsServer, PrometheusMetrics
from ._promserver import CONFIG_DIR, PrometheusServer, PrometheusUnavailable, promtool
from ._receiver import WebhookReceiver
from ._scenario import Faults, ScenarioEngine, scenario_lm
from ._system import SystemSample, SystemSampler, sample_system
from ._usage import CallUsage
from ._workload import run_workload, workload_questions

__all__ = [
    "Alert",
    "AlertDispatcher",
    "CONFIG_DIR",
    "CallUsage",
    "CallbackSink",
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
    "ScenarioEngine",
    "Sink",
    "SystemSample",
    "SystemSampler",
    "WebhookReceiver",
    "WebhookSink",
    "answer_cost",
    "dashboard_figure",
    "labelled_pairs",
    "observations_frame",
    "price_of",
    "promtool",
    "reported_confidence",
    "run_workload",
    "sample_system",
    "scenario_lm",
    "workload_questions",
]


def reported_confidence(prediction) -> float | None:
    """The `confidence` a program reported (a number in 0..1), or None when it reports none."""
    value = getattr(prediction, "confidence", None) if prediction is not None else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return min(1.0, max(0.0, number)) if number == number else None


def __getattr__(name: str):
    """`OpenTelemetrySpans` is imported on first use: opentelemetry-sdk is only needed for it."""
    if name == "OpenTelemetrySpans":
        from ._otel import OpenTelemetrySpans

        return OpenTelemetrySpans
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
