"""Support code for Exercise 2 (async DSPy): measuring, charting, test programs — not the answers.

The runner, the rate limiter, the timeout and the streaming helpers are what students write in the
notebook; this package only measures what their code does and supplies programs to run it on.
`trial_bucket` floods a rate limiter on a loop whose clock skips idle waits (`FastForwardLoop`),
so a test of seconds of traffic takes milliseconds.
Latency percentiles come from the workbook's one summary, `dspy_workbook.stats`.
"""

from ..progress import progress, progress_enabled
from ._fastforward import FastForwardLoop, run_fast_forward
from ._flood import Flood, FloodUnfinished, flood, trial_bucket
from ._inflight import InFlight
from ._programs import FlakyQA, ScriptedFailure, ScriptedQA, demo_latency, distinct_questions
from ._throughput import (
    ThroughputRow,
    format_table,
    measure_concurrent,
    measure_sequential,
    plot_throughput,
)
from ._windows import Overrun, max_per_window, worst_overrun

__all__ = [
    "FastForwardLoop",
    "FlakyQA",
    "Flood",
    "FloodUnfinished",
    "InFlight",
    "Overrun",
    "ScriptedFailure",
    "ScriptedQA",
    "ThroughputRow",
    "demo_latency",
    "distinct_questions",
    "flood",
    "format_table",
    "max_per_window",
    "measure_concurrent",
    "measure_sequential",
    "plot_throughput",
    "progress",
    "progress_enabled",
    "run_fast_forward",
    "trial_bucket",
    "worst_overrun",
]
