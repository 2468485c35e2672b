"""Answer key for 04_optimization.ipynb — generated from source/ch07/04_optimization.py by tools/build.py; do not edit.

Run: python solutions/exercise4_optimization.py  (backend: $WORKBOOK_LM, default local)
"""

# # Exercise 4 — Performance: find the bottleneck, then remove it
import dspy_workbook as wb

lm = wb.setup()

import contextlib
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import dspy
import pandas as pd
from IPython.display import display

from dspy_workbook import performance as perf
from dspy_workbook.checks import ex4
from dspy_workbook.paths import workbook_dir

# ## Timing you can trust
ask = dspy.Predict("question -> answer", cache=False)
one_call = perf.time_call(lambda: ask(question="What is a signature in DSPy?"), repeat=5, warmup=1)
print(one_call)
print("machine:", one_call.machine)

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

# ## Task 1 — a profiler you can trust
class Profiler:
    """Wall and CPU time, Python peak memory and process RSS of code blocks; profiles may nest."""

    def __init__(self) -> None:
        self.records: list[perf.ProfileRecord] = []
        self._open: list[Any] = []  # one entry per open profile, innermost last: yours to design

    @contextlib.contextmanager
    def profile(self, name: str) -> Iterator[None]:
        """Measure the `with` block as `name` (see the task for what to record)."""
        started_here = not tracemalloc.is_tracing()
        if started_here:
            tracemalloc.start()
        base, peak_so_far = tracemalloc.get_traced_memory()
        if self._open:  # the enclosing profile keeps its peak before reset_peak() erases it
            self._open[-1] = max(self._open[-1], peak_so_far)
        tracemalloc.reset_peak()
        self._open.append(base)  # this profile's running peak
        start, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
            peak = max(self._open.pop(), tracemalloc.get_traced_memory()[1])
            if self._open:
                self._open[-1] = max(self._open[-1], peak)
            if started_here:
                tracemalloc.stop()
            self.records.append(
                perf.ProfileRecord(
                    name, seconds, cpu_seconds, peak - base, perf.rss_bytes(), len(self._open)
                )
            )

    def profile_function(self, name: str, func: Callable[..., Any], *args: Any, **kwargs: Any):
        """`func(*args, **kwargs)` measured as `name` (the seed's interface); returns its result."""
        with self.profile(name):
            return func(*args, **kwargs)

    def report(self) -> pd.DataFrame:
        """One row per record, in the order the blocks ended (inner ones first)."""
        return perf.profile_table(self.records)

ex4.check_profiler(Profiler)

MiB = 2**20
profiler = Profiler()
with profiler.profile("outer"):
    kept = b"k" * MiB  # 1 MiB, held throughout
    with profiler.profile("inner"):
        spike = b"s" * (8 * MiB)  # 8 MiB, freed inside the inner block
        del spike
    del kept
records = {r.name: r for r in profiler.records}
assert set(records) == {"outer", "inner"}, f"the records are named {sorted(records)}"
inner_peak, outer_peak = records["inner"].python_peak, records["outer"].python_peak
assert 8 * MiB <= inner_peak < 9 * MiB, f"the inner block held 8 MiB; python_peak={inner_peak:,}"
assert 9 * MiB <= outer_peak < 10 * MiB, f"the outer block held 9 MiB; python_peak={outer_peak:,}"
assert not tracemalloc.is_tracing(), "the profile started tracemalloc, so it must stop it"
import threading as _threading
import time as _time
import tracemalloc as _tracemalloc

from dspy_workbook.performance import ProfileRecord as _ProfileRecord
from dspy_workbook.performance import rss_bytes as _rss_bytes

assert all(type(r) is _ProfileRecord for r in profiler.records), (
    f"records holds {[type(r).__name__ for r in profiler.records]}; append perf.ProfileRecord"
)
assert (records["outer"].depth, records["inner"].depth) == (0, 1), (
    f"depths are outer={records['outer'].depth}, inner={records['inner'].depth}; expected 0 and 1"
)

# Peaks track what each block really held: 1 MiB against 40 MiB, and a spike before the inner
# block belongs to the outer one only.
sizes = Profiler()
with sizes.profile("request"):
    held = b"h" * (2 * MiB)
    burst = b"b" * (60 * MiB)  # freed before the stages start
    del burst
    with sizes.profile("small"):
        small = b"1" * MiB
        del small
    with sizes.profile("big"):
        big = b"4" * (40 * MiB)
        del big
    del held
got = {r.name: r for r in sizes.records}
assert MiB <= got["small"].python_peak < 1.5 * MiB, (
    f"a block that held 1 MiB recorded python_peak={got['small'].python_peak:,} bytes "
    "(60 MiB were allocated and freed before it started)"
)
assert 40 * MiB <= got["big"].python_peak < 40.5 * MiB, (
    f"a block that held 40 MiB recorded python_peak={got['big'].python_peak:,} bytes"
)
assert 62 * MiB <= got["request"].python_peak < 63 * MiB, (
    f"the enclosing block held 2 + 60 MiB at once before its stages; "
    f"python_peak={got['request'].python_peak:,} bytes"
)
assert (got["small"].depth, got["big"].depth, got["request"].depth) == (1, 1, 0), (
    "two stages inside one request have depth 1, the request 0"
)
_order = [r.name for r in sizes.records]
assert _order == ["small", "big", "request"], (
    f"two stages inside a request were recorded in the order {_order}: append each record when "
    "its block ends (small, big, request)"
)
deep = Profiler()
with deep.profile("request"):
    with deep.profile("stage"):
        burst = b"b" * (30 * MiB)  # freed before the stage's own inner block
        del burst
        with deep.profile("step"):
            pass
got = {r.name: r for r in deep.records}
assert 30 * MiB <= got["request"].python_peak < 31 * MiB, (
    f"a stage inside a request allocated 30 MiB before its own inner block; the request's "
    f"python_peak={got['request'].python_peak:,} bytes"
)
assert got["step"].depth == 2, (
    f"a block inside a stage inside a request has depth {got['step'].depth}"
)

# Wall time and CPU time, each tracking what the block did.
clocks = Profiler()
with clocks.profile("empty"):
    pass
with clocks.profile("long wait"):
    _time.sleep(0.15)
burned: list[float] = []


def _burn() -> None:
    start = _time.thread_time()
    while _time.thread_time() - start < 0.12:
        sum(range(1000))
    burned.append(_time.thread_time() - start)


with clocks.profile("a thread computes"):
    worker = _threading.Thread(target=_burn)
    worker.start()
    worker.join()
got = {r.name: r for r in clocks.records}
empty, long_wait = got["empty"].seconds, got["long wait"].seconds
assert empty < long_wait and 0.15 <= long_wait < 5, (
    f"an empty block and a 0.15 s sleep recorded seconds={empty:.3f} and {long_wait:.3f}: the "
    "block's wall time, in seconds"
)
assert got["long wait"].cpu_seconds <= 0.5 * got["long wait"].seconds, (
    f"a block that only slept {got['long wait'].seconds:.2f} s recorded "
    f"cpu_seconds={got['long wait'].cpu_seconds:.3f}: sleeping uses no CPU"
)
assert got["a thread computes"].cpu_seconds >= 0.9 * burned[0], (
    f"a block whose thread computed for {burned[0]:.2f} CPU s recorded "
    f"cpu_seconds={got['a thread computes'].cpu_seconds:.3f}: count the whole process"
)

# RSS when the block ended.
rss_at_start = _rss_bytes()
with clocks.profile("holds 64 MiB at its end"):
    resident = b"r" * (64 * MiB)
rss_record = clocks.records[-1].rss
del resident
assert rss_record >= rss_at_start + 48 * MiB, (
    f"a block that ended holding 64 MiB more recorded rss={rss_record:,} bytes; "
    f"the process had {rss_at_start:,} before it"
)

# Tracing someone else started stays on, also around nested profiles.
_tracemalloc.start()
try:
    theirs = Profiler()
    with theirs.profile("a"):
        with theirs.profile("b"):
            pass
    assert _tracemalloc.is_tracing(), "tracemalloc was on before the profiles and off after them"
finally:
    _tracemalloc.stop()

# A block that raises: recorded, its exception goes through, tracing stopped.
failing = Profiler()
try:
    with failing.profile("boom"):
        raise KeyError("inside the block")
except KeyError:
    pass
else:
    raise AssertionError("a block that raised KeyError did not raise out of the profile")
assert [r.name for r in failing.records] == ["boom"], (
    f"after a block that raised, records are {[r.name for r in failing.records]}; expected boom"
)
assert not _tracemalloc.is_tracing(), "after a block that raised, tracemalloc was left running"

# ## Find the bottleneck
class NotesQA(dspy.Module):
    """Retrieve k passages, take a note on each, answer from the notes."""

    def __init__(self, k: int = 3, profiler: Profiler | None = None) -> None:
        super().__init__()
        self.k = k
        self.note = dspy.Predict("passage, question -> note", cache=False)
        self.respond = dspy.Predict("question, notes: list[str] -> answer", cache=False)
        self.stage = profiler.profile if profiler else perf.no_profile

    def forward(self, question: str) -> dspy.Prediction:
        with self.stage("retrieve"):
            passages = perf.retrieve(question, k=self.k)
        with self.stage("notes"):
            notes = [self.note(passage=p, question=question).note for p in passages]
        with self.stage("answer"):
            return self.respond(question=question, notes=notes)


def profile_program(program_class: type, backend: dspy.LM, asked: list[str]) -> pd.DataFrame:
    """Each question of `asked`, and each of its stages, profiled on `backend`."""
    profiler = Profiler()
    program = program_class(profiler=profiler)
    with dspy.context(lm=backend):
        for question in asked:
            with profiler.profile("question"):
                program(question=question)
    return perf.stage_table(profiler.records)

remote = wb.sim_lm(latency=0.1)
questions = ["What is DSPy?", "How do I cache LM calls?", "What is ChainOfThought?"]
display(profile_program(NotesQA, remote, questions))

display(profile_program(NotesQA, lm, questions[:1]))

# ## Task 2 — overlap the waiting
class FastNotesQA(NotesQA):
    """NotesQA's answer from the same model requests, with a question's note calls overlapped."""

    def forward(self, question: str) -> dspy.Prediction:
        with self.stage("retrieve"):
            passages = perf.retrieve(question, k=self.k)
        with self.stage("notes"):
            calls = [(self.note, {"passage": p, "question": question}) for p in passages]
            together = dspy.Parallel(num_threads=len(calls), disable_progress_bar=True)
            notes = [prediction.note for prediction in together(calls)]
        with self.stage("answer"):
            return self.respond(question=question, notes=notes)

ex4.check_overlap(FastNotesQA, NotesQA)

provider = wb.sim_lm(latency=0.2)
with dspy.context(lm=provider):
    fast = perf.like_a_cell(FastNotesQA(k=3), question="What is a signature?")
    calls = provider.engine.stats.calls
assert fast.answer == "Simulated answer to: What is a signature?", f"answer: {fast.answer!r}"
assert calls == 4, f"3 notes and 1 answer are 4 model calls; the provider saw {calls}"
peak = provider.engine.stats.max_in_flight
assert peak == 3, f"with k=3, the provider saw at most {peak} calls at once; expected 3"
import json as _json

from dspy_workbook.lm import sim_lm as _sim_lm
from dspy_workbook.performance import like_a_cell as _like_a_cell


def _requests(lm: dspy.LM) -> list[str]:
    return sorted(_json.dumps(e["messages"], sort_keys=True) for e in lm.history)


def _tuned(program: dspy.Module) -> dspy.Module:
    """The program's own predictors with a demo each, as an optimizer would leave them."""
    if hasattr(program, "note"):
        program.note.demos = [dspy.Example(passage="P.", question="Q?", note="N.")]
    if hasattr(program, "respond"):
        program.respond.demos = [dspy.Example(question="Q?", notes=["N."], answer="A.")]
    return program


for _k, _question in ((2, "How do I stream an answer?"), (5, "What is a retriever?")):
    _reference = _sim_lm(latency=0.0)
    with dspy.context(lm=_reference):
        _expected = _tuned(NotesQA(k=_k))(question=_question).answer
    _provider = _sim_lm(latency=0.2, jitter=0.1)  # the notes finish out of order
    with dspy.context(lm=_provider):
        _got = _like_a_cell(_tuned(FastNotesQA(k=_k)), question=_question)
    assert _provider.engine.stats.calls == _k + 1, (
        f"with k={_k}, a question needs {_k + 1} model calls in the LM of dspy.context; it saw "
        f"{_provider.engine.stats.calls}"
    )
    assert getattr(_got, "answer", None) == _expected, (
        f"with k={_k} the answer differs from NotesQA's: {getattr(_got, 'answer', _got)!r}"
    )
    assert _requests(_provider) == _requests(_reference), (
        f"with k={_k} the model requests differ from NotesQA's (the module's own predictors, "
        "their inputs, or the notes in the passages' order)"
    )
    assert _provider.engine.stats.max_in_flight == _k, (
        f"with k={_k}, the provider saw at most {_provider.engine.stats.max_in_flight} calls at "
        f"once; all {_k} note calls should wait together"
    )
_provider = _sim_lm(latency=0.05)
with dspy.context(lm=_provider):
    _again = FastNotesQA(k=3)
    for _ in range(2):
        _like_a_cell(_again, question="What is ChainOfThought?")
assert _provider.engine.stats.calls == 8, (
    f"with k=3, one question asked twice made {_provider.engine.stats.calls} model calls; "
    "NotesQA makes 8 (no caching)"
)

# ### Measured
measured, answers = {}, {}
for program_class in (NotesQA, FastNotesQA):
    program = program_class()
    with dspy.context(lm=remote):
        answers[program_class.__name__] = [program(question=q).answer for q in questions]
        timing = perf.time_call(
            lambda p=program: [p(question=q) for q in questions], warmup=0, repeat=3
        )
    measured[program_class.__name__] = {"median s": timing.median, "spread s": timing.spread}
display(pd.DataFrame(measured).T.round(3))
speedup = measured["NotesQA"]["median s"] / measured["FastNotesQA"]["median s"]
print(f"speed-up {speedup:.1f}×; same answers: {answers['NotesQA'] == answers['FastNotesQA']}")
display(profile_program(FastNotesQA, remote, questions))

# ## Going further (optional, ungraded)
on_local_model = wb.describe(lm).name == "local"
print("llama.cpp measurements:", "on" if on_local_model else "skipped (they need the local model)")

# ### Task 3 (optional) — a regression guard that ignores noise
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

baseline_path = workbook_dir("ex4") / "baseline.json"


def call() -> None:
    ask(question="What is a signature in DSPy?")


try:
    compare_to_baseline(perf.Timing([1.0]), perf.Timing([1.0]))
except NotImplementedError:
    print("(Task 3 not done — skipped)")
else:
    perf.save_baseline(baseline_path, perf.time_call(call, repeat=7, warmup=1))
    baseline = perf.load_baseline(baseline_path)
    delay = baseline.median
    again = perf.time_call(call, repeat=7, warmup=0)
    injected = perf.time_call(lambda: (call(), time.sleep(delay)), repeat=7, warmup=0)
    print("same code :", compare_to_baseline(baseline, again))
    print("slowed    :", compare_to_baseline(baseline, injected))

# ### Many requests at once: `Module.batch`
six = ["What is DSPy?", "What is a signature?", "What does dspy.Predict do?"]
six += ["How do I cache LM calls?", "What is ChainOfThought?", "What is a retriever?"]
examples = [dspy.Example(question=q).with_inputs("question") for q in six]
batch_rows = []
backends = [("simulated hosted (0.1 s)", remote), (f"course LM ({wb.describe(lm).name})", lm)]
for name, backend in perf.progress(backends, desc="backends"):
    program = dspy.Predict("question -> answer", cache=False)
    with dspy.context(lm=backend):
        program(question="Warm-up.")
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
            "one after another s": round(sequential, 2),
            "batch of 6 threads s": round(batched, 2),
            "speed-up": round(sequential / batched, 1),
        }
    )
display(pd.DataFrame(batch_rows).set_index("backend"))

# ### Fewer model calls: the technique for a model that computes
class PassagesQA(dspy.Module):
    """One call: answer from the retrieved passages, no notes."""

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.k = k
        self.respond = dspy.Predict("question, passages: list[str] -> answer", cache=False)

    def forward(self, question: str) -> dspy.Prediction:
        return self.respond(question=question, passages=perf.retrieve(question, k=self.k))


reference = perf.run_workload(NotesQA(), questions, label="NotesQA (k + 1 calls)")
fewer = perf.run_workload(PassagesQA(), questions, label="PassagesQA (1 call)")
display(perf.technique_table(reference, [fewer]))

# ### Where the time goes inside one call
cot = dspy.ChainOfThought("question -> answer", cache=False)
cot(question="Warm-up.")
profiled = perf.profile_calls(lambda: cot(question="What is a retriever?"), calls=5)
display(perf.top_functions(profiled, 8))
perf.show_figure(perf.split_figure(perf.time_split(profiled)))

# ### One hardware setting: 1 thread or 2
distinct = sorted(set(questions + six))
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

# ## How to submit
# ## Summary
# ## Questionnaire
# ## Further research
