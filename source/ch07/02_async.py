# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 2 — Async DSPy: concurrency and rate limits
#
# A call to a hosted language model spends almost all of its time **waiting**. While one call
# waits, a program could start nine others: that is what `async` buys you. This exercise is about
# what comes with it: a limit on how many calls run at once, failures that stay contained, and a
# budget of requests per second.
#
# You measure every claim on the **simulated provider** (`wb.sim_lm`): like a remote API, each
# call waits (latency plus jitter), can fail, and meets a requests-per-second limit with
# HTTP-429-style errors. Its `.engine.stats` counts what it saw, including the most calls it
# served at once (`max_in_flight`).
#
# **Learning objectives** — after this exercise you can
# * run DSPy modules concurrently with `acall` (and `aforward`), and say what `dspy.asyncify`
#   and threads cost instead;
# * bound the calls in flight with a semaphore, keeping every result when some calls fail;
# * measure what concurrency buys against a remote provider, and why it stops growing;
# * hold a request rate with a token bucket, and prove that it holds.
#
# **Prerequisites:** Exercise 1 (DSPy modules, `dspy.context`); `async def`/`await` and
# `asyncio.gather` as in the [asyncio tutorial](https://docs.python.org/3/library/asyncio-task.html).
#
# **Core path — about 25 minutes, 6 points (the full grade):**
#
# | Part | What you do | Time | Points |
# |---|---|---|---|
# | Sections 1–2 | read and run: the event loop, three ways to run DSPy concurrently | 6 min | – |
# | Task 1 | `run_bounded`: at most `limit` calls at once, every result kept | 8 min | 3 |
# | Sections 4–5 | read and run: throughput measured, the provider's rate limit | 3 min | – |
# | Task 2 | `TokenBucket.acquire`: a requests-per-second limiter with a burst | 8 min | 3 |
#
# **Going further** (optional, no points, about 40 minutes): timeouts, answers as they finish,
# token streaming (the seed's advanced challenge), a local model under concurrency. Optional tasks
# have self-checks and no graded cells.
#
# After each task, a self-check (`ex2.check_…`) says at once whether your code does what the task
# asks (✅ means the hidden tests will pass too), with a time limit of its own.

# %%
import dspy_workbook as wb

lm = wb.setup()

# %%
import asyncio
import contextlib
import inspect
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence

import dspy
from IPython.display import display

from dspy_workbook import concurrency as cc
from dspy_workbook.checks import ex2

qa = dspy.Predict("question -> answer")
LATENCY = cc.demo_latency()  # 0.2 s like a real provider; the autograder sets 0.01 s


def remote_lm(**options) -> dspy.LM:
    """A fresh simulated provider with its own counters; DSPy's cache off, so every call is real."""
    options.setdefault("latency", LATENCY)
    options.setdefault("jitter", LATENCY / 4)
    return wb.sim_lm(cache=False, **options)


print(f"simulated provider latency: {LATENCY:g} s ± {LATENCY / 4:g} s")

# %% [markdown]
# ## 1. The event loop is already running
#
# Jupyter runs your cells inside an `asyncio` event loop. So you can write `await` directly in a
# cell, and `asyncio.run(...)` **fails**: it wants to start a second loop in this thread.


# %% tags=["nbval-ignore-output"]
async def one_answer(question: str) -> str:
    """Ask one question without blocking the event loop."""
    return (await qa.acall(question=question)).answer


print("top-level await:", await one_answer("What is an event loop?"))

pending = one_answer("This coroutine is never run.")
try:
    asyncio.run(pending)
except RuntimeError as exc:
    print("asyncio.run in a notebook ->", exc)
finally:
    pending.close()  # it was never awaited: close it so Python does not warn later

# %% [markdown]
# The exercise's starter program runs a sync DSPy call in `loop.run_in_executor(...)`, with the
# loop from `asyncio.get_event_loop()`, and starts it with `asyncio.run(main())`. In a notebook:
# 1. `asyncio.run` raises the error above: `await main()` instead.
# 2. `get_event_loop()` is the old API; inside a coroutine, `asyncio.get_running_loop()`.
# 3. `run_in_executor` does not copy context variables into its thread, and
#    `dspy.context(lm=...)` is one: the call silently uses the global LM (Going further A).
# 4. Each waiting call holds a whole thread, while a DSPy module can wait natively, with none.
#
# ## 2. Three ways to run DSPy concurrently
#
# 1. **Native:** `await module.acall(...)` awaits the LM's async engine; no thread is held while
#    the call waits.
# 2. **`dspy.asyncify(program)`** runs the sync program in a worker thread: at most
#    `dspy.settings.async_max_workers` (default **8**) at once, for the whole process.
# 3. **`asyncio.to_thread(program, question=...)`**: the same by hand, in Python's default pool
#    of `min(32, CPUs + 4)` threads.
#
# The same 20 questions go through each; `peak` is the most calls the provider saw at once. Each
# demo picks its LM with `with dspy.context(lm=...)`, which is safe in concurrent code.


# %% tags=["nbval-ignore-output"]
async def timed_fanout(label: str, make_call: Callable, n: int = 20) -> None:
    """Send `n` distinct questions at once through `make_call`; report time and peak in flight."""
    provider = remote_lm()
    with dspy.context(lm=provider):
        start = time.perf_counter()
        await asyncio.gather(*(make_call(q) for q in cc.distinct_questions(n, tag=label)))
        seconds = time.perf_counter() - start
    print(f"{label:<22} {seconds:5.2f} s   peak in flight: {provider.engine.stats.max_in_flight}")


async_qa = dspy.asyncify(qa)
await timed_fanout("native acall", lambda q: qa.acall(question=q))
await timed_fanout("dspy.asyncify", lambda q: async_qa(question=q))
await timed_fanout("asyncio.to_thread", lambda q: asyncio.to_thread(qa, question=q))

# %% [markdown]
# Only the native run reaches 20 in flight; `asyncify` stops at 8 and `to_thread` at the pool's
# size, so they wait in rounds. `acall` has no cap at all: you need a limit of your own (Task 1).
#
# **Your own module needs `aforward`**, which `acall` awaits: `dspy.Module` has none, so a module
# with only `forward` raises `AttributeError` under `acall`. Write `forward` again with
# `await … .acall(...)` on each step. The trap: sync calls inside `aforward` (`self.draft(...)`,
# or `self.forward(question)`) run, but hold the event loop, so "concurrent" calls run one by one:


# %% tags=["nbval-ignore-output"]
class DraftThenPolish(dspy.Module):
    """Answer in two steps: a draft, then a polished answer that sees the draft."""

    def __init__(self) -> None:
        super().__init__()
        self.draft = dspy.Predict("question -> answer")
        self.polish = dspy.Predict("question, draft -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        draft = self.draft(question=question).answer
        return self.polish(question=question, draft=draft)

    async def aforward(self, question: str) -> dspy.Prediction:
        draft = (await self.draft.acall(question=question)).answer
        return await self.polish.acall(question=question, draft=draft)


class BlocksTheLoop(DraftThenPolish):
    async def aforward(self, question: str) -> dspy.Prediction:
        draft = self.draft(question=question).answer  # sync calls: no other task runs meanwhile
        return self.polish(question=question, draft=draft)


await timed_fanout("awaited aforward", lambda q: DraftThenPolish().acall(question=q), n=5)
await timed_fanout("blocking aforward", lambda q: BlocksTheLoop().acall(question=q), n=5)

# %% [markdown]
# ## 3. A concurrency limit that holds — and keeps every result
#
# `asyncio.gather(*calls)` starts **every** call at once: 500 questions, 500 simultaneous
# requests. An `asyncio.Semaphore(limit)` has `limit` permits: each call holds one while it runs
# (`async with semaphore:`), and the others wait their turn. And by default `gather` raises the
# first exception, losing the other results; with `return_exceptions=True` each failed call's
# exception takes its place in the list.
#
# ### Task 1 — `run_bounded` (3 points)
#
# Answer every question with `await program.acall(question=...)`; return the results as a list.
# **Graded** (the self-check tries each):
# * never more than `limit` calls in flight, and with enough questions exactly `limit` (the calls
#   overlap);
# * results in the **same order** as `questions`, not in finishing order;
# * a call that fails gives its exception object in its place, and the others are kept;
# * no questions: an empty list;
# * `limit` must be an `int` of at least 1; anything else (`0`, `-1`, `2.5`, `nan`) raises
#   `ValueError` before any call. `Semaphore(0)` would hang without a word, and `Semaphore(2.5)`
#   never blocks (it waits only at exactly 0 permits: 2.5 → 1.5 → 0.5 → −0.5 …).
#
# Any style works (a semaphore with `gather`, a `TaskGroup`, `limit` workers on a queue).
# Stuck? `ex2.hint("Task 1")` shows one more hint each time you run it.


# %% nbgrader={"solution": true, "grade_id": "run_bounded"}
async def run_bounded(program: dspy.Module, questions: Sequence[str], limit: int) -> list:
    """Answer with at most `limit` calls in flight; results in order, failures as exceptions."""
    ### BEGIN SOLUTION
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a whole number of at least 1, got {limit!r}")
    semaphore = asyncio.Semaphore(limit)

    async def answer(question: str) -> dspy.Prediction:
        async with semaphore:
            return await program.acall(question=question)

    return await asyncio.gather(*(answer(q) for q in questions), return_exceptions=True)
    ### END SOLUTION


# %%
ex2.check_run_bounded(run_bounded)

# %% nbgrader={"grade": true, "grade_id": "test_run_bounded", "points": 3}
provider = wb.sim_lm(latency=0.05, jitter=0.04, cache=False)  # calls finish out of order
questions = cc.distinct_questions(12, "t2")
with dspy.context(lm=provider):
    async with asyncio.timeout(30):
        results = await run_bounded(qa, questions, 4)
peak = provider.engine.stats.max_in_flight
assert len(results) == 12, f"{len(results)} results for 12 questions"
assert peak <= 4, f"with limit=4, {peak} calls were in flight at once"
in_order = [q in getattr(r, "answer", "") for q, r in zip(questions, results, strict=True)]
assert all(in_order), f"results not in question order: {in_order}"
### BEGIN HIDDEN TESTS
assert type(results) is list, f"run_bounded returned {type(results).__name__}, not a list"
assert peak == 4, f"with limit=4 and 12 questions, at most {peak} call(s) ran at once"
provider = wb.sim_lm(latency=0.02, cache=False)
with dspy.context(lm=provider):
    async with asyncio.timeout(30):
        results = await run_bounded(qa, questions[:5], 1)
assert provider.engine.stats.max_in_flight == 1, (
    f"with limit=1, {provider.engine.stats.max_in_flight} calls were in flight at once"
)
assert len(results) == 5, f"with limit=1, {len(results)} results for 5 questions"
in_order = [q in getattr(r, "answer", "") for q, r in zip(questions[:5], results, strict=True)]
assert all(in_order), f"with limit=1, results not in question order: {in_order}"
mixed = ["ok 0", "FAIL 1", "ok 2", "FAIL 3", "ok 4"]
with dspy.context(lm=wb.sim_lm(latency=0.01, cache=False)):
    try:
        async with asyncio.timeout(30):
            results = await run_bounded(cc.FlakyQA(), mixed, 2)
    except dspy.LMError as exc:
        raise AssertionError(f"two failing calls of five made the batch raise {exc!r}") from None
failed = [isinstance(r, Exception) for r in results]
assert failed == [False, True, False, True, False], f"for {mixed} you returned {results!r}"
kept = [q in r.answer for q, r in zip(mixed, results, strict=True) if not isinstance(r, Exception)]
assert all(kept), "an answer next to a failure is not the answer to its own question"
async with asyncio.timeout(10):
    nothing = await run_bounded(qa, [], 3)
assert type(nothing) is list and nothing == [], f"no questions gave {nothing!r}, not []"
for bad_limit in (0, -1, 2.5, float("nan")):
    provider = wb.sim_lm(latency=0.01, cache=False)
    try:
        with dspy.context(lm=provider):
            async with asyncio.timeout(3):  # limit=0 must not wait forever
                await run_bounded(qa, questions, bad_limit)
        raise AssertionError(f"limit={bad_limit!r} was accepted: raise ValueError")
    except ValueError:
        pass
    except TimeoutError:
        raise AssertionError(f"limit={bad_limit!r}: waited 3 s instead of a ValueError") from None
    calls = provider.engine.stats.calls
    assert calls == 0, f"limit={bad_limit!r} was refused only after {calls} call(s)"
### END HIDDEN TESTS

# %% [markdown]
# ### The starter program, done right
#
# Five questions on the course LM, at most five at once, no thread. Expect each question with its
# answer; the small local model's answers are often terse or odd, but all five arrive.

# %% tags=["nbval-ignore-output"]
seed_questions = [
    "What is DSPy?",
    "How do modules work?",
    "What is optimization?",
    "Why do language model calls benefit from async?",
    "What does a semaphore limit?",
]
seed_results = await run_bounded(qa, seed_questions, 5)
for seed_question, seed_result in zip(seed_questions, seed_results, strict=True):
    print(f"Q: {seed_question}\nA: {getattr(seed_result, 'answer', seed_result)}\n")

# %% [markdown]
# ## 4. Throughput, measured
#
# Thirty different questions (different, so that DSPy's cache cannot answer any of them) go to
# the simulated provider: sequentially, then through your `run_bounded` at limits 2, 5, 10 and
# 20. `p50`/`p95` is the time *one call* took, median and 95th percentile. The runs take about
# 12 s together; each shows a progress bar.

# %% tags=["nbval-ignore-output"]
N = 30
rows = [
    cc.measure_sequential(qa, cc.distinct_questions(N, "seq"), lm=remote_lm(), show_progress=True)
]
for limit in (2, 5, 10, 20):
    questions = cc.distinct_questions(N, f"c{limit}")
    row = await cc.measure_concurrent(
        run_bounded, qa, questions, limit, lm=remote_lm(), show_progress=True
    )
    rows.append(row)
print(cc.format_table(rows))
display(cc.plot_throughput(rows, f"Simulated remote provider, {N} requests, latency {LATENCY:g} s"))

# %% [markdown]
# With limit N, a round of N calls takes about one call's latency, so throughput should grow N×.
# Up to 10 it nearly does: the calls spend their time waiting, and waits overlap. At 20 it falls
# well short, for two reasons the table shows:
# * **rounds:** 30 requests at limit 20 take two rounds (20, then 10): 15× at best, no better
#   than limit 15.
# * **each call got slower:** p50 rises above the provider's 200 ms (260 ms and 12× in the run
#   stored with this notebook; on a busier machine, 320 ms and about 10×). DSPy spends CPU time
#   on *this* machine per call (building the prompt, parsing the reply, cache look-ups in a
#   small thread pool), and with 20 calls at once that work queues.
#
# A model that computes on your own CPU gains even less: concurrency cannot create CPU time
# (Going further B).
#
# ## 5. Rate limits: the provider's, and your own
#
# Above their limit, providers answer **HTTP 429**. DSPy retries those errors up to `num_retries`
# times (3 by default), waiting as the provider asks (`Retry-After`) or backing off
# exponentially. So a burst of 25 into a limit of 10 per second still completes, slower and with
# wasted calls. With `num_retries=0` the refused calls fail with `dspy.LMRateLimitError`, each in
# its own place thanks to `return_exceptions`:

# %% tags=["nbval-ignore-output"]
for retries in (3, 0):
    limited = remote_lm(latency=0.01, jitter=0.0, rate_limit=10, num_retries=retries)
    start = time.perf_counter()
    with dspy.context(lm=limited):
        results = await run_bounded(qa, cc.distinct_questions(25, f"burst{retries}"), 25)
    failed = sorted({type(r).__name__ for r in results if isinstance(r, Exception)})
    print(
        f"num_retries={retries}: {sum(not isinstance(r, Exception) for r in results)}/25 "
        f"answered in {time.perf_counter() - start:.1f} s, {limited.engine.stats.rate_limited} "
        f"refused by the provider; failures: {failed or 'none'}"
    )

# %% [markdown]
# Every refused call is wasted. A client-side limiter avoids them: it never sends faster than the
# budget.
#
# ### Task 2 — `TokenBucket` (3 points)
#
# A token bucket holds at most `burst` tokens and refills continuously at `rate` tokens per
# second; each request takes one token, or waits while the bucket is empty. **Graded**: its four
# promises, measured over two floods of requests an idle second apart:
# * **a burst is allowed:** after a pause, up to `burst` requests go at once, without waiting;
# * **the rate is reached:** a long queue of requests flows at `rate` per second, not slower;
# * **the budget holds in every window, also after idling:** in any `T` seconds at most
#   `rate × T + burst` requests pass. A refill with no cap breaks this: idle for a second, it
#   "saves up" `rate` extra tokens and lets them all through at once;
# * **nothing else stops while a request waits:** wait with `await asyncio.sleep`, never
#   `time.sleep`.
#
# The constructor is given (it refuses a rate that is not a positive finite number, and a burst
# below 1). You write `acquire`, and read the time only with **`self.clock()`** (never
# `time.monotonic()` directly): it is `time.monotonic` unless someone passes another clock, and
# the checks pass one that skips idle waits, so seconds of traffic take milliseconds to test.
# Holding `self.lock` while you refill, take and wait serves waiting requests in turn. Stuck?
# `ex2.hint("Task 2")`.


# %% nbgrader={"solution": true, "grade_id": "token_bucket"}
class TokenBucket:
    """Let `rate` acquisitions per second through on average, and up to `burst` at once."""

    def __init__(
        self, rate: float, burst: int = 1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a finite number of requests per second, got {rate!r}")
        if not (isinstance(burst, int) and burst >= 1):
            raise ValueError(f"burst must be a whole number of at least 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = burst
        self.clock = clock  # seconds; read the time only through it
        self.tokens = float(burst)  # start full: the first `burst` requests need not wait
        self.updated = clock()
        self.lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until a token is available, then take it."""
        ### BEGIN SOLUTION
        async with self.lock:
            while True:
                now = self.clock()
                self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)
        ### END SOLUTION


# %%
ex2.check_token_bucket(TokenBucket)

# %% nbgrader={"grade": true, "grade_id": "test_token_bucket", "points": 3}
# `cc.trial_bucket` runs two floods of 30 requests, one second apart, on a clock that skips idle
# waits: seconds of traffic in milliseconds.
rounds = cc.trial_bucket(TokenBucket, rate=20, burst=4, n=30, idle=1.0)
passed = [t for r in rounds for t in r.passed]
worst = cc.max_per_window(passed, 1.0)
assert len(passed) == 60, f"{len(passed)} of 60 acquire() calls returned"
assert worst <= 20 * 1.0 + 4, f"{worst} requests passed within one second; the budget is 24"
### BEGIN HIDDEN TESTS
import importlib

# Fresh copies of the measuring tools: a solution cell cannot change what the test measures with.
importlib.reload(importlib.import_module("dspy_workbook.concurrency._fastforward"))
_flood = importlib.reload(importlib.import_module("dspy_workbook.concurrency._flood"))
_overrun = importlib.reload(
    importlib.import_module("dspy_workbook.concurrency._windows")
).worst_overrun
rate, burst, n = 25, 3, 30
try:
    rounds = _flood.trial_bucket(TokenBucket, rate=rate, burst=burst, n=n, idle=1.0)
except _flood.FloodUnfinished as exc:
    raise AssertionError(str(exc)) from None
passed = [t for r in rounds for t in r.passed]
assert len(passed) == 2 * n, f"{len(passed)} of {2 * n} acquire() calls returned"
# The budget over every stretch of time: burst + rate × its length.
overrun = _overrun(passed, rate=rate, burst=burst)
assert overrun is None, f"{overrun}: one token too many"
for label, r in zip(("at first", "after idling"), rounds, strict=True):
    quick = sorted(r.passed)[burst - 1] - r.start
    assert quick < 0.5 / rate, f"{label}, the first {burst} requests took {quick:.3f} s: no burst"
    ideal = (n - burst) / rate
    assert r.took < ideal * 1.15 + 0.05, (
        f"{label}, {n} requests took {r.took:.2f} s; at {rate:g}/s they need {ideal:.2f} s"
    )
    assert r.longest_stall < 0.5 and r.total_stall < 0.5 * r.took + 0.05, (
        f"{label}, the event loop was stuck {r.total_stall:.2f} s of {r.took:.2f} s: time.sleep?"
    )
### END HIDDEN TESTS

# %% [markdown]
# Put the bucket in front of a provider that allows 10 requests per second. A budget of 8 per
# second with a burst of 1 stays under the limit with a margin, which covers the moment between
# leaving the bucket and reaching the provider. `Throttled` wraps any program:


# %% tags=["nbval-ignore-output"]
class Throttled(dspy.Module):
    """Run `program` only when `bucket` lets a request through."""

    def __init__(self, program: dspy.Module, bucket: TokenBucket) -> None:
        super().__init__()
        self.program, self.bucket = program, bucket

    async def aforward(self, **inputs) -> dspy.Prediction:
        await self.bucket.acquire()
        return await self.program.acall(**inputs)


limited = remote_lm(latency=0.01, jitter=0.0, rate_limit=10)
with dspy.context(lm=limited):
    start = time.perf_counter()
    throttled = Throttled(qa, TokenBucket(rate=8, burst=1))
    results = await run_bounded(throttled, cc.distinct_questions(20, "tb"), 20)
    seconds = time.perf_counter() - start
stats = limited.engine.stats
print(
    f"{sum(not isinstance(r, Exception) for r in results)}/20 answered in {seconds:.1f} s; "
    f"refused by the provider: {stats.rate_limited}; "
    f"most requests in any 1 s window: {cc.max_per_window(stats.started_at, 1.0)} (limit 10)"
)

# %% [markdown]
# No refusals, and no wasted calls: the client kept the budget itself. That is the core path —
# Tasks 1 and 2 are the full grade. If you stop here, jump to **Check your work** at the end.
#
# ## Going further (optional — no points)
#
# Each part below stands on its own. The optional tasks have self-checks but no graded cells,
# and their demos skip themselves until the task is done, so *Run All* still reaches the end.
#
# ### A. `dspy.context` and threads
#
# `dspy.context(lm=...)` is a context variable. Tasks and `asyncio.to_thread` copy context
# variables; `loop.run_in_executor` does not, and neither does a `threading.Thread` you start
# yourself (a new thread starts with an empty context unless you run its target inside
# `contextvars.copy_context().run`):

# %%
probe = remote_lm()
with dspy.context(lm=probe):
    loop = asyncio.get_running_loop()
    in_executor = await loop.run_in_executor(None, lambda: dspy.settings.lm is probe)
    in_to_thread = await asyncio.to_thread(lambda: dspy.settings.lm is probe)
    seen_by_thread: list[bool] = []
    plain = threading.Thread(target=lambda: seen_by_thread.append(dspy.settings.lm is probe))
    plain.start()
    plain.join()
print("run_in_executor sees dspy.context(lm=...):  ", in_executor)
print("threading.Thread sees dspy.context(lm=...): ", seen_by_thread[0])
print("asyncio.to_thread sees dspy.context(lm=...):", in_to_thread)

# %% [markdown]
# Two more traps of the thread-based ways:
# * `asyncify` keeps **one limiter for the whole process** and resizes it to the
#   `async_max_workers` it sees at each call. So `with dspy.context(async_max_workers=...)` looks
#   local, but changes the cap for every `asyncify` call anywhere in the process, and the change
#   outlives the block until some call sees another value. Set it once with `dspy.configure`.
# * **`nest_asyncio`.** Code that calls `asyncio.run` from a sync function (`dspy.syncify` does)
#   needs `nest_asyncio.apply()` inside a notebook, and `syncify` calls it for you. It patches
#   `asyncio` for the **whole process**, does not work with other loops such as `uvloop`, and
#   hides the error you would get in production. With top-level `await` you never need it.
#
# ### B. A local model gains almost nothing
#
# The in-process local model is the opposite of a remote provider: its work is arithmetic on
# *this* CPU, and the engine serves one call at a time. Concurrency cannot create CPU time:
# requests per second barely move, and each call's latency grows, because it now includes waiting
# in line. Six short calls: about 6 s on a two-core machine, longer when it is busy:

# %% tags=["nbval-ignore-output"]
if wb.describe(lm).name == "local":
    colours = [f"Name one colour ({i})." for i in range(6)]  # same kind of question in both runs
    local_rows = [
        cc.measure_sequential(qa, colours[:3], lm=lm.copy(cache=False), show_progress=True),
        await cc.measure_concurrent(
            run_bounded, qa, colours[3:], 3, lm=lm.copy(cache=False), show_progress=True
        ),
    ]
    print(cc.format_table(local_rows))
else:
    print(f"The course LM is {wb.describe(lm).name!r}, not the local model: skipped.")

# %% [markdown]
# Concurrency multiplies throughput for work that *waits* (remote APIs, network, disk). For work
# that *computes* on a saturated CPU, throughput comes from batching inside the engine, a smaller
# model, or more hardware.
#
# ### C. Timeouts per call
#
# A call can hang: a stalled connection, an overloaded server. `asyncio.timeout(seconds)` cancels
# the awaited call when time runs out: it throws `asyncio.CancelledError` into the waiting code
# and turns it into a `TimeoutError` at the edge of the block. How clean that is depends on how
# the call runs:
# * **Native `acall`:** the wait for the provider is cancelled at once and the request abandoned.
#   (DSPy writes its cache in a worker thread; a cancel that lands during that write returns at
#   once, and the write still finishes in the background — harmless.)
# * **`asyncify` or a thread:** the thread cannot be stopped. Your `await` returns, but the call
#   runs on to the end — and a real provider still bills for it.
#
# Cancellation must always **win**. If code being cancelled raises another exception while it
# unwinds (say, from a `finally:` block), that exception replaces the `CancelledError`: the
# timeout never fires, and DSPy may even retry the "failed" call. So never raise from `finally:`,
# and never catch `CancelledError` or `BaseException` without re-raising.
#
# **Task 3 (optional) — `ask_with_timeout`.** Return the prediction if it arrives within
# `seconds`. Otherwise **return** (don't raise) a `TimeoutError` whose message names the question
# and the limit, and leave no call running — also when the slow call would have failed (it must
# not be retried). Then the result can sit in a results list next to the answers that did arrive,
# like the exceptions of Task 1. Hints: `ex2.hint("Task 3")`.


# %% nbgrader={"solution": true, "grade_id": "timeout"}
async def ask_with_timeout(
    program: dspy.Module, question: str, seconds: float
) -> dspy.Prediction | TimeoutError:
    """The answer to `question`, or a `TimeoutError` (returned, not raised) after `seconds`."""
    ### BEGIN SOLUTION
    try:
        async with asyncio.timeout(seconds):
            return await program.acall(question=question)
    except TimeoutError:
        return TimeoutError(f"no answer to {question!r} within {seconds:g} s")
    ### END SOLUTION


# %%
ex2.check_timeout(ask_with_timeout)

# %% [markdown]
# One slow call among fast ones costs a clear entry in the results, not the whole batch:


# %%
class SlowOn(dspy.Module):
    """Send questions with `marker` to a provider that takes 5 s, the rest to the current LM."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker, self.predict = marker, dspy.Predict("question -> answer")
        self.slow_lm = wb.sim_lm(latency=5.0, cache=False)

    async def aforward(self, question: str) -> dspy.Prediction:
        with dspy.context(lm=self.slow_lm if self.marker in question else dspy.settings.lm):
            return await self.predict.acall(question=question)


try:
    with dspy.context(lm=remote_lm(latency=0.01)):
        program = SlowOn("(stuck)")
        outcomes = await asyncio.gather(
            *(ask_with_timeout(program, q, 0.5) for q in ["First?", "Second (stuck)?", "Third?"])
        )
except NotImplementedError:
    print("(Task 3 not done — skipped)")
else:
    for outcome in outcomes:
        print(f"{type(outcome).__name__:>11}: {getattr(outcome, 'answer', outcome)}")

# %% [markdown]
# ### D. Results in order, or as they arrive
#
# `gather` returns results **in the order you asked**, once **all** of them are done: a user
# waiting for the first answer waits for the slowest. `asyncio.as_completed` hands out awaitables
# in the order the calls **finish**. Watch the order change with the jitter:

# %% tags=["nbval-ignore-output"]
jittery = remote_lm(latency=LATENCY, jitter=LATENCY * 0.9)
order_questions = cc.distinct_questions(6, "order")
with dspy.context(lm=jittery):
    in_order = await asyncio.gather(*(qa.acall(question=q) for q in order_questions))
    positions = [i for r in in_order for i, q in enumerate(order_questions) if q in r.answer]
    print("gather:       ", positions)

    async def tagged(i: int, q: str) -> tuple[int, dspy.Prediction]:
        return i, await qa.acall(question=q)

    arrival = [
        await next_done
        for next_done in asyncio.as_completed([tagged(i, q) for i, q in enumerate(order_questions)])
    ]
    print("as_completed: ", [i for i, _ in arrival])

# %% [markdown]
# **Task 4 (optional) — `answers_as_completed`**, an **async generator** (an `async def` that
# contains `yield`):
# * it yields `(index, result)` for each question **as soon as that question's call finishes**:
#   in finishing order, with the calls running concurrently;
# * at most `limit` calls in flight, and with enough questions exactly `limit`;
# * a failed call yields its exception as the result (the others still arrive);
# * if the consumer stops early (`break`, then `aclose()`), the calls that have not finished are
#   cancelled: nothing keeps running. Put the cancellation in a `finally:` block;
# * `limit` must be an `int` of at least 1, as in Task 1: otherwise raise `ValueError`. A
#   generator's body only starts at the first `async for` step (or `anext`), so that is where the
#   error appears.
#
# Until your function contains `yield` it is an ordinary coroutine, and `async for` over it fails
# with a `TypeError` ("requires an object with `__aiter__`"); the same holds for Task 5. Hints:
# `ex2.hint("Task 4")`.


# %% nbgrader={"solution": true, "grade_id": "as_completed"}
async def answers_as_completed(
    program: dspy.Module, questions: Sequence[str], limit: int
) -> AsyncIterator[tuple[int, object]]:
    """Yield `(index, prediction or exception)` for each question as soon as its call finishes."""
    ### BEGIN SOLUTION
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a whole number of at least 1, got {limit!r}")
    semaphore = asyncio.Semaphore(limit)

    async def answer(index: int, question: str) -> tuple[int, object]:
        async with semaphore:
            try:
                return index, await program.acall(question=question)
            except Exception as exc:
                return index, exc

    tasks = [asyncio.create_task(answer(i, q)) for i, q in enumerate(questions)]
    try:
        for next_done in asyncio.as_completed(tasks):
            yield await next_done
    finally:
        for task in tasks:
            task.cancel()  # no-op for finished tasks; stops the rest when the consumer left early
        await asyncio.gather(*tasks, return_exceptions=True)
    ### END SOLUTION


# %%
ex2.check_as_completed(answers_as_completed)

# %% [markdown]
# Print answers the moment they exist:

# %% tags=["nbval-ignore-output"]
if inspect.isasyncgenfunction(answers_as_completed):
    with dspy.context(lm=remote_lm(jitter=LATENCY * 0.9)):
        start = time.perf_counter()
        async for index, result in answers_as_completed(qa, cc.distinct_questions(5, "live"), 5):
            elapsed = time.perf_counter() - start
            print(f"{elapsed:5.2f} s  #{index}: {getattr(result, 'answer', result)}")
else:
    print("(Task 4 not done — skipped)")

# %% [markdown]
# ### E. Token streaming
#
# `dspy.streamify(program, stream_listeners=[listener])`, with
# `listener = dspy.streaming.StreamListener(signature_field_name="answer")`, turns a program into a
# function that returns an async generator. It yields `StreamResponse` chunks of the `answer`
# field while the LM generates them, then the final `Prediction`. Three details matter:
# * **Fresh listener per call.** A listener fires once unless `allow_reuse=True`.
# * **Cache hits don't stream.** The cached answer arrives whole, as the `Prediction`.
# * **JSON quotes in chunks.** With the JSON adapter, the chunks include the quotes of the JSON
#   string.
#
# **Stopping a stream midway.** `streamify`'s generator runs the program in an `anyio` task group.
# If you `break` out of it, Python finalizes the abandoned generator later, *in another task*, and
# the task group fails with *"Attempted to exit cancel scope in a different task than it was
# entered in"*. In DSPy 3.4.1 even `await gen.aclose()` in the same task does not prevent this:
# the outer generator does not close the inner one. What works is to **cancel the task that is
# iterating the stream**, because the cancellation unwinds the task group inside the task that
# entered it. So: drive the stream from a task you own, pass chunks to your generator through an
# `asyncio.Queue`, and cancel that task when your generator ends.
#
# **Task 5 (optional) — `stream_answer`**, an async generator that yields the **text chunks** of
# the `answer` field:
# * chunks are `str`, more than one for a streamed answer, and together they spell the answer;
# * each chunk is yielded **as it arrives**: the first one reaches the consumer while the LM is
#   still generating the rest (awaiting the whole answer and then cutting it up does not count);
# * an error in the call is raised to the consumer;
# * closing the generator early leaves nothing running: no stray task, no call in flight, no
#   "cancel scope" error.
#
# If the answer comes whole (a cache hit, or an engine that does not stream), yield it once as a
# single chunk. Hints: `ex2.hint("Task 5")` — three levels, the last close to a recipe.


# %% nbgrader={"solution": true, "grade_id": "stream_answer"}
async def stream_answer(program: dspy.Module, question: str) -> AsyncIterator[str]:
    """Yield the text of `program`'s answer to `question` chunk by chunk, as the LM produces it."""
    ### BEGIN SOLUTION
    listener = dspy.streaming.StreamListener(signature_field_name="answer")
    streaming = dspy.streamify(program, stream_listeners=[listener], is_async_program=True)
    queue: asyncio.Queue = asyncio.Queue()
    end = object()

    async def pump() -> None:
        streamed = False
        try:
            async for item in streaming(question=question):
                if isinstance(item, dspy.streaming.StreamResponse):
                    streamed = True
                    queue.put_nowait(item.chunk)
                elif isinstance(item, dspy.Prediction) and not streamed:
                    queue.put_nowait(item.answer)  # nothing streamed (a cache hit): send it whole
            queue.put_nowait(end)
        except Exception as exc:
            queue.put_nowait(exc)

    task = asyncio.create_task(pump())
    try:
        while (item := await queue.get()) is not end:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        task.cancel()  # unwinds streamify's task group inside the task that entered it
        with contextlib.suppress(asyncio.CancelledError):
            await task
    ### END SOLUTION


# %%
ex2.check_stream(stream_answer)

# %% [markdown]
# Print tokens as they come. `contextlib.aclosing` closes the generator when the block ends, even
# after a `break`, in this same task:

# %% tags=["nbval-ignore-output"]
if inspect.isasyncgenfunction(stream_answer):
    question = "Why do concurrent calls help with remote APIs?"
    async with contextlib.aclosing(stream_answer(qa, question)) as chunks:
        async for chunk in chunks:
            print(chunk, end="", flush=True)
    print()

    received = 0
    question = "Tell me a long story about event loops."
    async with contextlib.aclosing(stream_answer(qa, question)) as chunks:
        async for chunk in chunks:
            print(chunk, end="", flush=True)
            received += 1
            if received == 2:
                break  # aclosing closes the generator here; its finally cancels the stream's task
    print(f" … stopped after {received} chunks; nothing left running.")
else:
    print("(Task 5 not done — skipped)")

# %% [markdown]
# ## Summary
#
# * In a notebook, `await` at top level. Never `asyncio.run` inside a running loop, and no
#   `nest_asyncio` unless sync code forces it (it patches the whole process).
# * `await module.acall(...)` is the cheap way to run DSPy concurrently; a custom module needs its
#   own `aforward`. `asyncify` and thread pools also work, but each waiting call holds a thread,
#   and `asyncify` runs at most `async_max_workers` (8) at once — a process-wide limit.
# * Bound the calls in flight with a semaphore, refuse limits that cannot work, and keep each
#   failure next to its question (`return_exceptions=True`), so a batch never loses its good
#   results.
# * Against a remote provider, throughput grows nearly N× with concurrency N until the rounds
#   stop dividing evenly and the per-call work on your own CPU queues; against a CPU-bound local
#   model it buys almost nothing.
# * Let DSPy retry rate-limit errors, and stay under the provider's limit with a token bucket
#   whose refill is capped at its burst.
# * (Going further) A timeout is a cancellation, and cancellation must win. `as_completed` and
#   async generators give answers as they finish; `streamify` gives tokens. Stop a stream by
#   cancelling the task that drives it.
#
# ## Questionnaire
#
# 1. Why does concurrency multiply throughput against a remote provider but barely help a local
#    model on the same machine?
# 2. What is the difference between `await program.acall(...)`, `dspy.asyncify(program)` and
#    `asyncio.to_thread(program, ...)`? Which of them can hold 100 calls in flight, and at what
#    cost?
# 3. Why does `asyncio.Semaphore(2.5)` not limit anything, and why is raising `ValueError` better
#    than rounding the limit?
# 4. With 30 requests of 0.2 s each, what is the best speed-up at limit 20? At limit 15? Why did
#    the measured one fall short of it?
# 5. A token bucket with `rate=10, burst=5`: how many requests can pass in the first second after
#    a long pause? In any 3 seconds?
# 6. What goes wrong if a token bucket's refill is not capped at `burst`?
# 7. Why must `acquire` wait with `await asyncio.sleep` and never with `time.sleep`?
# 8. Does `with dspy.context(lm=...)` reach a `threading.Thread` you start inside the block? How
#    would you make it?
# 9. (Going further) After `asyncio.timeout` cancels a native `acall`, what (if anything) is still
#    running? And after it cancels an `asyncify` call?
# 10. (Going further) Why is the first chunk's arrival time — not the number of chunks — the
#     test of real streaming?
#
# ## Further research
#
# * Python's [asyncio task documentation](https://docs.python.org/3/library/asyncio-task.html):
#   `TaskGroup`, `timeout`, `as_completed`, and the section on cancellation ("`CancelledError`
#   should generally be propagated").
# * The token bucket and its twin, the leaky bucket, as used by API gateways (and GCRA, the same
#   promise kept with a single timestamp); compare the limits your LM provider documents
#   (requests *and* tokens per minute) — a limiter for both needs two buckets.
# * Structured concurrency: Nathaniel J. Smith's essay "Notes on structured concurrency, or: Go
#   statement considered harmful", and how `anyio` task groups (used by `dspy.streamify`) follow it.
# * DSPy's own pieces: `dspy.Parallel` and `Module.batch` (thread-based, with `max_errors` and
#   `timeout`), and how `dspy.asyncify`'s process-wide limiter is sized by `async_max_workers`.
# * Backpressure in a server: what should a web API do when requests arrive faster than the
#   provider allows — queue, shed (HTTP 429 to its own clients) or degrade?
#
# ## Check your work
#
# `ex2.check_all()` re-runs every self-check on what your notebook defines now: one row per task,
# core and going further apart. ✅ on both core tasks means the hidden tests will pass.

# %% tags=["nbval-ignore-output"]
ex2.check_all()

# %% [markdown]
# ## How to submit
#
# 1. Save the notebook (**File → Save**, or Ctrl-S).
# 2. **Kernel → Restart Kernel and Run All Cells…**: the grader runs your notebook top to bottom in a
#    fresh kernel, so this shows what it will see. It must reach `check_all()` without stopping; if
#    it stops at a graded cell, that task is unfinished.
# 3. Press **Validate** in the notebook's toolbar: it runs the notebook the way the grader does and
#    reports any test cell that fails.
# 4. Hand it in: on the course JupyterHub, **Nbgrader → Assignment List**, then **Submit** next to
#    `ch07`; working on your own machine (`make lab`), upload the saved `02_async.ipynb` where your
#    instructor asked.
