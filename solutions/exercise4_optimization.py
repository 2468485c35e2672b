"""Answer key for 04_optimization.ipynb — generated from source/ch07/04_optimization.py by tools/build.py; do not edit.

Run: python solutions/exercise4_optimization.py  (backend: $WORKBOOK_LM, default local)
"""

# # Exercise 4 — Performance: measure honestly, then make it faster
import dspy_workbook as wb

lm = wb.setup()

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

# ## What a first profiler gets wrong
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

# ## Task 1 — timing you can trust
def time_call(fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1) -> perf.Timing:
    """Time `repeat` calls of `fn` after `warmup` warm-up calls (kept apart); record the machine."""
    if repeat < 1 or warmup < 0:
        raise ValueError(f"need repeat >= 1 and warmup >= 0, got repeat={repeat}, warmup={warmup}")
    warm = timeit.Timer(fn).repeat(repeat=warmup, number=1) if warmup else []
    samples = timeit.Timer(fn).repeat(repeat=repeat, number=1)
    return perf.Timing(samples=samples, warmup=warm, machine=perf.machine_info())

ex4.check_timing(time_call)

calls = []


def slow_first_call() -> None:
    calls.append(1)
    time.sleep(0.3 if len(calls) == 1 else 0.005)  # like a model load on the first call


timing = time_call(slow_first_call, repeat=5, warmup=1)
assert isinstance(timing, perf.Timing), "time_call must return a perf.Timing"
assert len(timing.samples) == 5 and len(calls) == 6, "1 warm-up call + 5 timed calls"
assert timing.median < 0.15, "the slow first call must be a warm-up, not a sample"
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

ask = dspy.Predict("question -> answer", cache=False)
one_call = time_call(lambda: ask(question="What is a signature in DSPy?"), repeat=5, warmup=1)
print(one_call)
print("machine:", one_call.machine)
print("llama.cpp build:", one_call.machine.llama_cpp or "(not installed)")

# ## Task 2 — memory you can trust, and profiles that nest
class Profiler:
    """Time, Python peak memory and process RSS of code blocks; profiles may nest."""

    def __init__(self) -> None:
        self.records: list[perf.ProfileRecord] = []
        self._open: list[dict[str, int]] = []  # one per open profile: {"base": ..., "peak": ...}

    @contextlib.contextmanager
    def profile(self, name: str) -> Iterator[None]:
        """Measure the `with` block as `name` (see the task for what to record)."""
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

    def profile_function(
        self, name: str, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """`func(*args, **kwargs)` measured as `name`; returns its result."""
        with self.profile(name):
            return func(*args, **kwargs)

    def report(self) -> pd.DataFrame:
        """One row per record, in the order the blocks finished (inner ones first)."""
        return perf.profile_table(self.records)

ex4.check_profiler(Profiler)

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

# ## Task 3 — the same answers, far fewer model calls
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

questions = perf.workload(distinct=6, repeats=4)
print(len(questions), "questions,", len(set(questions)), "distinct; the first five:")
for question in questions[:5]:
    print("  ", question)

class OptimizedQA(dspy.Module):
    """NaiveQA's answers; each distinct (model, question) is asked of the model only once."""

    def __init__(self) -> None:
        super().__init__()
        self.respond = dspy.ChainOfThought(QA, cache=False)  # the same predictor as NaiveQA
        self.answers: dict[tuple[str, str], dspy.Prediction] = {}

    def forward(self, question: str) -> dspy.Prediction:
        lm = dspy.settings.lm
        key = (getattr(lm, "model", ""), question)
        if key not in self.answers:
            self.answers[key] = self.respond(question=question)
        return dspy.Prediction(**self.answers[key])

ex4.check_optimized(OptimizedQA, NaiveQA)

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

# ### Naive against optimised on the course LM
warm_up = NaiveQA()(question="Warm-up: say hello.")  # load the model before anything is timed
runs: dict[str, list[perf.WorkloadRun]] = {"naive": [], "optimised": []}
for _ in range(3):
    runs["naive"].append(perf.run_workload(NaiveQA(), questions, label="naive"))
    runs["optimised"].append(perf.run_workload(OptimizedQA(), questions, label="optimised"))

naive_run, optimised_run = runs["naive"][0], runs["optimised"][0]
print(f"model calls per run: {naive_run.usage.calls} naive, {optimised_run.usage.calls} optimised")

print(
    "answers identical:",
    optimised_run.answers == naive_run.answers,
    f"({perf.agreement(naive_run.answers, optimised_run.answers):.0%} of {len(questions)})",
)

comparison = perf.compare_runs(runs)
display(comparison)
ratios = [n.seconds / o.seconds for n, o in zip(runs["naive"], runs["optimised"], strict=True)]
speedup = comparison.loc["naive", "median s"] / comparison.loc["optimised", "median s"]
print(f"speed-up {speedup:.1f}× (per run {min(ratios):.1f}×–{max(ratios):.1f}×)")

# ### Each technique on its own, answers compared
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

# ## Task 4 — a regression guard that ignores noise
def compare_to_baseline(
    baseline: perf.Timing,
    current: perf.Timing,
    *,
    noise_factor: float = 2.0,
    min_slowdown: float = 0.05,
) -> perf.RegressionCheck:
    """Is `current` slower than `baseline` by more than noise (and by more than `min_slowdown`)?"""
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

ex4.check_regression(compare_to_baseline)

steady = perf.Timing(samples=[0.100, 0.102, 0.098, 0.101, 0.099, 0.103, 0.100])
resampled = perf.Timing(samples=[0.101, 0.099, 0.100, 0.104, 0.098, 0.100, 0.102])
slower = perf.Timing(samples=[s * 1.5 for s in steady.samples])
assert not compare_to_baseline(steady, resampled).regression, "noise is not a regression"
assert compare_to_baseline(steady, slower).regression, "50% slower is a regression"
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

# ## Going further (optional, ungraded)
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

cot = dspy.ChainOfThought(QA, cache=False)
cot(question="Warm-up.")
profiled = perf.profile_calls(lambda: cot(question="What is a retriever?"), calls=5)
display(perf.top_functions(profiled, 8))
split = perf.time_split(profiled)
perf.show_figure(perf.split_figure(split))

# ### Batching: helps a remote provider, not one local CPU model
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

# ### One hardware setting: 1 thread or 2
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

# ### llama.cpp's prompt cache, for alternating prompts
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

# ### Quantization: a smaller model, at what price?
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

# ## Check everything, then submit
ex4.check_all()

# ## Summary
# ## Questionnaire
# ## Further research
