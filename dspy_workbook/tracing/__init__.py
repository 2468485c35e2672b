"""Support code for Exercise 3 (debugging and tracing).

What is provided here is the plumbing around the tracer you build in the notebook: the `Span`
record, JSON-faithful serialisation, log sink, pandas table, timeline chart, trace stepper widget,
trace replay, and a helper to run async code from a cell. The tracer itself, redaction, the
logger set-up, the tree printout, bottleneck finding and breakpoints are yours.
"""

from ._analysis import Bottleneck, plot_timeline
from ._logs import LOG_DIR, LogSink, read_jsonl, redact_all
from ._replay import ReplayMiss, replay_lm
from ._run import run_async
from ._span import (
    Span, SpanKind, children_of, depth_of, lm_usage, span_name, span_record, spans_table, tidy_inputs,
    to_jsonable,
)
from ._stepper import EMPTY_MESSAGE, TraceStepper

__all__ = [
    "Bottleneck", "EMPTY_MESSAGE", "LOG_DIR", "LogSink", "ReplayMiss", "Span", "SpanKind", "TraceStepper",
    "children_of", "depth_of", "lm_usage", "plot_timeline", "read_jsonl", "redact_all", "replay_lm",
    "run_async", "span_name", "span_record", "spans_table", "tidy_inputs", "to_jsonable",
]
