# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 4 — Performance: measure honestly, then make it faster
#
# "It feels faster" is not a measurement. A single `time.perf_counter()` around one call is
# barely one: the first call of a program pays for loading the model and building its grammar,
# the machine is busy with other work some of the time, and an optimisation that changes the
# answers is not an optimisation at all. In this notebook you build the tools that make a speed
# claim trustworthy, then use them on a real DSPy program.
#
# **Learning objectives** — you will learn to
#
# * time a call with warm-up and repeats, and report a median with its spread, not one number;
# * record *which machine* a figure came from, and see how one hardware setting moves it;
# * measure memory two ways — what Python allocates (`tracemalloc`) and what the process holds
#   (RSS) — and see why they differ by a factor of a hundred for a local model;
# * make a program faster without changing a single answer, and prove both halves of that claim;
# * guard against regressions: flag a slowdown larger than the noise, and never flag the noise;
# * *(going further)* find where the time goes inside one call, when batching helps and when it
#   cannot, what llama.cpp's prompt cache buys, and what quantizing the model costs in quality.
#
# **Prerequisites:** Exercise 1 (caching) — Task 3 reuses its idea; how `wb.setup()`,
# self-checks and graded cells work (the *Start here* notebook). Python context managers
# (`with`, `contextlib.contextmanager`) and dataclasses.
#
# | part | what you write | time | points |
# |---|---|---|---|
# | Task 1 | `time_call`: warm-up, repeats, median and spread, the machine | 8 min | 2 |
# | Task 2 | `Profiler.profile`: time, Python peak and RSS; nests safely | 12 min | 3 |
# | Task 3 | `OptimizedQA`: the same answers with far fewer model calls | 8 min | 3 |
# | Task 4 | `compare_to_baseline`: a regression guard that ignores noise | 7 min | 2 |
# | **core** | reading included | **~40 min** | **10** |
# | going further | where the time goes; batching; threads; prompt cache; quantization | 20 min | ungraded |
#
# **How each task works.** Write your code where it says `YOUR CODE HERE`, run the cell, then run
# the self-check below it (`ex4.check_…`): ✅ means the hidden tests will pass too, ❌ says what
# your code did. Stuck? `ex4.hint("timing")` shows a hint; call it again for the next, more
# concrete one. The locked cell after it is the graded test (it runs on the simulated provider,
# so it is fast and needs no model). The *going further* part is optional and ungraded.
#
# With the local model, a full run of this notebook takes about 2–3 minutes on a quiet 2-core
# machine. Long loops show a progress bar.

# %%
import dspy_workbook as wb

lm = wb.setup()

# %%
import contextlib
import time
import timeit
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import dspy
import pandas as pd
from IPython.display import display

from dspy_workbook import performance as perf
from dspy_workbook.checks import ex4
from dspy_workbook.paths import workbook_dir

# %% [markdown]
# ## What a first profiler gets wrong
#
# A first attempt at a profiler usually looks like this: start `tracemalloc`, read the clock,
# call the function, read the clock and the traced memory, stop `tracemalloc`. Six things are
# wrong with it, and the tasks fix them one by one:
#
# | problem | why it hurts | fixed in |
# |---|---|---|
# | one call, one number | the first call loads the model and builds caches; any call can land on a busy moment | Task 1 |
# | no record of the machine | 0.3 s on a quiet laptop and 1.5 s on a loaded server are the same code | Task 1 |
# | `tracemalloc.start()` / `stop()` unconditionally | a profile *inside* a profile stops tracing under the outer one, which then reports 0 MB; tracing someone else started is switched off | Task 2 |
# | `tracemalloc` only | it sees Python's allocations; llama.cpp's weights and KV cache are C memory and a mapped file | Task 2 |
# | "optimised" is only timed | a change that makes the program faster *and different* passes unnoticed | Task 3 |
# | before/after by eye | noise looks like a regression, or hides one | Task 4 |
#
# Here is the third problem, live. The outer profile allocates 4 MB, then calls a function that
# profiles itself the same way:


# %%
def naive_profile(func: Callable[[], Any]) -> tuple[Any, float]:
    """The first-attempt profiler: (result, peak MB). Don't use this."""
    tracemalloc.start()
    result = func()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, peak / 2**20


def outer_work() -> None:
    buffer = bytearray(4 * 2**20)  # 4 MB, allocated while the outer profile runs
    naive_profile(lambda: bytearray(2**20))  # a helper that profiles itself: 1 MB
    del buffer


_, outer_peak = naive_profile(outer_work)
print(f"outer peak: {outer_peak:.1f} MB (it allocated at least 5 MB)")
print("tracing still on after it?", tracemalloc.is_tracing())

# %% [markdown]
# The inner `stop()` switched tracing off under the outer profile, so the outer one read
# `(0, 0)`: a 5 MB workload reported as using nothing. Task 2 fixes that.
#
# ## Task 1 — timing you can trust
#
# Why is the first call different? For the local model, the first call in a process loads the
# model (memory-maps 98 MB and sets up llama.cpp), and the first call of each signature turns its
# JSON schema into a grammar. For a hosted model, the first call opens a TLS connection. After
# that, DSPy's own cache, the CPU's caches and the operating system's page cache are all warm.
# So: run the function a few times **untimed** first (the *warm-up*), then time several runs
# (the *repeats*) and report the **median** (one slow outlier does not move it, unlike the mean)
# and the **spread** (how far the slow runs reach).
#
# The standard library's [`timeit`](https://docs.python.org/3/library/timeit.html) does the
# timing part well: `timeit.Timer(fn).repeat(repeat=5, number=1)` returns five durations, each of
# one call, measured with `time.perf_counter` and with garbage collection paused during the
# timing (so a collection triggered by earlier code doesn't land in your figure).
#
# Write `time_call(fn, *, repeat=5, warmup=1)`: call `fn` `warmup` times, timing each warm-up
# call too (you will want to *show* how slow the first call was), then time `repeat` calls, and
# return a `perf.Timing(samples=..., warmup=..., machine=perf.machine_info())`. `Timing` works
# out `median` and `spread` (p90 − p50) from the samples with the workbook's one latency summary.
# Refuse `repeat < 1` or `warmup < 0` with a `ValueError`.


# %% nbgrader={"solution": true, "grade_id": "timing"}
def time_call(fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1) -> perf.Timing:
    """Time `repeat` calls of `fn` after `warmup` warm-up calls (kept apart); record the machine."""
    ### BEGIN SOLUTION
    if repeat < 1 or warmup < 0:
        raise ValueError(f"need repeat >= 1 and warmup >= 0, got repeat={repeat}, warmup={warmup}")
    warm = timeit.Timer(fn).repeat(repeat=warmup, number=1) if warmup else []
    samples = timeit.Timer(fn).repeat(repeat=repeat, number=1)
    return perf.Timing(samples=samples, warmup=warm, machine=perf.machine_info())
    ### END SOLUTION


# %%
ex4.check_timing(time_call)

# %% nbgrader={"grade": true, "grade_id": "test_timing", "points": 2}
calls = []


def slow_first_call() -> None:
    calls.append(1)
    time.sleep(0.3 if len(calls) == 1 else 0.005)  # like a model load on the first call


timing = time_call(slow_first_call, repeat=5, warmup=1)
assert isinstance(timing, perf.Timing), "time_call must return a perf.Timing"
assert len(timing.samples) == 5 and len(calls) == 6, "1 warm-up call + 5 timed calls"
assert timing.median < 0.15, "the slow first call must be a warm-up, not a sample"
### BEGIN HIDDEN TESTS
from dspy_workbook.performance import MachineInfo as _MachineInfo
from dspy_workbook.performance import Timing as _Timing

assert isinstance(timing, _Timing), "return a perf.Timing"
assert isinstance(timing.machine, _MachineInfo), "record the machine"
assert len(timing.warmup) == 1 and timing.warmup[0] >= 0.29, "keep the warm-up call's time"
assert all(s >= 0.004 for s in timing.samples)
calls.clear()
cold = time_call(slow_first_call, repeat=3, warmup=0)
assert len(calls) == 3 and len(cold.samples) == 3 and cold.warmup == ()
assert max(cold.samples) >= 0.29, "without warm-up, the slow first call is a sample"
calls.clear()
one = time_call(slow_first_call, repeat=1, warmup=2)
assert len(calls) == 3 and len(one.samples) == 1 and len(one.warmup) == 2
for bad in ({"repeat": 0}, {"warmup": -1}):
    try:
        time_call(slow_first_call, **bad)
    except ValueError:
        pass
    else:
        raise AssertionError(f"time_call(..., {bad}) must raise ValueError")
### END HIDDEN TESTS

# %% [markdown]
# Now time one real call of the course LM. DSPy's cache is switched off for it (`cache=False`),
# otherwise every repeat after the first would be a cache hit and we would time a dictionary
# lookup. Compare the warm-up call with the median. Your figures depend on your machine, so this
# cell's output is not checked.

# %% tags=["nbval-ignore-output"]
ask = dspy.Predict("question -> answer", cache=False)
one_call = time_call(lambda: ask(question="What is a signature in DSPy?"), repeat=5, warmup=1)
print(one_call)
print("machine:", one_call.machine)
print("llama.cpp build:", one_call.machine.llama_cpp or "(not installed)")

# %% [markdown]
# **Hardware matters.** The same call on the same machine gets slower when something else needs
# the CPU: the local model runs on 2 threads by default, and if another process keeps one core
# busy, each of llama.cpp's steps waits for the slower thread. That is why `Timing` carries the
# CPU model, the core count, the 1-minute load average and the model's thread count: a figure
# from a machine with load 3.0 is not comparable with one from an idle machine, and the
# regression guard in Task 4 says so. *Going further* measures 1 thread against 2.
#
# ## Task 2 — memory you can trust, and profiles that nest
#
# `tracemalloc` counts memory allocated through Python's allocator: objects, lists, strings, the
# prompt DSPy builds. llama.cpp allocates its KV cache with C's `malloc` and *memory-maps* the
# model file, so neither is visible to it. The operating system sees everything a process holds
# in RAM: its **resident set size** (RSS), which `psutil.Process().memory_info().rss` reads.
# A profiler should report both.
#
# Write `Profiler.profile(name)`, a context manager that records, for the block it wraps, a
# `perf.ProfileRecord(name, seconds, python_peak, rss_before, rss_after, depth)`:
#
# * `seconds`: wall time (`time.perf_counter`);
# * `python_peak`: the peak of traced memory *above what was traced when the block started*, in
#   bytes;
# * `rss_before`, `rss_after`: the process RSS in bytes (`perf.rss_bytes()`);
# * `depth`: how many profiles were open around this one (0 for the outermost).
#
# It must be **safe**:
#
# 1. start `tracemalloc` only if it is not already tracing, and stop it only if *this* profile
#    started it;
# 2. profiles may **nest**: an inner profile calls `tracemalloc.reset_peak()` to measure its own
#    peak, which erases the outer one's. Keep a stack (`self._open`) of the open profiles' peaks:
#    before resetting, fold the current peak into the enclosing profile's, and when the inner
#    profile ends, fold its peak into the enclosing one's again;
# 3. record the block even if it raises (and let the exception through).
#
# `profile_function` and `report` are given.


# %% nbgrader={"solution": true, "grade_id": "profiler"}
class Profiler:
    """Time, Python peak memory and process RSS of code blocks; profiles may nest."""

    def __init__(self) -> None:
        self.records: list[perf.ProfileRecord] = []
        self._open: list[dict[str, int]] = []  # one per open profile: {"base": ..., "peak": ...}

    @contextlib.contextmanager
    def profile(self, name: str) -> Iterator[None]:
        """Measure the `with` block as `name` (see the task for what to record)."""
        ### BEGIN SOLUTION
        started_here = not tracemalloc.is_tracing()
        if started_here:
            tracemalloc.start()
        current, peak = tracemalloc.get_traced_memory()
        if self._open:  # keep the enclosing profile's peak before reset_peak() erases it
            self._open[-1]["peak"] = max(self._open[-1]["peak"], peak)
        tracemalloc.reset_peak()
        frame = {"base": current, "peak": current}
        self._open.append(frame)
        depth = len(self._open) - 1
        rss_before = perf.rss_bytes()
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            rss_after = perf.rss_bytes()
            peak = max(frame["peak"], tracemalloc.get_traced_memory()[1])
            self._open.pop()
            if self._open:
                self._open[-1]["peak"] = max(self._open[-1]["peak"], peak)
            if started_here:
                tracemalloc.stop()
            self.records.append(
                perf.ProfileRecord(
                    name, seconds, max(0, peak - frame["base"]), rss_before, rss_after, depth
                )
            )
        ### END SOLUTION

    def profile_function(
        self, name: str, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """`func(*args, **kwargs)` measured as `name`; returns its result."""
        with self.profile(name):
            return func(*args, **kwargs)

    def report(self) -> pd.DataFrame:
        """One row per record, in the order the blocks finished (inner ones first)."""
        return perf.profile_table(self.records)


# %%
ex4.check_profiler(Profiler)

# %% nbgrader={"grade": true, "grade_id": "test_profiler", "points": 3}
profiler = Profiler()
with profiler.profile("outer"):
    kept = b"x" * 5_000_000
    spike = b"s" * 10_000_000  # freed before the inner profile starts
    del spike
    with profiler.profile("inner"):
        temporary = b"y" * 8_000_000
        del temporary
    assert tracemalloc.is_tracing(), "the inner profile must not stop tracing under the outer one"
    del kept
records = {r.name: r for r in profiler.records}
assert set(records) == {"outer", "inner"}, "one record per profiled block"
assert records["inner"].python_peak >= 8_000_000, "the inner block allocated 8 MB"
assert records["outer"].python_peak >= 15_000_000, "the outer block held 5 MB + 10 MB at once"
### BEGIN HIDDEN TESTS
import tracemalloc as _tracemalloc

from dspy_workbook.performance import ProfileRecord as _ProfileRecord

assert not _tracemalloc.is_tracing(), "a profile that started tracing must stop it"
assert all(isinstance(r, _ProfileRecord) for r in profiler.records)
assert (records["outer"].depth, records["inner"].depth) == (0, 1)
assert records["outer"].seconds >= records["inner"].seconds >= 0
assert all(
    10 * 2**20 < r.rss_before < 2**40 and 10 * 2**20 < r.rss_after < 2**40 for r in records.values()
), "RSS is the process's size in bytes"
_tracemalloc.start()
try:
    other = Profiler()
    with other.profile("a"):
        time.sleep(0.02)
        with other.profile("b"):
            pass
        with other.profile("c"):
            block = b"z" * 3_000_000
            del block
    assert _tracemalloc.is_tracing(), "tracing someone else started must stay on"
    by_name = {r.name: r for r in other.records}
    assert by_name["a"].seconds >= 0.015 and by_name["a"].python_peak >= 3_000_000
    assert by_name["b"].depth == by_name["c"].depth == 1 and by_name["c"].python_peak >= 3_000_000
finally:
    _tracemalloc.stop()
failing = Profiler()
try:
    with failing.profile("boom"):
        raise KeyError("inside")
except KeyError:
    pass
else:
    raise AssertionError("the block's exception must propagate")
assert [r.name for r in failing.records] == ["boom"] and not _tracemalloc.is_tracing()
assert failing.profile_function("sum", sum, [1, 2, 3]) == 6
### END HIDDEN TESTS

# %% [markdown]
# Now profile one call of the course LM in a fresh predictor (its first call builds the
# signature's grammar). With the local model, compare the two memory figures: DSPy's Python
# objects for one call come to about a megabyte, while the process holds the model's
# weights, its KV cache and every library loaded — hundreds of megabytes that `tracemalloc`
# cannot see. The seed's report layout comes first, then the full table.

# %% tags=["nbval-ignore-output"]
memory_profiler = Profiler()
fresh = dspy.Predict("question -> answer", cache=False)
with memory_profiler.profile("one LM call"):
    fresh(question="What does tracemalloc measure?")
seed_style = memory_profiler.report()
print(f"{'Function':<25} {'Time (s)':<12} {'Python peak (MB)':<18} {'RSS (MB)':<10}")
for row in seed_style.itertuples():
    print(
        f"{row.name:<25} {row.seconds:<12.3f} {row.python_peak_mb:<18.2f} {row.rss_after_mb:<10.1f}"
    )
display(seed_style)

# %% [markdown]
# ## Task 3 — the same answers, far fewer model calls
#
# Here is the program we will speed up. `NaiveQA` answers a question with `ChainOfThought`, and
# DSPy's cache is off (`cache=False`), as in a fresh server process where nothing is cached yet:
# every question costs one model call, even one it answered a moment ago.


# %%
class QA(dspy.Signature):
    """Answer the question in one or two sentences."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField()


class NaiveQA(dspy.Module):
    """One ChainOfThought call per question, every time it is asked."""

    def __init__(self) -> None:
        super().__init__()
        self.respond = dspy.ChainOfThought(QA, cache=False)

    def forward(self, question: str) -> dspy.Prediction:
        return self.respond(question=question)


# %% [markdown]
# Real traffic repeats itself. `perf.workload()` is our fixed question set: 6 distinct questions,
# each asked 4 times, in a fixed shuffled order. (The question set is `COURSE_QUESTIONS` from
# Exercise 1's support code.)

# %%
questions = perf.workload(distinct=6, repeats=4)
print(len(questions), "questions,", len(set(questions)), "distinct; the first five:")
for question in questions[:5]:
    print("  ", question)

# %% [markdown]
# Write `OptimizedQA`. It must give **exactly NaiveQA's answers** (on any model, for every
# question), so it keeps the same predictor — the same signature, module and settings, hence the
# same prompt. What changes is that each distinct question reaches the model **once**: keep the
# predictions in a dict keyed by the model's name (`dspy.settings.lm.model`) and the question,
# and answer a repeat from it. The model belongs in the key: the same question asked of another
# model is a different call. Return a *copy* of the stored prediction
# (`dspy.Prediction(**stored)`), so a caller that edits its answer cannot change the stored one.
#
# This is Exercise 1's idea — a cache keyed by everything that changes the answer — in its
# smallest form: in memory, for one program instance. Exercise 1's `DiskCache` would keep answers
# across restarts; DSPy's own cache (leave `cache=True`) would work as well, but a DSPy cache hit
# still formats the prompt to compute its key (about 1–2 ms), where a dict lookup costs
# microseconds.


# %% nbgrader={"solution": true, "grade_id": "optimized"}
class OptimizedQA(dspy.Module):
    """NaiveQA's answers; each distinct (model, question) is asked of the model only once."""

    def __init__(self) -> None:
        super().__init__()
        self.respond = dspy.ChainOfThought(QA, cache=False)  # the same predictor as NaiveQA
        self.answers: dict[tuple[str, str], dspy.Prediction] = {}

    def forward(self, question: str) -> dspy.Prediction:
        ### BEGIN SOLUTION
        lm = dspy.settings.lm
        key = (getattr(lm, "model", ""), question)
        if key not in self.answers:
            self.answers[key] = self.respond(question=question)
        return dspy.Prediction(**self.answers[key])
        ### END SOLUTION


# %%
ex4.check_optimized(OptimizedQA, NaiveQA)

# %% nbgrader={"grade": true, "grade_id": "test_optimized", "points": 3}
graded_questions = perf.workload(distinct=4, repeats=3)
sim = wb.sim_lm(latency=0.01)
with dspy.context(lm=sim):
    naive_answers = [NaiveQA()(question=q).answer for q in graded_questions]
    naive_calls = sim.engine.stats.calls
    optimized = OptimizedQA()
    optimized_answers = [optimized(question=q).answer for q in graded_questions]
assert optimized_answers == naive_answers, "the optimised program must give the same answers"
assert naive_calls == 12, "NaiveQA calls the model for every question"
assert sim.engine.stats.calls - naive_calls == 4, "one model call per distinct question"
### BEGIN HIDDEN TESTS
from dspy_workbook.lm import SimEngine as _SimEngine
from dspy_workbook.lm import sim_lm as _sim_lm

dspy.cache.reset_memory_cache()
fresh_sim = _sim_lm(latency=0.005)
with dspy.context(lm=fresh_sim):
    naive_program = NaiveQA()
    for q in graded_questions:
        naive_program(question=q)
    naive_history = list(fresh_sim.history)
    fast = OptimizedQA()
    fast_predictions = [fast(question=q) for q in graded_questions]
    fast_history = fresh_sim.history[len(naive_history) :]
assert fresh_sim.engine.stats.calls == 12 + 4
naive_tokens = sum(e["usage"]["total_tokens"] for e in naive_history if e["usage"])
fast_tokens = sum(e["usage"]["total_tokens"] for e in fast_history if e["usage"])
assert 0 < fast_tokens < naive_tokens, "fewer tokens"
first_prompt = {}
for entry in naive_history:
    first_prompt.setdefault(entry["messages"][-1]["content"], entry["messages"])
expected_prompts = [first_prompt[e["messages"][-1]["content"]] for e in fast_history]
assert [e["messages"] for e in fast_history] == expected_prompts, "the same prompts as NaiveQA"
assert all(p.reasoning and p.answer for p in fast_predictions), "the prediction keeps every field"
fast_predictions[0].answer = "edited by the caller"
assert fast(question=graded_questions[0]).answer != "edited by the caller", "return a copy"
other_model = dspy.LM("sim/another-model", engine=_SimEngine(latency=0.005))
with dspy.context(lm=other_model):
    fast(question=graded_questions[0])
assert other_model.engine.stats.calls == 1, "another model's call must not hit this one's entries"
### END HIDDEN TESTS

# %% [markdown]
# ### Naive against optimised on the course LM
#
# Each program runs the whole workload from scratch (a new instance, so the optimised one starts
# with nothing stored), three times, alternating, so that a busy moment of the machine hits both.
# The speed-up is the ratio of the medians, with the range of the per-run ratios as its spread.

# %% tags=["nbval-ignore-output"]
warm_up = NaiveQA()(question="Warm-up: say hello.")  # load the model before anything is timed
runs: dict[str, list[perf.WorkloadRun]] = {"naive": [], "optimised": []}
for _ in range(3):
    runs["naive"].append(perf.run_workload(NaiveQA(), questions, label="naive"))
    runs["optimised"].append(perf.run_workload(OptimizedQA(), questions, label="optimised"))

# %% [markdown]
# First, the part that must not vary: the answers and the number of model calls.

# %%
naive_run, optimised_run = runs["naive"][0], runs["optimised"][0]
print(f"model calls per run: {naive_run.usage.calls} naive, {optimised_run.usage.calls} optimised")

# %% [markdown]
# On a CPU model, "identical" can very rarely fail by one answer even for a correct optimisation:
# llama.cpp reuses the previous prompt's computed prefix, and a different prefix can change the
# last bits of a logit and so one greedy token. The tests check identity on the simulated
# provider, where it is exact; here, look at the share.

# %% tags=["nbval-ignore-output"]
print(
    "answers identical:",
    optimised_run.answers == naive_run.answers,
    f"({perf.agreement(naive_run.answers, optimised_run.answers):.0%} of {len(questions)})",
)

# %% tags=["nbval-ignore-output"]
comparison = perf.compare_runs(runs)
display(comparison)
ratios = [n.seconds / o.seconds for n, o in zip(runs["naive"], runs["optimised"], strict=True)]
speedup = comparison.loc["naive", "median s"] / comparison.loc["optimised", "median s"]
print(f"speed-up {speedup:.1f}× (per run {min(ratios):.1f}×–{max(ratios):.1f}×)")

# %% [markdown]
# **Why "identical" is a real check on a local model.** Greedy decoding is deterministic for one
# computation, but llama.cpp reuses the part of the previous prompt it has already evaluated, so
# the same prompt is not always computed the same way: after a different question, fewer tokens
# are evaluated in one batch, and the floating-point sums come out a hair different. Now and then
# that flips one token, and a repeated question gets a slightly different answer. If your run
# shows a difference, look at which program changed: a cache returns the *first* answer every
# time, while the naive program is the one that drifts. (`bench/bench_performance.py` caught it
# once in 24 questions with `Predict`.)
#
# ### Each technique on its own, answers compared
#
# A speed-up has to be checked for what it does to the answers. Two more candidates, each on the
# 6 distinct questions against `NaiveQA`:
#
# * **`Predict` instead of `ChainOfThought`**: no reasoning to generate, so fewer output tokens;
# * **a tighter output budget**: `max_tokens=48` for every call.
#
# Both should be faster. Whether they keep the answers is what the `same answers` column says
# (exact text: one changed word counts as a changed answer). On the
# simulated provider they always would (its answers ignore the prompt); on a real model they
# usually don't, and then they are a *product* decision (is the shorter answer good enough?),
# not a free optimisation.

# %% tags=["nbval-ignore-output"]
distinct = sorted(set(questions))


class PredictQA(dspy.Module):
    """Like NaiveQA, without the reasoning step."""

    def __init__(self) -> None:
        super().__init__()
        self.respond = dspy.Predict(QA, cache=False)

    def forward(self, question: str) -> dspy.Prediction:
        return self.respond(question=question)


reference = perf.run_workload(NaiveQA(), distinct, label="ChainOfThought (NaiveQA)")
candidates = [perf.run_workload(PredictQA(), distinct, label="Predict instead of CoT")]
with dspy.context(lm=lm.copy(max_tokens=48)):  # a call cut off mid-JSON fails to parse: recorded
    candidates.append(
        perf.run_workload(NaiveQA(), distinct, label="max_tokens=48", record_errors=True)
    )
technique_table = perf.technique_table(reference, candidates)
display(technique_table)

# %% [markdown]
# On the local model, expect `Predict` to change most answers (a different prompt and no
# reasoning before the answer), and `max_tokens=48` to cut some answers off in the middle of their
# JSON: DSPy cannot parse those, and they show up as changed answers ("⚠ AdapterParseError").
# Neither is a free speed-up. Only the in-memory answers of Task 3 kept every answer.
#
# ## Task 4 — a regression guard that ignores noise
#
# Performance is a property you can lose without noticing: a dependency upgrade, a longer prompt,
# a debug flag left on. A **regression guard** compares a fresh measurement with a saved
# *baseline* and says "slower" only when the difference is larger than the measurements'
# own noise. Both mistakes are costly: a guard that cries wolf on noise gets switched off, and a
# guard that is too tolerant lets real slowdowns through.
#
# Write `compare_to_baseline(baseline, current, *, noise_factor=2.0, min_slowdown=0.05)`
# returning a `perf.RegressionCheck(baseline_median, current_median, noise, regression, notes)`:
#
# * `noise` is the larger of the two timings' `spread`s;
# * a **regression** is a slowdown (`current.median − baseline.median`) larger than **both**
#   `noise_factor × noise` and `min_slowdown × baseline.median` (5 %: differences smaller than
#   that are not worth a red build, however steady the timings);
# * if both timings know their machine and `baseline.machine.same_hardware(current.machine)` is
#   false, add a note that the baseline came from other hardware (the verdict still stands, but
#   a reader should know).


# %% nbgrader={"solution": true, "grade_id": "regression"}
def compare_to_baseline(
    baseline: perf.Timing,
    current: perf.Timing,
    *,
    noise_factor: float = 2.0,
    min_slowdown: float = 0.05,
) -> perf.RegressionCheck:
    """Is `current` slower than `baseline` by more than noise (and by more than `min_slowdown`)?"""
    ### BEGIN SOLUTION
    noise = max(baseline.spread, current.spread)
    slowdown = current.median - baseline.median
    regression = slowdown > noise_factor * noise and slowdown > min_slowdown * baseline.median
    notes = []
    if baseline.machine and current.machine and not baseline.machine.same_hardware(current.machine):
        notes.append(
            f"the baseline came from other hardware ({baseline.machine}); "
            f"this run: {current.machine}"
        )
    return perf.RegressionCheck(baseline.median, current.median, noise, regression, tuple(notes))
    ### END SOLUTION


# %%
ex4.check_regression(compare_to_baseline)

# %% nbgrader={"grade": true, "grade_id": "test_regression", "points": 2}
steady = perf.Timing(samples=[0.100, 0.102, 0.098, 0.101, 0.099, 0.103, 0.100])
resampled = perf.Timing(samples=[0.101, 0.099, 0.100, 0.104, 0.098, 0.100, 0.102])
slower = perf.Timing(samples=[s * 1.5 for s in steady.samples])
assert not compare_to_baseline(steady, resampled).regression, "noise is not a regression"
assert compare_to_baseline(steady, slower).regression, "50% slower is a regression"
### BEGIN HIDDEN TESTS
from dspy_workbook.lm import sim_lm as _sim_lm
from dspy_workbook.performance import MachineInfo as _MachineInfo
from dspy_workbook.performance import RegressionCheck as _RegressionCheck
from dspy_workbook.performance import Timing as _Timing

verdict = compare_to_baseline(steady, slower)
assert isinstance(verdict, _RegressionCheck)
assert abs(verdict.baseline_median - 0.100) < 1e-9 and abs(verdict.current_median - 0.150) < 1e-9
assert abs(verdict.noise - max(steady.spread, slower.spread)) < 1e-9
faster = _Timing(samples=[s * 0.7 for s in steady.samples])
assert not compare_to_baseline(steady, faster).regression, "a faster run is not a regression"
noisy = _Timing(samples=[0.10, 0.12, 0.18, 0.11, 0.25, 0.10, 0.13])
assert not compare_to_baseline(noisy, _Timing(samples=[s * 1.1 for s in noisy.samples])).regression
flat = _Timing(samples=[0.100] * 5)
slightly = _Timing(samples=[0.102] * 5)
assert not compare_to_baseline(flat, slightly).regression, "2% is below min_slowdown"
assert compare_to_baseline(flat, slightly, min_slowdown=0.01).regression
assert not compare_to_baseline(steady, slower, noise_factor=100).regression
here = _MachineInfo("cpu A", 2, 2, 0.1, "", 2, "3.11")
there = _MachineInfo("cpu B", 8, 4, 0.1, "", 2, "3.11")
assert not compare_to_baseline(
    _Timing(steady.samples, machine=here), _Timing(resampled.samples, machine=here)
).notes
assert compare_to_baseline(
    _Timing(steady.samples, machine=there), _Timing(resampled.samples, machine=here)
).notes, "note other hardware"


def _sim_timing(latency: float) -> _Timing:
    program = dspy.Predict("question -> answer", cache=False)
    with dspy.context(lm=_sim_lm(latency=latency)):
        samples = []
        for _ in range(11):  # with 11 samples, one stray slow call does not move p90
            start = time.perf_counter()
            program(question="q")
            samples.append(time.perf_counter() - start)
    return _Timing(samples=samples)


assert compare_to_baseline(_sim_timing(0.005), _sim_timing(0.3)).regression, "an injected slowdown"
### END HIDDEN TESTS

# %% [markdown]
# In practice the baseline is saved once (on the machine that will run the guard) and loaded on
# every later run. Below, the baseline is one course-LM call on this machine, saved under
# `.workbook_cache/ex4/`. The "current" runs are the same call again (noise only), and the same
# call with a slowdown injected: a wrapper that sleeps a little longer than the call takes.

# %% tags=["nbval-ignore-output"]
baseline_path = workbook_dir("ex4") / "baseline.json"


def call() -> None:
    ask(question="What is a signature in DSPy?")


perf.save_baseline(baseline_path, time_call(call, repeat=7, warmup=1))
baseline = perf.load_baseline(baseline_path)
delay = baseline.median
again = time_call(call, repeat=7, warmup=0)
injected = time_call(lambda: (call(), time.sleep(delay)), repeat=7, warmup=0)
print("same code :", compare_to_baseline(baseline, again))
print("slowed    :", compare_to_baseline(baseline, injected))

# %% [markdown]
# ## Going further (optional, ungraded)
#
# Nothing below is graded. Each part measures something the core tasks only mentioned. The
# parts that measure llama.cpp directly need the local model file; with another backend (such as
# the simulated provider the autograder uses) they say so and skip.

# %%
on_local_model = wb.describe(lm).name == "local"
print("llama.cpp measurements:", "on" if on_local_model else "skipped (they need the local model)")
#
# ### Where the time goes inside one call
#
# `cProfile` records every Python function call in this thread. Its raw output is thousands of
# lines; two views are useful. The **top functions by own time** show where Python itself is busy.
# The **split** reads the cumulative time of a few functions every DSPy call goes through: the LM
# engine, the adapter's prompt formatting, its output parsing, and everything else. With the
# local model the engine dominates (the model runs on its own thread, so this thread spends that
# time *waiting*, which cProfile books under the engine). With a hosted model it would be the
# network. DSPy's own work is a few milliseconds, most of it building the JSON schema of the
# output — worth knowing before you try to optimise it.

# %% tags=["nbval-ignore-output"]
cot = dspy.ChainOfThought(QA, cache=False)
cot(question="Warm-up.")
profiled = perf.profile_calls(lambda: cot(question="What is a retriever?"), calls=5)
display(perf.top_functions(profiled, 8))
split = perf.time_split(profiled)
perf.show_figure(perf.split_figure(split))

# %% [markdown]
# ### Batching: helps a remote provider, not one local CPU model
#
# `Module.batch` runs a module over many examples on `num_threads` threads. With a remote
# provider the calls mostly *wait* for the network, so eight threads wait together and the batch
# finishes in about an eighth of the time. The local model is one llama.cpp context on two
# cores: calls from several threads queue for it (the engine serves one at a time), so a batch
# takes as long as the calls one after another, plus a little overhead. The simulated provider
# stands in for the remote one.

# %% tags=["nbval-ignore-output"]
examples = [dspy.Example(question=q).with_inputs("question") for q in distinct]
batch_rows = []
for name, backend in [("simulated remote (0.2 s)", wb.sim_lm(latency=0.2)), ("course LM", lm)]:
    program = dspy.Predict(QA, cache=False)
    with dspy.context(lm=backend):
        start = time.perf_counter()
        for example in examples:
            program(**example.inputs())
        sequential = time.perf_counter() - start
        start = time.perf_counter()
        program.batch(examples, num_threads=6, disable_progress_bar=True)
        batched = time.perf_counter() - start
    batch_rows.append(
        {
            "backend": name,
            "sequential s": round(sequential, 2),
            "batch(num_threads=6) s": round(batched, 2),
            "speed-up": round(sequential / batched, 1),
        }
    )
display(pd.DataFrame(batch_rows).set_index("backend"))

# %% [markdown]
# ### One hardware setting: 1 thread or 2
#
# `perf.probe_model` measures a model file in a fresh process with llama.cpp alone (no DSPy), so
# nothing this kernel has loaded flatters or burdens it. Here: the course model with 1 and with 2
# threads. On an idle 2-core machine 2 threads are faster; if another process keeps a core busy,
# 2 threads can be *slower* than 1, because each step waits for the slower thread.

# %% tags=["nbval-ignore-output"]
probe_calls = [("Answer in a few words.", q) for q in distinct[:4]]
thread_rows = []
for threads in perf.progress([1, 2] if on_local_model else [], desc="threads"):
    probe = perf.probe_model(perf.shipped_model_path(), probe_calls, threads=threads)
    thread_rows.append(
        {
            "threads": threads,
            "load s": round(probe.load_s, 3),
            "median s per answer": round(sorted(probe.seconds)[1], 3),
            "tokens/s": round(probe.tokens_per_second, 1),
        }
    )
print(perf.machine_info())
if thread_rows:
    display(pd.DataFrame(thread_rows).set_index("threads"))

# %% [markdown]
# ### llama.cpp's prompt cache, for alternating prompts
#
# llama.cpp keeps the evaluated prompt of the *previous* call and reuses the longest common
# prefix. Calls with one signature share their long system prompt, so only the question is
# evaluated anew. Two programs taking turns on one model (say, a classifier and an answerer)
# defeat that: every call starts with the other program's prompt in the context and evaluates its
# whole prompt again. `llama_cpp.LlamaRAMCache` keeps the state of earlier prompts in RAM and
# restores the best match. Whether restoring state is cheaper than re-evaluating ~200 tokens is
# a question for a measurement, not an opinion. (The probes from here on use one thread, so a
# busy machine slows every row alike instead of wrecking one of them.)

# %% tags=["nbval-ignore-output"]
system_a = perf.long_system_prompt("classify the topic of the question")
system_b = perf.long_system_prompt("answer the question in a few words")
alternating = [(system_a if i % 2 == 0 else system_b, q) for i, q in enumerate(distinct[:4] * 2)]
cache_rows = []
for ram_cache in perf.progress([False, True] if on_local_model else [], desc="prompt cache"):
    probe = perf.probe_model(perf.shipped_model_path(), alternating, threads=1, ram_cache=ram_cache)
    steady_calls = sorted(probe.seconds[2:])  # the first two fill the cache
    cache_rows.append(
        {
            "LlamaRAMCache": ram_cache,
            "prompt tokens": probe.prompt_tokens[0],
            "median s per call": round(steady_calls[len(steady_calls) // 2], 3),
            "RSS MiB": perf.to_mb(probe.rss_after),
            "answers": probe.answers,
        }
    )
if cache_rows:
    cache_table = pd.DataFrame(cache_rows).set_index("LlamaRAMCache")
    print(
        "same answers with and without:",
        cache_table["answers"].iloc[0] == cache_table["answers"].iloc[1],
    )
    display(cache_table.drop(columns="answers"))

# %% [markdown]
# On the 2-core machine this notebook was written on (shared with other work), four runs gave
# four verdicts, from almost 2× faster (1.37 s → 0.73 s per call) to 1.6× slower (2.3 s →
# 3.8 s). Every time it grew the process by about 325 MiB and changed some answers. For a 135M model, re-evaluating 200 prompt tokens is cheap, while saving
# and restoring a state copies the whole KV cache each time; and a restored state is not always
# bit-identical to a freshly evaluated one. With a 7B model, where 200 prompt tokens cost seconds,
# the balance tips the other way. Measure before you switch it on.
#
# ### Quantization: a smaller model, at what price?
#
# The course model ships as **Q4_1**: about 4.5–5 bits per weight. llama.cpp's own quantizer
# (`llama_cpp.llama_model_quantize`) can requantize it into the workbook folder
# (`.workbook_cache/models/`). Requantizing an already-quantized file loses a little more than
# quantizing the original 16-bit weights would; it is what we can do offline. We try:
#
# * **Q4_0**: 4 bits, one scale per block of 32 (Q4_1 adds an offset per block);
# * **Q2_K**: a 2-bit "k-quant". Its blocks are 256 wide, and most of this model's matrices are
#   576 wide, which is not a multiple of 256, so llama.cpp stores those tensors in a fallback
#   type instead: the file barely shrinks (the `fallback tensors` column says how many);
# * **Q2_0**: plain 2-bit blocks of 32, which fit every tensor;
# * **IQ2_XS**: a 2-bit "i-quant", which needs an *importance matrix* computed from sample text.
#   We have none, so llama.cpp refuses it, and the table says so.
#
# Each model answers the same questions greedily in a fresh process; `agreement` is the share of
# answers identical to the original Q4_1's, word for word. That is strict for free text (any
# changed token counts), so read the sample answers too.

# %% tags=["nbval-ignore-output"]
quant_rows = []
types = ["Q4_1", "Q4_0", "Q2_K", "Q2_0", "IQ2_XS"] if on_local_model else []
for name in perf.progress(types, desc="quantization"):
    if name == "Q4_1":
        made = None
        probe = original = perf.probe_model(perf.shipped_model_path(), probe_calls, threads=1)
    else:
        made = perf.quantize_model(name)
        probe = perf.probe_model(made.path, probe_calls, threads=1) if made.ok else None
    quant_rows.append(perf.quantization_row(name, made, probe, original))
if quant_rows:
    quant_table = pd.DataFrame(quant_rows).set_index("type")
    display(quant_table)
    perf.show_figure(perf.quantization_figure(quant_table.dropna(subset=["tokens/s"])))

# %% [markdown]
# What to take from the table: the 4-bit requantization is close to the original in size and
# behaviour. At 2 bits per weight a 135M-parameter model has too little left to be useful, and
# the k-quants cannot even shrink a model whose rows are not multiples of 256. Quantization pays
# off for *large* models, where 2–4× less memory decides whether a model fits at all; then it is
# done from the 16-bit weights, with an importance matrix for the lowest bit widths.
#
# ## Check everything, then submit
#
# `ex4.check_all()` runs every self-check again on what your notebook defines now, with the
# points at stake.

# %%
ex4.check_all()

# %% [markdown]
# **How to submit.** Save the notebook (Ctrl-S). Then, in JupyterLab, run *Kernel → Restart
# Kernel and Run All Cells* once: a notebook is graded top to bottom in a fresh kernel, and
# Run All stops at the first cell that raises. If your course uses nbgrader's **Assignment List**,
# press *Validate* on this notebook and then *Submit*; otherwise hand in the `.ipynb` file the way
# your instructor asked. Do not edit or delete the locked test cells: grading replaces them.
#
# ## Summary
#
# You built timing that separates warm-up from steady state and reports a median with its spread
# and its machine; a profiler that measures Python memory and process memory and survives
# nesting; an optimisation proven on both counts — the same answers, a fraction of the calls;
# and a regression guard that separates a real slowdown from noise. `bench/bench_performance.py`
# prints the same comparisons with more repeats.
#
# ## Questionnaire
#
# 1. Why does the first call of a DSPy program on the local model take longer than the rest?
#    Name two causes.
# 2. Why report the median rather than the mean of five timings? What does the spread add?
# 3. `tracemalloc` says a call used 0.3 MB; the process grew by 150 MB. Which is right?
# 4. What goes wrong when a profiler calls `tracemalloc.stop()` inside another profile?
# 5. An optimisation makes a program 40 % faster and changes 2 answers in 20. Is it an
#    optimisation? What would you need to know to decide?
# 6. Why does `Module.batch` speed up calls to a hosted model and not calls to one local CPU
#    model?
# 7. Your regression guard flags a 3 % slowdown every other night. What would you change?
# 8. Why can a Q2_K file of this model be almost as large as the Q4_1 original?
#
# ## Further research
#
# * Python's `timeit`, `cProfile` and `tracemalloc` documentation; sampling profilers
#   (py-spy, pyinstrument) and why they cost less than cProfile.
# * Victor Stinner's `pyperf`: how CPython's own benchmarks deal with noise (CPU isolation,
#   calibrated loops, many processes).
# * llama.cpp's quantization types (`tools/quantize/README.md`) and importance matrices
#   (`llama-imatrix`); perplexity as a quality measure of a quantized model.
# * Continuous benchmarking: how projects store baselines and flag regressions (e.g. the
#   `asv` tool used by NumPy and pandas).
