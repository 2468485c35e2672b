"""Exercise 3 benchmark: what tracing costs per LM call, traced vs untraced in the same run.

Four modes, interleaved call by call so that drift (CPU contention, thermal) hits all equally:
untraced; an empty `BaseCallback` (what DSPy's callback machinery alone costs); the answer key's
`SpanTracer`; the tracer plus the JSONL and text logs with redaction. Each call is one
`dspy.Predict` (format → LM → parse) with DSPy's cache off.

1. the simulated provider with zero latency: what is left is pure overhead, in µs per call;
2. the embedded local model (if llama.cpp is installed, or `--backend local`): the same overhead
   as a share of a real call — the goal is under 5 %;
3. how redaction and logging scale with the input, 10 KB → 1 MB (the goal: linear, ~10× per 10×).

Run: PYTHONPATH=. python bench/bench_tracing.py [--calls 300] [--local-calls 8]
     [--backend sim|local]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dspy
from dspy.utils.callback import BaseCallback

import dspy_workbook as wb
from dspy_workbook.tracing import REDACTION_STRESS, LogSink, Span, measure_growth
from tools.answer_key import load_solutions

ROOT = Path(__file__).resolve().parents[1]


def measure(
    lm: dspy.LM, modes: dict[str, Callable[[], list]], calls: int
) -> dict[str, list[float]]:
    """Seconds per call for each mode; modes take turns on every round, in rotating order."""
    program = dspy.Predict("question -> answer")
    times: dict[str, list[float]] = {name: [] for name in modes}
    names = list(modes)
    with dspy.context(lm=lm):
        program(question="warm-up")
        for i in range(calls):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                with dspy.context(callbacks=modes[name]()):
                    start = time.perf_counter()
                    program(question="What is the capital of France?")
                    times[name].append(time.perf_counter() - start)
    return times


def report(title: str, times: dict[str, list[float]]) -> dict[str, float]:
    """Print the median per call of each mode and its overhead; return the overheads in seconds."""
    base = statistics.median(times["untraced"])
    print(f"\n{title}  ({len(times['untraced'])} calls per mode, medians)")
    overheads = {}
    for name, values in times.items():
        med = statistics.median(values)
        overheads[name] = med - base
        extra = (
            ""
            if name == "untraced"
            else f"   overhead {(med - base) * 1e6:+8.0f} µs  ({(med - base) / base:+.1%})"
        )
        print(f"  {name:<22} {med * 1000:9.3f} ms{extra}")
    return overheads


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--calls", type=int, default=300, help="calls per mode on the zero-latency sim"
    )
    parser.add_argument(
        "--local-calls", type=int, default=8, help="calls per mode on the local model"
    )
    parser.add_argument("--backend", choices=["sim", "local", "auto"], default="auto")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-tracing-") as scratch:
        try:
            run(args, Path(scratch))
        finally:  # close the log files, so the folder can be removed
            for name in ("bench.trace.json", "bench.trace.text"):
                logger = logging.getLogger(name)
                for handler in list(logger.handlers):
                    logger.removeHandler(handler)
                    handler.close()


def redaction_growth(redact: Callable[[str], str], sink: LogSink) -> None:
    """Print how the answer key's redaction and the log sink scale, 10 KB → 1 MB (goal: linear)."""
    print("\nredaction on inputs that make naive patterns quadratic")
    print("(best of 3, CPU time; linear is ~10x per 10x, quadratic 100x; flagged above 50x)")
    sizes = (10_000, 100_000, 1_000_000)
    for shape, make in REDACTION_STRESS.items():
        print(f"  {shape:<24} {measure_growth(redact, make, sizes=sizes, slack=5.0)}")

    def log_span(text: str) -> None:
        sink(
            Span(
                id="big",
                parent_id=None,
                kind="lm",
                name="LM",
                start=0.0,
                duration=0.1,
                inputs={"messages": [{"role": "user", "content": text}]},
                outputs=[text],
            )
        )

    mails = lambda n: "mail ada@example.org " * (n // 21)  # noqa: E731
    growth = measure_growth(log_span, mails, sizes=(30_000, 300_000, 1_000_000), slack=5.0)
    print(f"  {'one span, logged':<24} {growth}")


def run(args: argparse.Namespace, scratch: Path) -> None:
    """The measurements, with logs written under `scratch`."""
    key = load_solutions("03_debugging", "tracer", "redact", "trace_logger")  # the answers
    tracer_class, redact = key.SpanTracer, key.redact
    json_log = key.get_trace_logger("bench.trace.json", scratch / "bench.jsonl")
    text_log = key.get_trace_logger("bench.trace.text", scratch / "bench.log")
    sink = LogSink(json_log, text_log, redact=redact)
    modes = {
        "untraced": lambda: [],
        "empty BaseCallback": lambda: [BaseCallback()],  # DSPy's own cost of having any callback
        "traced": lambda: [tracer_class()],
        "traced + logs/redact": lambda: [tracer_class(sinks=[sink])],
    }
    dspy.configure(adapter=dspy.JSONAdapter())  # the course's adapter, as `wb.setup()` sets it
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)

    sim = wb.sim_lm(latency=0.0, cache=False)
    absolute = report(
        "sim provider, zero latency (absolute overhead)", measure(sim, modes, args.calls)
    )

    redaction_growth(redact, sink)

    has_local = importlib.util.find_spec("llama_cpp") is not None
    use_local = args.backend == "local" or (args.backend == "auto" and has_local)
    if use_local:
        local = wb.local_lm(cache=False)
        times = measure(local, modes, args.local_calls)
        report("embedded local model (share of a real call; goal < 5 %)", times)
        # A few local calls are noisy (±5 % on a busy machine); the absolute overhead measured on
        # the sim over the local call time is the steadier estimate of the share.
        base = statistics.median(times["untraced"])
        print("  estimate = zero-latency overhead / local call time:")
        for name in ("traced", "traced + logs/redact"):
            share = absolute[name] / base
            print(
                f"    {name:<22} {absolute[name] * 1e6:8.0f} µs / {base * 1000:.0f} ms"
                f" = {share:.2%}"
            )
    else:
        print("\n(no local backend here: the sim figures above are the overhead in absolute terms)")


if __name__ == "__main__":
    main()
