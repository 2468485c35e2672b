"""Support code for Exercise 3 (debugging and tracing).

What is provided here is the plumbing around the tracer you build in the notebook: DSPy's hooks
funnelled into two methods (`TracerHooks`), the `Span` record, JSON-faithful serialisation, the
log sink, a pandas table, the timeline chart, the trace stepper widget, trace replay, and a way to
measure how a function's time grows with its input. How a span starts and ends, redaction and
bottleneck finding (graded), and the tree printout, the logger set-up, navigation and
breakpoints (optional) are the student's.
"""

from ..threads import run_async
from ._analysis import Bottleneck, plot_timeline
from ._growth import REDACTION_STRESS, Growth, measure_growth
from ._hooks import UNFINISHED_MESSAGE, TracerHooks
from ._logs import LogSink, read_jsonl, redact_all, trace_log_dir
from ._replay import ReplayMiss, replay_lm
from ._span import (
    Span,
    SpanKind,
    children_of,
    depth_of,
    lm_usage,
    open_span,
    span_name,
    span_record,
    spans_table,
    tidy_inputs,
    to_jsonable,
)
from ._stepper import EMPTY_MESSAGE, FILTERS, TraceStepper

__all__ = [
    "Bottleneck",
    "EMPTY_MESSAGE",
    "FILTERS",
    "Growth",
    "LogSink",
    "REDACTION_STRESS",
    "ReplayMiss",
    "Span",
    "SpanKind",
    "TraceStepper",
    "TracerHooks",
    "UNFINISHED_MESSAGE",
    "children_of",
    "depth_of",
    "lm_usage",
    "measure_growth",
    "open_span",
    "plot_timeline",
    "read_jsonl",
    "redact_all",
    "replay_lm",
    "run_async",
    "span_name",
    "span_record",
    "spans_table",
    "tidy_inputs",
    "to_jsonable",
    "trace_log_dir",
]
