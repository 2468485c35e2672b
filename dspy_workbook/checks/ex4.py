"""Self-checks for Exercise 4 (performance): `ex4.check_…(…)` right after each task's cell.

Every check runs the student's code on small probes of its own (on the simulated provider where
an LM is needed) and names what their code did. `ex4.hint("timing")` reveals hints one level at
a time; `ex4.check_all()` re-runs every check on the notebook's current definitions.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import dspy

from ..lm import SimEngine, sim_lm
from ..performance import MachineInfo, ProfileRecord, RegressionCheck, Timing, workload
from ._core import expect
from ._exercise import Exercise

__all__ = [
    "check_all",
    "check_optimized",
    "check_profiler",
    "check_regression",
    "check_timing",
    "ex",
    "hint",
]

ex = Exercise("Exercise 4 · performance")


def _call(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run the student's code; an unexpected exception becomes a specific 'incorrect'."""
    try:
        return fn(*args, **kwargs)
    except (NotImplementedError, AssertionError):
        raise
    except Exception as exc:
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}") from exc


# -- Task 1 -------------------------------------------------------------------------------------
@ex.task(
    "timing",
    "Task 1 · timing you can trust",
    points=2,
    needs=("time_call",),
    hints=(
        "Two phases: first call `fn` `warmup` times and keep those durations apart; then time "
        "`repeat` more calls. Only the second phase goes into `samples`.",
        "`timeit.Timer(fn).repeat(repeat=n, number=1)` returns a list of n durations in seconds, "
        "each of one call. Use it for both phases (with n = warmup, then n = repeat).",
        "After `if repeat < 1 or warmup < 0: raise ValueError(...)`: `warm = timeit.Timer(fn)"
        ".repeat(repeat=warmup, number=1)` (an empty list when warmup is 0), `timed = ...` "
        "the same "
        "with `repeat`, then `return perf.Timing(samples=timed, warmup=warm, "
        "machine=perf.machine_info())`.",
    ),
)
def check_timing(time_call: Callable[..., Any]) -> str:
    """Warm-up apart, `repeat` samples, the machine recorded, bad arguments refused."""
    calls: list[float] = []

    def first_is_slow() -> None:
        calls.append(time.perf_counter())
        time.sleep(0.5 if len(calls) == 1 else 0.002)

    timing = _call(
        "`time_call(fn, repeat=4, warmup=1)`", time_call, first_is_slow, repeat=4, warmup=1
    )
    expect(timing is not None, "`time_call` returned None — did you forget `return`?")
    expect(
        isinstance(timing, Timing),
        f"`time_call` returned a {type(timing).__name__}; return a `perf.Timing(...)`",
    )
    expect(
        len(calls) == 5, f"with repeat=4 and warmup=1, `fn` should run 5 times; it ran {len(calls)}"
    )
    expect(
        len(timing.samples) == 4,
        f"with repeat=4 there should be 4 samples, got {len(timing.samples)}",
    )
    expect(
        max(timing.samples) < 0.4,
        f"a sample took {max(timing.samples):.2f} s: the slow first call ended up among the "
        "samples — it belongs in `warmup`",
    )
    expect(
        len(timing.warmup) == 1 and timing.warmup[0] >= 0.49,
        f"`warmup` holds {timing.warmup!r}: keep the duration of each warm-up call",
    )
    expect(
        isinstance(timing.machine, MachineInfo),
        "`machine` is not set: pass `machine=perf.machine_info()` so the figure says where it "
        "came from",
    )
    calls.clear()
    cold = _call(
        "`time_call(fn, repeat=2, warmup=0)`", time_call, first_is_slow, repeat=2, warmup=0
    )
    expect(
        len(calls) == 2 and len(cold.samples) == 2 and not cold.warmup,
        f"with warmup=0, `fn` ran {len(calls)} times and warmup holds {cold.warmup!r}; expected "
        "2 timed calls and no warm-up",
    )
    for bad in ({"repeat": 0}, {"warmup": -1}):
        try:
            time_call(first_is_slow, **bad)
        except ValueError:
            continue
        except NotImplementedError:
            raise
        except Exception as exc:
            raise AssertionError(
                f"`time_call(fn, {bad})` raised {type(exc).__name__}; raise "
                "ValueError for impossible arguments"
            ) from exc
        raise AssertionError(f"`time_call(fn, {bad})` did not raise: refuse it with ValueError")
    return "warm-up kept apart, the right number of samples, and the machine recorded."


# -- Task 2 -------------------------------------------------------------------------------------
def _records(profiler: Any) -> dict[str, ProfileRecord]:
    records = getattr(profiler, "records", None)
    expect(isinstance(records, list), "`Profiler.records` should be a list of `perf.ProfileRecord`")
    expect(
        all(isinstance(r, ProfileRecord) for r in records),
        f"`records` holds {[type(r).__name__ for r in records]}; append `perf.ProfileRecord(...)`",
    )
    return {r.name: r for r in records}


@ex.task(
    "profiler",
    "Task 2 · memory you can trust, profiles that nest",
    points=3,
    needs=("Profiler",),
    hints=(
        "Three rules: only stop tracemalloc if this profile started it (`tracemalloc.is_tracing()` "
        "tells you); measure the peak *above* the traced memory at the start; record in a "
        "`finally:` "
        "so a block that raises is still recorded.",
        "An inner profile needs `tracemalloc.reset_peak()` to see its own peak, which wipes the "
        "outer one's. So each open profile keeps its own running peak in `self._open` (a stack of "
        "dicts): before `reset_peak()`, fold `tracemalloc.get_traced_memory()[1]` into "
        "`self._open[-1]['peak']`; "
        "after the block, fold this profile's peak into the enclosing one again.",
        "Enter: `started = not tracemalloc.is_tracing()` (start if so); `current, peak = "
        "get_traced_memory()`; update the parent's peak; `reset_peak()`; push `{'base': current, "
        "'peak': current}`; read RSS and the clock; `yield`. In `finally`: clock, RSS, "
        "`peak = max(frame['peak'], get_traced_memory()[1])`, pop, fold into the parent, stop if "
        "`started`, append `perf.ProfileRecord(name, seconds, peak - frame['base'], rss_before, "
        "rss_after, depth)`.",
    ),
)
def check_profiler(Profiler: type) -> str:
    """Nesting keeps the outer peak, tracing state is respected, failures are recorded."""
    expect(callable(Profiler), "`Profiler` should be the class itself")
    if tracemalloc.is_tracing():
        raise AssertionError(
            "tracemalloc is still running from earlier code in this notebook: run "
            "`tracemalloc.stop()` once, then this check again"
        )
    profiler = _call("`Profiler()`", Profiler)
    try:
        with profiler.profile("outer"):
            kept = bytearray(3_000_000)
            spike = bytearray(6_000_000)  # freed before the inner profile resets the peak
            del spike
            with profiler.profile("inner"):
                temporary = bytearray(4_000_000)
                del temporary
            expect(
                tracemalloc.is_tracing(),
                "after the inner profile ended, tracemalloc was off inside the outer one: only "
                "stop tracing if this profile started it",
            )
            del kept
    except (NotImplementedError, AssertionError):
        raise
    except Exception as exc:
        raise AssertionError(f"`Profiler.profile` raised {type(exc).__name__}: {exc}") from exc
    finally:
        if tracemalloc.is_tracing():
            tracemalloc.stop()
    records = _records(profiler)
    expect(
        set(records) == {"outer", "inner"},
        f"after two nested blocks the records are named {sorted(records)}, not outer and inner",
    )
    inner, outer = records["inner"], records["outer"]
    expect(
        inner.python_peak >= 4_000_000,
        f"the inner block allocated 4 MB but its python_peak is {inner.python_peak:,} bytes",
    )
    expect(
        outer.python_peak >= 9_000_000,
        f"the outer block held 3 MB + 6 MB at once before the inner block ran, but its "
        f"python_peak is {outer.python_peak:,} bytes — the inner profile's `reset_peak()` "
        "erased it: fold the current peak into `self._open[-1]` before resetting",
    )
    expect(
        outer.python_peak < 50_000_000,
        f"the outer python_peak is {outer.python_peak:,} bytes — subtract the traced memory at "
        "the start (`base`)",
    )
    expect(
        (outer.depth, inner.depth) == (0, 1),
        f"depths are outer={outer.depth}, inner={inner.depth}; expected 0 and 1",
    )
    expect(outer.seconds >= inner.seconds >= 0, "the outer block cannot be shorter than the inner")
    expect(
        all(r.rss_before > 2**20 and r.rss_after > 2**20 for r in records.values()),
        "rss_before/rss_after should be the process's RSS in bytes (`perf.rss_bytes()`)",
    )
    tracemalloc.start()
    try:
        other = Profiler()
        with other.profile("while someone else traces"):
            pass
        expect(
            tracemalloc.is_tracing(),
            "tracemalloc was already running before the profile, and was off after it: leave "
            "tracing you did not start alone",
        )
    finally:
        tracemalloc.stop()
    failing = Profiler()
    try:
        with failing.profile("boom"):
            raise KeyError("inside the block")
    except KeyError:
        pass
    except AssertionError:
        raise
    except Exception as exc:
        raise AssertionError(f"a block raising KeyError came out as {type(exc).__name__}") from exc
    else:
        raise AssertionError(
            "a block that raised KeyError did not raise out of `profile`: let the exception through"
        )
    expect(
        [r.name for r in getattr(failing, "records", [])] == ["boom"],
        "a block that raised was not recorded: append the record in a `finally:`",
    )
    expect(not tracemalloc.is_tracing(), "after a failing block tracemalloc was left running")
    return "peaks survive nesting, tracing you didn't start stays on, and failures are recorded."


# -- Task 3 -------------------------------------------------------------------------------------
@ex.task(
    "optimized",
    "Task 3 · the same answers, fewer model calls",
    points=3,
    needs=("OptimizedQA", "NaiveQA"),
    hints=(
        "Keep `self.respond` exactly as given: the same predictor means the same prompt, hence the "
        "same answers. What changes is *when* it is called.",
        "A dict `self.answers` maps a key to the stored prediction. The key must hold what changes "
        "the answer: the model's name (`dspy.settings.lm.model`) and the question.",
        "`key = (dspy.settings.lm.model, question)`; if the key is new, store "
        "`self.respond(question=question)` under it; always "
        "`return dspy.Prediction(**self.answers[key])`.",
    ),
)
def check_optimized(OptimizedQA: type, NaiveQA: type) -> str:
    """Same answers and prompts as NaiveQA, one call per distinct question, model in the key."""
    questions = workload(distinct=3, repeats=3)
    sim = sim_lm(latency=0.002)
    dspy.cache.reset_memory_cache()
    with dspy.context(lm=sim):
        reference = NaiveQA()
        naive = [reference(question=q) for q in questions]
        naive_calls = sim.engine.stats.calls
        program = _call("`OptimizedQA()`", OptimizedQA)
        fast = [_call("`OptimizedQA(question=...)`", program, question=q) for q in questions]
        fast_calls = sim.engine.stats.calls - naive_calls
    expect(all(p is not None for p in fast), "`forward` returned None — did you forget `return`?")
    got = [getattr(p, "answer", None) for p in fast]
    expect(
        got == [p.answer for p in naive],
        f"the answers differ from NaiveQA's, e.g. {got[0]!r} for {questions[0]!r}: keep the "
        "same predictor, so the prompt stays the same",
    )
    expect(
        fast_calls == 3,
        f"9 questions, 3 distinct: the model was called {fast_calls} times "
        "instead of 3 — answer repeats from `self.answers`",
    )
    fast[0].answer = "changed by the caller"
    with dspy.context(lm=sim):
        again = program(question=questions[0])
    expect(
        again.answer != "changed by the caller",
        "editing a returned prediction changed the stored one: return a copy "
        "(`dspy.Prediction(**stored)`)",
    )
    other = dspy.LM("sim/another-model", engine=SimEngine(latency=0.002))
    with dspy.context(lm=other):
        program(question=questions[0])
    expect(
        other.engine.stats.calls == 1,
        "asked of another model, the question was answered from the first model's entry: put "
        "the model's name in the key",
    )
    return "NaiveQA's answers, one model call per distinct question, and the model in the key."


# -- Task 4 -------------------------------------------------------------------------------------
@ex.task(
    "regression",
    "Task 4 · a regression guard that ignores noise",
    points=2,
    needs=("compare_to_baseline",),
    hints=(
        "Two thresholds, and a regression must clear both: the slowdown is bigger than "
        "`noise_factor` times the noise, and bigger than `min_slowdown` times the baseline median.",
        "`noise = max(baseline.spread, current.spread)`; `slowdown = current.median - "
        "baseline.median`. A faster run has a negative slowdown and is never a regression.",
        "Notes: `if baseline.machine and current.machine and not "
        "baseline.machine.same_hardware(current.machine): notes.append(...)`; then `return "
        "perf.RegressionCheck(baseline.median, current.median, noise, regression, tuple(notes))`.",
    ),
)
def check_regression(compare_to_baseline: Callable[..., Any]) -> str:
    """Flags a clear slowdown, never noise or a speed-up; both thresholds; notes other hardware."""
    steady = Timing(samples=[0.200, 0.204, 0.196, 0.202, 0.198, 0.206, 0.200])
    resampled = Timing(samples=[0.202, 0.198, 0.200, 0.208, 0.196, 0.200, 0.204])

    def verdict(base: Timing, current: Timing, **kwargs: Any) -> RegressionCheck:
        got = _call("`compare_to_baseline`", compare_to_baseline, base, current, **kwargs)
        expect(got is not None, "`compare_to_baseline` returned None — did you forget `return`?")
        expect(
            isinstance(got, RegressionCheck),
            f"`compare_to_baseline` returned a {type(got).__name__}; return a "
            "`perf.RegressionCheck(...)`",
        )
        return got

    slow = verdict(steady, Timing(samples=[s * 1.4 for s in steady.samples]))
    expect(slow.regression, "a run 40% slower with tiny noise was not flagged")
    expect(
        abs(slow.baseline_median - 0.2) < 1e-9 and abs(slow.current_median - 0.28) < 1e-9,
        f"the medians are {slow.baseline_median:.3f} and {slow.current_median:.3f}; use "
        "`baseline.median` and `current.median`",
    )
    expect(
        not verdict(steady, resampled).regression,
        "noise alone (same timings, resampled) was flagged as a regression",
    )
    expect(
        not verdict(steady, Timing(samples=[s * 0.6 for s in steady.samples])).regression,
        "a run 40% *faster* was flagged",
    )
    noisy = Timing(samples=[0.10, 0.12, 0.19, 0.11, 0.26, 0.10, 0.13])
    expect(
        not verdict(noisy, Timing(samples=[s * 1.1 for s in noisy.samples])).regression,
        "a 10% slowdown well inside the noise (spread ~0.06 s) was flagged: compare with "
        "`noise_factor` × noise",
    )
    flat = Timing(samples=[0.1] * 5)
    expect(
        not verdict(flat, Timing(samples=[0.103] * 5)).regression,
        "a 3% slowdown was flagged although `min_slowdown` is 5%",
    )
    a = MachineInfo("cpu A", 2, 2, 0.0, "", 2, "3.11")
    b = MachineInfo("cpu B", 16, 8, 0.0, "", 2, "3.11")
    expect(
        verdict(Timing(steady.samples, machine=b), Timing(resampled.samples, machine=a)).notes,
        "the baseline came from another CPU and the result has no note saying so",
    )
    return "clear slowdowns flagged; noise, speed-ups and tiny changes not; other hardware noted."


hint, check_all = ex.hint, ex.check_all
