"""Measure a program's throughput and latency, sequentially or through a student's async runner."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dspy

from ..progress import progress
from ..stats import summarize_latencies

__all__ = [
    "Runner",
    "ThroughputRow",
    "format_table",
    "measure_concurrent",
    "measure_sequential",
    "plot_throughput",
]

# The shape of the runner students write: (program, questions, limit) -> one result per question.
Runner = Callable[[dspy.Module, Sequence[str], int], Awaitable[list[Any]]]


@dataclass(frozen=True)
class ThroughputRow:
    """One measured run: how many requests per second, and how long each took."""

    label: str
    concurrency: int | None  # None = a plain sequential loop
    n: int
    seconds: float
    requests_per_second: float
    p50: float
    p95: float
    errors: int
    peak_in_flight: int | None


class _Timed(dspy.Module):
    """Wraps a program and records how long each call took (the caller's view of latency).

    `bar`, when given, advances by one per finished call, so a long run shows its progress.
    """

    def __init__(self, inner: dspy.Module, bar: Any = None) -> None:
        super().__init__()
        self.inner = inner
        self.bar = bar
        self.latencies: list[float] = []

    def _done(self, start: float) -> None:
        self.latencies.append(time.perf_counter() - start)
        if self.bar is not None:
            self.bar.update(1)

    def forward(self, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.inner(**kwargs)
        finally:
            self._done(start)

    async def aforward(self, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await self.inner.acall(**kwargs)
        finally:
            self._done(start)


def _peak(lm: dspy.LM | None) -> int | None:
    stats = getattr(getattr(lm, "engine", None), "stats", None)
    return getattr(stats, "max_in_flight", None)


def _row(
    label: str, concurrency: int | None, timed: _Timed, wall: float, errors: int, lm: dspy.LM | None
) -> ThroughputRow:
    if wall <= 0:
        raise ValueError(f"a run must take some time, got {wall} s")
    s = summarize_latencies(timed.latencies)  # the workbook's one latency summary
    return ThroughputRow(
        label, concurrency, s.count, wall, s.count / wall, s.p50, s.p95, errors, _peak(lm)
    )


def measure_sequential(
    program: dspy.Module,
    questions: Sequence[str],
    lm: dspy.LM | None = None,
    label: str = "sequential",
    show_progress: bool = False,
) -> ThroughputRow:
    """Answer `questions` one after another with plain synchronous calls (the baseline).

    `show_progress=True` shows a progress bar where someone is watching (see `progress`).
    """
    errors = 0
    with progress(len(questions), label, show=show_progress) as bar:
        timed = _Timed(program, bar)
        with dspy.context(**({"lm": lm} if lm is not None else {})):
            start = time.perf_counter()
            for question in questions:
                try:
                    timed(question=question)
                except Exception:  # a failed call still counts as a request made
                    errors += 1
            wall = time.perf_counter() - start
    return _row(label, None, timed, wall, errors, lm)


async def measure_concurrent(
    runner: Runner,
    program: dspy.Module,
    questions: Sequence[str],
    limit: int,
    lm: dspy.LM | None = None,
    label: str | None = None,
    show_progress: bool = False,
) -> ThroughputRow:
    """Answer `questions` through `runner(program, questions, limit)` and measure the run."""
    label = label or f"concurrency {limit}"
    with progress(len(questions), label, show=show_progress) as bar:
        timed = _Timed(program, bar)
        with dspy.context(**({"lm": lm} if lm is not None else {})):
            start = time.perf_counter()
            results = await runner(timed, list(questions), limit)
            wall = time.perf_counter() - start
    if len(results) != len(questions):
        raise ValueError(
            f"the runner returned {len(results)} results for {len(questions)} questions"
        )
    errors = sum(isinstance(r, BaseException) for r in results)
    return _row(label, limit, timed, wall, errors, lm)


def format_table(rows: Sequence[ThroughputRow]) -> str:
    """A plain-text table of runs; speed-up is relative to the first row."""
    if not rows:
        return "(no runs)"
    base = rows[0].requests_per_second
    lines = [
        f"{'run':<16}{'n':>4}{'seconds':>9}{'req/s':>8}{'speed-up':>10}{'p50 ms':>8}{'p95 ms':>8}"
        f"{'peak':>6}{'errors':>8}"
    ]
    for r in rows:
        peak = "-" if r.peak_in_flight is None else str(r.peak_in_flight)
        lines.append(
            f"{r.label:<16}{r.n:>4}{r.seconds:>9.2f}{r.requests_per_second:>8.1f}"
            f"{r.requests_per_second / base:>9.1f}×{r.p50 * 1000:>8.0f}{r.p95 * 1000:>8.0f}"
            f"{peak:>6}{r.errors:>8}"
        )
    return "\n".join(lines)


def plot_throughput(rows: Sequence[ThroughputRow], title: str = "Throughput and latency") -> Any:
    """Requests/second and p50/p95 latency against concurrency, as a matplotlib figure."""
    import matplotlib.pyplot as plt  # imported here: only the chart needs it

    concurrent = [r for r in rows if r.concurrency is not None]
    sequential = [r for r in rows if r.concurrency is None]
    xs = [str(r.concurrency) for r in concurrent]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.bar(xs, [r.requests_per_second for r in concurrent], color="#4c72b0")
    for r in sequential:
        left.axhline(r.requests_per_second, color="#c44e52", linestyle="--", label=r.label)
    left.set(xlabel="concurrency limit", ylabel="requests / second", title="Throughput")
    right.plot(xs, [r.p50 * 1000 for r in concurrent], marker="o", label="p50")
    right.plot(xs, [r.p95 * 1000 for r in concurrent], marker="s", label="p95")
    right.set(
        xlabel="concurrency limit", ylabel="latency per call (ms)", title="Latency", ylim=(0, None)
    )
    for axes in (left, right):
        if axes.get_legend_handles_labels()[0]:
            axes.legend()
    fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)  # the caller displays it once; without this Jupyter would show it twice
    return fig
