"""Does a text function take time linear in its input? Measured by growth, not by a stopwatch goal.

A regular expression such as `[\\w.]+@…` tries every start position inside one long word and
scans to its end each time: quadratic. On a laptop that is invisible at 100 characters and
seconds at 80,000 — one pasted log line or base64 blob can stall the tracer that logs it. Absolute
timings depend on the machine, but *growth* does not: multiply the input by k and a linear
function takes about k times as long, a quadratic one about k² times. `measure_growth` times a
function on inputs of growing size (in CPU time) and compares consecutive steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["REDACTION_STRESS", "Growth", "measure_growth"]

# Inputs that make a naive redaction pattern quadratic: long runs of the characters that a key,
# token or e-mail pattern accepts, with nothing that completes a match.
REDACTION_STRESS: dict[str, Callable[[int], str]] = {
    "one long word": lambda n: "a" * n,
    "a long dotted word": lambda n: "a." * (n // 2),
    "many @ signs": lambda n: "a@" * (n // 2),
    "a long non-ASCII word": lambda n: "é" * n,
    "'sk-' repeated": lambda n: "sk-" * (n // 3),
    "Bearer, then spaces": lambda n: "Bearer" + " " * n + "!",
    "long hyphenated word": lambda n: "ab-" * (n // 3),
}


@dataclass(frozen=True)
class Growth:
    """Best-of-`repeats` seconds per input size, and whether each step grew about linearly."""

    sizes: tuple[int, ...]
    seconds: tuple[float, ...]
    linear: bool
    slack: float

    def __str__(self) -> str:
        steps = " → ".join(
            f"{n:,} chars {s * 1000:.2f} ms" for n, s in zip(self.sizes, self.seconds, strict=True)
        )
        verdict = "about linear" if self.linear else f"grows faster than {self.slack:g}× linear"
        return f"{steps} ({verdict})"


def _best_time(fn: Callable[[str], object], text: str, repeats: int) -> float:
    """The least CPU time of this thread over `repeats` calls of `fn(text)`.

    CPU time, not wall time: on a busy machine a run longer than the scheduler's time slice is
    paused while other processes run, a short one mostly is not — wall time would make a linear
    function look superlinear. CPU time counts only the work the function did.
    """
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        fn(text)
        best = min(best, time.thread_time() - start)
    return best


def measure_growth(
    fn: Callable[[str], object],
    make_input: Callable[[int], str],
    sizes: Sequence[int] = (2_000, 16_000),
    *,
    repeats: int = 3,
    slack: float = 3.0,
    floor: float = 0.005,
) -> Growth:
    """Time `fn(make_input(n))` for each size in `sizes` (growing); stop at the first bad step.

    A step from n to k·n is linear enough when the time grows by at most `slack`·k (a quadratic
    one grows by k²), or when the larger input still took under `floor` seconds — too little to
    measure reliably, and far too little for quadratic work at these sizes. Taking the best of
    `repeats` runs discards pauses caused by other processes. The sizes grow step by step, so a
    quadratic function is caught at a small size before a large one could run for minutes. A step
    that looks too slow is timed once more (both sizes) before it counts, so one pause caused by
    a busy machine does not fail a linear function.
    """
    if len(sizes) < 2 or any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)):
        raise ValueError(f"sizes must be at least two growing sizes, got {tuple(sizes)}")
    measured: list[float] = []
    for index, size in enumerate(sizes):
        measured.append(_best_time(fn, make_input(size), repeats))
        if index and _too_slow(measured, sizes, index, slack, floor):
            # Another process can slow one measurement down: before judging, time both sizes
            # again and keep the best of all runs (a quadratic function stays quadratic).
            previous = make_input(sizes[index - 1])
            measured[-2] = min(measured[-2], _best_time(fn, previous, repeats))
            measured[-1] = min(measured[-1], _best_time(fn, make_input(size), repeats))
            if _too_slow(measured, sizes, index, slack, floor):
                return Growth(tuple(sizes[: index + 1]), tuple(measured), False, slack)
    return Growth(tuple(sizes), tuple(measured), True, slack)


def _too_slow(
    measured: list[float], sizes: Sequence[int], index: int, slack: float, floor: float
) -> bool:
    factor = sizes[index] / sizes[index - 1]
    return measured[-1] > floor and measured[-1] > slack * factor * max(measured[-2], 1e-9)
