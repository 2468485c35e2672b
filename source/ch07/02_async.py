# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 2 — Async DSPy: concurrency, rate limits, timeouts and streaming
#
# A call to a hosted language model spends almost all of its time **waiting**: the request
# travels, the provider queues it, the answer comes back. While one call waits, a program could
# start nine others. That is what `async` buys you — and everything that comes with it is what
# this exercise is about: a limit on how many calls run at once, a budget of requests per second,
# retries when the provider says "slow down", failures that stay contained, timeouts, and (going
# further) answers handed out as soon as they are ready and tokens printed as they are generated.
#
# You will measure every claim. The **simulated provider** (`wb.sim_lm`) behaves like a remote
# API: each call waits (latency plus jitter), can fail, and enforces a requests-per-second limit
# with HTTP-429-style errors. Its `.engine.stats` counts what it saw, including the largest
# number of calls it served at the same time (`max_in_flight`).
#
# **Learning objectives** — after this exercise you can
# * run DSPy modules concurrently with `await module.acall(...)`, and write `aforward` for your own;
# * choose between native `acall`, `dspy.asyncify` and threads, and say what each costs;
# * bound the calls in flight with a semaphore and their rate with a token bucket, and prove both
#   hold by measuring;
# * keep every good result when some calls fail or time out;
# * (going further) hand out answers in finishing order, and stream tokens with `dspy.streamify`
#   and stop a stream cleanly.
#
# **Prerequisites:** Exercise 1 (DSPy modules, `dspy.context`); Python's `async def`/`await`
# and `asyncio.gather` at the level of the
# [asyncio tutorial](https://docs.python.org/3/library/asyncio-task.html).
#
# **Core path — about 40 minutes, 7 points (the full grade):**
#
# | Part | What you do | Time | Points |
# |---|---|---|---|
# | Sections 1–2 | read and run: the event loop, three ways to run DSPy concurrently | 8 min | – |
# | Task 1 | `aforward` for a custom module | 5 min | 1 |
# | Task 2 | `run_bounded`: a semaphore-bounded runner that keeps every result | 10 min | 3 |
# | Sections 4–5 | read and run: throughput measured, the provider's rate limit | 4 min | – |
# | Task 3 | `TokenBucket.acquire`: a requests-per-second limiter with a burst | 10 min | 2 |
# | Task 4 | `ask_with_timeout`: a per-call timeout with a clear result | 5 min | 1 |
#
# **Going further — optional, about 30 minutes, 4 points of extra credit** (the seed's advanced
# challenge, *stream responses as they arrive*): Task 5, `answers_as_completed` (12 min, 2 points),
# and Task 6, `stream_answer` (18 min, 2 points). They are graded by the same autograder; nbgrader
# adds their points to the notebook's total (11), and the course counts 7 points as 100 %, so they
# can only raise your grade. Skipping them costs nothing.
#
# **How this notebook works.** After each task, a self-check cell (`ex2.check_…`) tells you at once
# whether your code does what the task asks: ✅ correct, ❌ incorrect (with what your code did),
# 💡 not attempted yet, 💥 your code raised an error. A ✅ on every self-check means the hidden
# tests will pass. Stuck? `ex2.hint("task name")` reveals one more hint each time you run it.
# The self-checks run your code with a time limit of their own, so code that hangs tells you so
# after a few seconds instead of freezing the notebook. At the end, `ex2.check_all()` shows every
# task's verdict.

# %%
import dspy_workbook as wb

lm = wb.setup()

# %%
import asyncio
import contextlib
import math
import threading
import time
from collections.abc import AsyncIterator, Sequence

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
# Jupyter runs your cells inside an `asyncio` event loop. That has two consequences:
#
# * You can write `await` directly in a cell (top-level await). No wrapper is needed.
# * `asyncio.run(...)` **fails** in a notebook: it wants to start a new loop, and one is
#   already running in this thread.


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
# ### What is wrong with the classic "run it in an executor" starter
#
# A common first attempt wraps a synchronous DSPy call in `loop.run_in_executor(None, ...)`,
# fetches the loop with `asyncio.get_event_loop()` inside the coroutine, and starts everything
# with `asyncio.run(main())` under `if __name__ == "__main__":`. In a notebook each piece bites:
#
# 1. `__name__` *is* `"__main__"` in a notebook, so `asyncio.run` runs — and raises the
#    `RuntimeError` above. In a notebook you `await main()` instead.
# 2. `asyncio.get_event_loop()` is the old API. Inside a coroutine it happens to return the
#    running loop, but the documented call there is `asyncio.get_running_loop()`. Outside a
#    running loop, `get_event_loop()` is deprecated: Python 3.12 warns, 3.14 raises. Better still,
#    use `asyncio.to_thread`, which needs no loop object at all.
# 3. `run_in_executor` does **not** copy context variables into the worker thread, and
#    `dspy.context(lm=...)` is a context variable. The call silently uses the *global* LM, not
#    the one you chose for this block. `asyncio.to_thread` copies the context. A plain
#    `threading.Thread` that you start yourself does not inherit it either: a new thread starts
#    with an empty context unless you run its target inside `contextvars.copy_context().run`.
#    See below.
# 4. Each waiting call occupies a whole thread. That works, but DSPy modules can wait natively
#    (`acall`), which costs no thread at all.
#
# **`nest_asyncio`.** Some code calls `asyncio.run` (or `loop.run_until_complete`) from a sync
# function. `dspy.syncify` does this. Run inside a notebook, that code needs `nest_asyncio.apply()`,
# which makes the running loop re-entrant — and `syncify` calls it for you. The cost:
# * It patches `asyncio` for the **whole process**, not one call.
# * It does not work with other loops such as `uvloop`.
# * It hides the error you would get in production, where the patch is absent.
#
# You need it only to call such sync-wrapping code from a notebook cell. With top-level `await`
# you never do, and this workbook never uses it.

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
# ## 2. Three ways to run DSPy concurrently
#
# 1. **Native:** `await module.acall(...)`. The module's `aforward` awaits the LM's async engine.
#    No thread is used while the call waits, so a thousand calls in flight cost a thousand small
#    tasks. `dspy.Predict`, `dspy.ChainOfThought` and `dspy.ReAct` implement `aforward`.
# 2. **`dspy.asyncify(program)`:** runs the *synchronous* program in a worker thread and gives
#    you an awaitable. At most `dspy.settings.async_max_workers` (default **8**) run at once: a
#    process-wide cap on threads.
# 3. **A thread executor:** `await asyncio.to_thread(program, question=...)`. This is the same
#    idea as `asyncify`, by hand. The default pool holds `min(32, CPUs + 4)` threads.
#
# The same 20 questions go through each. Watch `peak` — the most calls the provider saw at once.
#
# Every demo picks its LM with `with dspy.context(lm=...)`, never `dspy.configure(...)`:
# * `configure` may only be called from the thread that first called it;
# * `context` is a per-task override for settings that are read per call (like `lm`), safe
#   inside concurrent code, and it is copied into `asyncify`'s worker threads and
#   `asyncio.to_thread` (not into a `threading.Thread` you start yourself).


# %% tags=["nbval-ignore-output"]
async def timed_fanout(label: str, make_call) -> None:
    """Send 20 distinct questions at once through `make_call` and report time and peak in flight."""
    provider = remote_lm()
    questions = cc.distinct_questions(20, tag=label)
    with dspy.context(lm=provider):
        start = time.perf_counter()
        await asyncio.gather(*(make_call(q) for q in questions))
        seconds = time.perf_counter() - start
    print(f"{label:<22} {seconds:5.2f} s   peak in flight: {provider.engine.stats.max_in_flight}")


async_qa = dspy.asyncify(qa)
await timed_fanout("native acall", lambda q: qa.acall(question=q))
await timed_fanout("dspy.asyncify", lambda q: async_qa(question=q))
await timed_fanout("asyncio.to_thread", lambda q: asyncio.to_thread(qa, question=q))

# %% [markdown]
# Only the native run reaches 20 calls in flight. The thread-backed runs need several rounds of
# waiting instead of one:
# * `asyncify` stops at 8. Raise its cap with `dspy.configure(async_max_workers=...)`. Beware
#   `with dspy.context(async_max_workers=...)`: it looks local, but `asyncify` keeps **one
#   limiter for the whole process** and resizes it to the value it sees at each call. Inside the
#   block you change the cap for every `asyncify` call running anywhere in the process, and it
#   stays changed after the block until some call sees another value.
# * `to_thread` stops at the size of the default thread pool, `min(32, CPUs + 4)`.
#
# With `acall` there is no cap at all, which is why you need your own limit (Task 2).
#
# ### Task 1 — `aforward` for your own module (1 point)
#
# `Module.acall` awaits `self.aforward(...)`. `dspy.Module` has **no default `aforward`**, so a
# module that only defines `forward` fails when called with `acall`:


# %%
class OnlyForward(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.answer = dspy.Predict("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        return self.answer(question=question)


try:
    await OnlyForward().acall(question="Does this work?")
except AttributeError as exc:
    print(f"{type(exc).__name__}: {exc}")

# %% [markdown]
# Write `aforward` for the two-step module below. It should do what `forward` does, with `await`
# and `acall` on each step.
#
# A trap: `return self.forward(question)` inside `aforward` *runs*, but it blocks the event loop
# for the whole call. Then nothing else can run, and ten "concurrent" calls take ten times as
# long. **Graded:** one `acall` makes exactly two LM calls (draft, then polish) and returns a
# `dspy.Prediction`, and several `acall`s at once really overlap. Need a nudge? Run
# `ex2.hint("aforward")` in a new cell.


# %% nbgrader={"solution": true, "grade_id": "aforward"}
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
        """The same two steps as `forward`, awaiting each LM call instead of blocking."""
        ### BEGIN SOLUTION
        draft = (await self.draft.acall(question=question)).answer
        return await self.polish.acall(question=question, draft=draft)
        ### END SOLUTION


# %%
ex2.check_aforward(DraftThenPolish)

# %% nbgrader={"grade": true, "grade_id": "test_aforward", "points": 1}
provider = wb.sim_lm(latency=0.01, cache=False)
with dspy.context(lm=provider):
    async with asyncio.timeout(20):
        result = await DraftThenPolish().acall(question="What is DSPy?")
calls = provider.engine.stats.calls
assert isinstance(result, dspy.Prediction), f"acall returned {type(result).__name__}"
assert calls == 2, f"expected a draft call and a polish call, saw {calls}"
### BEGIN HIDDEN TESTS
provider = wb.sim_lm(latency=0.05, cache=False)
with dspy.context(lm=provider):
    async with asyncio.timeout(20):
        results = await asyncio.gather(
            *(DraftThenPolish().acall(question=q) for q in cc.distinct_questions(5, "t1"))
        )
assert all("t1" in r.answer for r in results)
assert provider.engine.stats.max_in_flight == 5, "calls did not overlap: does aforward block?"
### END HIDDEN TESTS

# %% [markdown]
# ## 3. A concurrency limit that holds — and keeps every result
#
# `asyncio.gather(*calls)` starts **every** call at once. With 500 questions, that is 500
# simultaneous requests. A provider answers that with rate-limit errors, and a local server
# runs out of memory. An `asyncio.Semaphore(limit)` has `limit` permits: each call holds one
# while it runs (`async with semaphore:`), and the others wait their turn.
#
# Failures must not sink the batch either. By default `gather` raises the first exception, and
# the other results are lost to you. With `return_exceptions=True` each failed call's exception
# takes its place in the list, in order.
#
# ### Task 2 — `run_bounded` (3 points)
#
# Answer every question with `program.acall(question=...)`. **Graded:**
# * never more than `limit` calls in flight, and with enough questions exactly `limit` (the calls
#   must overlap);
# * results in the **same order** as `questions` (not in finishing order);
# * a call that fails gives its exception object in its place, and the others are kept;
# * no questions, no calls: an empty list;
# * `limit` must be a whole number (`int`) of at least 1. Anything else — `0`, `-1`, `2.5` — is a
#   mistake by the caller: raise `ValueError` with a clear message, before any call is made.
#
# Why refuse instead of "doing something sensible"? `asyncio.Semaphore(0)` never gives a permit,
# so `limit=0` would wait forever without a word. And `asyncio.Semaphore(2.5)` never blocks at
# all: it blocks only when the permits left are exactly 0, and 2.5 → 1.5 → 0.5 → −0.5 … never is,
# so every call goes through. An error is far better than a hang or a limit that silently does not
# hold.

# %%
# ex2.hint("run_bounded")  # uncomment and run for a hint; run again for the next one


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
provider = wb.sim_lm(latency=0.02, cache=False)
questions = cc.distinct_questions(12, "t2")
with dspy.context(lm=provider):
    async with asyncio.timeout(30):
        results = await run_bounded(qa, questions, 4)
assert len(results) == len(questions), f"{len(results)} results for {len(questions)} questions"
peak = provider.engine.stats.max_in_flight
assert peak <= 4, f"{peak} calls in flight, limit 4"
assert all(q in r.answer for q, r in zip(questions, results, strict=True)), "not in question order"
### BEGIN HIDDEN TESTS
assert peak == 4, "the limit was never reached: calls did not overlap"
provider = wb.sim_lm(latency=0.02, cache=False)
with dspy.context(lm=provider):
    async with asyncio.timeout(30):
        results = await run_bounded(qa, questions[:5], 1)
assert provider.engine.stats.max_in_flight == 1
assert [q in r.answer for q, r in zip(questions[:5], results, strict=True)] == [True] * 5
mixed = ["ok 0", "FAIL 1", "ok 2", "FAIL 3", "ok 4"]
with dspy.context(lm=wb.sim_lm(latency=0.01, cache=False)):
    async with asyncio.timeout(30):
        results = await run_bounded(cc.FlakyQA(), mixed, 2)
assert [isinstance(r, Exception) for r in results] == [False, True, False, True, False]
answered = [(q, r) for q, r in zip(mixed, results, strict=True) if not isinstance(r, Exception)]
assert all(q in r.answer for q, r in answered)
async with asyncio.timeout(10):
    assert await run_bounded(qa, [], 3) == []
for bad_limit in (0, -1, 2.5, float("nan")):
    provider = wb.sim_lm(latency=0.01, cache=False)
    try:
        with dspy.context(lm=provider):
            async with asyncio.timeout(5):  # limit=0 must not wait forever
                await run_bounded(qa, questions, bad_limit)
        raise AssertionError(f"limit={bad_limit!r} was accepted")
    except ValueError:
        pass
    except TimeoutError:
        raise AssertionError(f"limit={bad_limit!r}: waited 5 s instead of a ValueError") from None
    assert provider.engine.stats.calls == 0, f"limit={bad_limit!r}: calls were made before refusing"
### END HIDDEN TESTS

# %% [markdown]
# ### The seed's program, done right
#
# The exercise's starter program asked a few questions "concurrently" through an executor and
# printed each answer. With `run_bounded` it is a few lines, on the course LM, with at most five
# calls at once and no thread at all. Expected output: every question followed by its answer.
# The wording depends on the LM: the embedded 135M-parameter model is there for speed, not wisdom,
# and its answers can be terse or odd. What matters here is that all five arrive, concurrently.

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
    print(f"Q: {seed_question}")
    print(f"A: {getattr(seed_result, 'answer', seed_result)}\n")

# %% [markdown]
# ## 4. Throughput, measured and charted
#
# Now you can measure what concurrency buys. Thirty different questions (different, so that DSPy's
# cache cannot answer any of them) go to the simulated provider:
# * sequentially;
# * through your `run_bounded` at limits 1, 2, 5, 10 and 20.
#
# `p50`/`p95` is the time *one call* took, median and 95th percentile (computed by
# `dspy_workbook.stats`, the workbook's one latency summary). Each run shows a progress bar while it
# works.

# %% tags=["nbval-ignore-output"]
N = 30
rows = [
    cc.measure_sequential(qa, cc.distinct_questions(N, "seq"), lm=remote_lm(), show_progress=True)
]
for limit in (1, 2, 5, 10, 20):
    rows.append(
        await cc.measure_concurrent(
            run_bounded,
            qa,
            cc.distinct_questions(N, f"c{limit}"),
            limit,
            lm=remote_lm(),
            show_progress=True,
        )
    )
print(cc.format_table(rows))
display(cc.plot_throughput(rows, f"Simulated remote provider, {N} requests, latency {LATENCY:g} s"))

# %% [markdown]
# Against a remote provider, throughput grows almost **N×** with concurrency N, while the
# latency of each call stays flat: the calls spend their time waiting, and waits overlap
# perfectly. It stops growing only when the provider pushes back — with rate limits (next
# section) or slower answers.
#
# The in-process local model is the opposite case. Its work is arithmetic on *this* CPU, and the
# engine serves one call at a time. Concurrency cannot create CPU time: requests per second barely
# move, and each call's latency grows, because it now includes waiting in line. The run below is
# small: the local model takes about 0.3 s per short answer on two cores (`bench/bench_local.py`).

# %% tags=["nbval-ignore-output"]
if wb.describe(lm).name == "local":
    colours = [f"Name one colour ({i})." for i in range(6)]  # same kind of question in both runs
    local_rows = [
        cc.measure_sequential(qa, colours[:3], lm=lm.copy(cache=False)),
        await cc.measure_concurrent(run_bounded, qa, colours[3:], 3, lm=lm.copy(cache=False)),
    ]
    print(cc.format_table(local_rows))
else:
    print(f"The course LM is {wb.describe(lm).name!r}, not the local model: skipped.")

# %% [markdown]
# **The lesson:** concurrency multiplies throughput for work that *waits*: remote APIs, network,
# disk. It buys almost nothing for work that *computes* on a saturated CPU. For a local model,
# you get more throughput from batching inside the engine, a smaller model, or more hardware.
#
# ## 5. Rate limits: the provider's, and your own
#
# Providers limit requests per second. Above the limit they answer **HTTP 429** with a
# `Retry-After` header. DSPy retries those errors up to `num_retries` times (3 by default). It
# waits `retry_after` seconds when the provider gives one, and otherwise backs off exponentially
# (1 s, 2 s, 4 s …). So a burst above the limit still completes — slower, and with wasted calls:

# %% tags=["nbval-ignore-output"]
limited = remote_lm(latency=0.01, jitter=0.0, rate_limit=10)
burst_questions = cc.distinct_questions(25, "burst")
with dspy.context(lm=limited):
    start = time.perf_counter()
    results = await run_bounded(qa, burst_questions, 25)
    seconds = time.perf_counter() - start
answered = sum(not isinstance(r, Exception) for r in results)
print(
    f"{answered}/{len(results)} answered in {seconds:.1f} s; "
    f"the provider refused {limited.engine.stats.rate_limited} calls, which DSPy retried"
)

# %% [markdown]
# With `num_retries=0` nothing is retried. The refused calls fail with `dspy.LMRateLimitError`.
# Thanks to `return_exceptions`, each failure stays next to its own question, and every other
# answer is kept:

# %%
strict = remote_lm(latency=0.01, jitter=0.0, rate_limit=10, num_retries=0)
with dspy.context(lm=strict):
    results = await run_bounded(qa, cc.distinct_questions(15, "strict"), 15)
failures = [type(r).__name__ for r in results if isinstance(r, Exception)]
print(f"{len(results) - len(failures)} answered, {len(failures)} failed: {sorted(set(failures))}")

# %% [markdown]
# Retries are the provider's way of saying "too fast", and every refused call is wasted.
# A client-side limiter avoids them: it never sends faster than the budget.
#
# ### Task 3 — `TokenBucket` (2 points)
#
# A token bucket holds at most `burst` tokens. It refills continuously at `rate` tokens per
# second. Each request takes one token and waits when the bucket is empty. What it promises:
# * **a burst is allowed:** after a pause, up to `burst` requests go at once, without waiting;
# * **the rate is reached:** a long queue of requests flows at `rate` per second, not slower;
# * **the budget holds in every window, also after idling:** in any `T` seconds at most
#   `rate × T + burst` requests pass. A bucket whose refill has no cap breaks this: idle for a
#   second and it "saves up" `rate` extra tokens, then lets them all through at once;
# * **nothing else stops while a request waits:** other tasks (and other cells' work) keep running.
#
# The constructor is written for you, and it refuses settings that cannot work: a `rate` of 0,
# a negative one, `nan` or infinity (an infinite rate is no limit at all), and a `burst` below 1.
# You write `acquire`; these four promises are what is **graded**, measured over several windows.
# Measure time with `time.monotonic()`, and hold `self.lock` while you read and update the bucket,
# so two tasks cannot both spend the last token. Hints: `ex2.hint("token_bucket")`.

# %%
# ex2.hint("token_bucket")  # uncomment and run for a hint; run again for the next one


# %% nbgrader={"solution": true, "grade_id": "token_bucket"}
class TokenBucket:
    """Let `rate` acquisitions per second through on average, and up to `burst` at once."""

    def __init__(self, rate: float, burst: int = 1) -> None:
        if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a finite number of requests per second, got {rate!r}")
        if not (isinstance(burst, int) and burst >= 1):
            raise ValueError(f"burst must be a whole number of at least 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = burst
        self.tokens = float(burst)  # start full: the first `burst` requests need not wait
        self.updated = time.monotonic()
        self.lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until a token is available, then take it."""
        ### BEGIN SOLUTION
        async with self.lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)
        ### END SOLUTION


# %%
ex2.check_token_bucket(TokenBucket)

# %% nbgrader={"grade": true, "grade_id": "test_token_bucket", "points": 2}
bucket = TokenBucket(rate=20, burst=4)
passed_at: list[float] = []


async def take() -> None:
    await bucket.acquire()
    passed_at.append(time.monotonic())


async with asyncio.timeout(15):
    await asyncio.gather(*(take() for _ in range(40)))
assert len(passed_at) == 40
worst = cc.max_per_window(passed_at, 1.0)
assert worst <= 20 * 1.0 + 4, f"{worst} acquisitions in one second; the budget is 24"
### BEGIN HIDDEN TESTS
import importlib

# A fresh copy of the measuring tool: a solution cell cannot change what the test measures with.
most_in_window = importlib.reload(
    importlib.import_module("dspy_workbook.concurrency._windows")
).max_per_window


async def flood(bucket: TokenBucket, n: int) -> tuple[float, list[float], float, float]:
    """`n` acquisitions at once: start, when each passed, the longest and the total loop stall."""
    times: list[float] = []
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:  # a task that should get a turn every ~10 ms
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - before - 0.01)

    async def one() -> None:
        await bucket.acquire()
        times.append(time.perf_counter())

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = time.perf_counter()
    try:
        async with asyncio.timeout(15):
            await asyncio.gather(*(one() for _ in range(n)))
    finally:
        done.set()
        await tick
    return start, times, max(lags, default=0.0), sum(lags) / max(time.perf_counter() - start, 1e-9)


rate, burst = 20, 4
bucket = TokenBucket(rate=rate, burst=burst)
start_a, times_a, worst_lag_a, stuck_a = await flood(bucket, 30)
await asyncio.sleep(1.0)  # idle: a bucket may refill to `burst`, never beyond
start_b, times_b, worst_lag_b, stuck_b = await flood(bucket, 30)
everything = times_a + times_b
assert len(everything) == 60
for window in (0.25, 0.5, 1.0):
    most, budget = most_in_window(everything, window), rate * window + burst
    assert most <= budget + 1, f"{most} passed within {window} s; the budget is {budget:g}"
for start, times in ((start_a, times_a), (start_b, times_b)):
    assert sorted(times)[burst - 1] - start < 0.1, "no burst: the first requests had to wait"
    took = max(times) - start
    assert took < (30 - burst) / rate * 1.3 + 0.2, f"30 requests took {took:.2f} s: too slow"
assert max(worst_lag_a, worst_lag_b) < 0.5, "the event loop froze while requests waited"
assert max(stuck_a, stuck_b) < 0.5, "the event loop was blocked most of the time requests waited"
### END HIDDEN TESTS

# %% [markdown]
# Put the bucket in front of a provider that allows 10 requests per second. A budget of 8 per
# second with a burst of 1 stays under the limit with a margin. The margin covers the small delay
# between leaving the bucket and reaching the provider. `Throttled` wraps any program.


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
# ## 6. Timeouts per call
#
# A call can hang: a stalled connection, an overloaded server. `asyncio.timeout(seconds)` (Python
# 3.11+; `asyncio.wait_for` on older versions) cancels the awaited call when time runs out: it
# throws `asyncio.CancelledError` into the waiting code and turns it into a `TimeoutError` at the
# edge of the block.
#
# How clean the cancellation is depends on how you run the call:
# * **Native `acall`:** the wait for the provider is cancelled at once, and the request is
#   abandoned. One detail: DSPy reads and writes its cache in a worker thread
#   (`asyncio.to_thread`). A cancel that lands during that cache write returns to you at once, but
#   the write itself still finishes in the background — harmless, and nothing is billed.
# * **`asyncify` or a thread:** the thread cannot be stopped. Your `await` returns, but the call
#   runs on in the background to the end — and a real provider still bills for it.
#
# Cancellation must always **win**. If code being cancelled raises a different exception while it
# unwinds (say, from a `finally:` block), that exception replaces the `CancelledError`: the
# timeout never fires, and DSPy may even retry the "failed" call. The same holds for Ctrl-C
# (`KeyboardInterrupt`) in a synchronous call. So never raise from `finally:`, and never catch
# `CancelledError` or `BaseException` without re-raising. (The simulated provider is tested for
# this: a 0.1 s timeout on a slow call that would fail returns on time, and nothing is retried.)
#
# ### Task 4 — `ask_with_timeout` (1 point)
#
# **Graded:** return the prediction if it arrives within `seconds`. Otherwise **return** (don't
# raise) a `TimeoutError` whose message names the question and the limit, and leave no call
# running — also when the slow call would have failed (it must not be retried). Then the result
# can sit in a results list next to the answers that did arrive, like the exceptions of Task 2.
# Hints: `ex2.hint("timeout")`.

# %%
# ex2.hint("timeout")  # uncomment and run for a hint; run again for the next one


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

# %% nbgrader={"grade": true, "grade_id": "test_timeout", "points": 1}
slow = wb.sim_lm(latency=5.0, cache=False)
async with asyncio.timeout(3):
    with dspy.context(lm=slow):
        outcome = await ask_with_timeout(qa, "Will this take forever?", 0.1)
kind = type(outcome).__name__
assert isinstance(outcome, TimeoutError), f"expected a returned TimeoutError, got {kind}"
assert "Will this take forever?" in str(outcome), f"no question in the message: {outcome}"
### BEGIN HIDDEN TESTS
await asyncio.sleep(0.01)
assert slow.engine.stats.in_flight == 0, "the timed-out call is still running"
with dspy.context(lm=wb.sim_lm(latency=0.01, cache=False)):
    async with asyncio.timeout(10):
        fast = await ask_with_timeout(qa, "Quick one?", 2.0)
assert isinstance(fast, dspy.Prediction) and "Quick one?" in fast.answer
failing_slowly = wb.sim_lm(latency=3.0, error_rate=1.0, cache=False)  # cancellation must win
started = time.perf_counter()
with dspy.context(lm=failing_slowly):
    async with asyncio.timeout(10):
        outcome = await ask_with_timeout(qa, "Fails slowly?", 0.1)
took = time.perf_counter() - started
assert isinstance(outcome, TimeoutError), f"a slow failing call gave {type(outcome).__name__}"
assert took < 1.5 and failing_slowly.engine.stats.calls == 1, f"took {took:.1f} s, with retries"
### END HIDDEN TESTS

# %% [markdown]
# One slow call among fast ones. With a timeout it costs a clear entry in the results, not the
# whole batch:


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


with dspy.context(lm=remote_lm(latency=0.01)):
    program = SlowOn("(stuck)")
    outcomes = await asyncio.gather(
        *(ask_with_timeout(program, q, 0.5) for q in ["First?", "Second (stuck)?", "Third?"])
    )
for outcome in outcomes:
    print(f"{type(outcome).__name__:>11}: {getattr(outcome, 'answer', outcome)}")

# %% [markdown]
# ## Going further (optional, extra credit)
#
# That is the core path: Tasks 1–4 are the full grade. If you have half an hour more, the two
# tasks below take on the seed's advanced challenge — *stream responses as they arrive* — with
# async generators. They are graded like the others, and their 4 points are extra credit. If you
# stop here, jump to **Check your work** at the end.
#
# ## 7. Results in order, or as they arrive
#
# `gather` returns results **in the order you asked**, once **all** of them are done. A user
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
# ### Task 5 — `answers_as_completed` (2 points, extra credit)
#
# Write an **async generator** (an `async def` containing `yield`). **Graded:**
# * it yields `(index, result)` for each question **as soon as that question's call finishes**:
#   in finishing order, not question order, with the calls running concurrently;
# * at most `limit` calls in flight, and with enough questions exactly `limit`;
# * a failed call yields its exception as the result (the others still arrive);
# * if the consumer stops early (`break`, then `aclose()`), the calls that have not finished are
#   cancelled: nothing keeps running. Put the cancellation in a `finally:` block;
# * `limit` must be a whole number (`int`) of at least 1, as in Task 2: otherwise raise
#   `ValueError`. A generator's body only starts at the first `async for` step (or `anext`), so
#   that is where the error appears.
#
# The tests use questions whose text says nothing about how long each one takes, so the only way
# to pass is to really run the calls at the same time and hand out each answer when it is done.
#
# Until your function contains `yield`, it is an ordinary coroutine, and `async for` over it fails
# with a `TypeError` ("requires an object with `__aiter__`"). That applies to Task 6 as well.
# Hints: `ex2.hint("as_completed")`.

# %%
# ex2.hint("as_completed")  # uncomment and run for a hint; run again for the next one


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

# %% nbgrader={"grade": true, "grade_id": "test_as_completed", "points": 2}
# ScriptedQA answers each question after its own delay (no LM); `.finished` is the order the
# calls completed in, which is the order an "as completed" generator must follow.
delays = {"Which way is north?": 0.3, "How far is the sea?": 0.05, "Where is the key?": 0.15}
scripted = cc.ScriptedQA(delays)
seen: list[int] = []
async with asyncio.timeout(10):
    async for index, result in answers_as_completed(scripted, list(delays), 3):
        assert list(delays)[index] in result.answer, f"index {index} came with {result!r}"
        seen.append(index)
finished = [list(delays).index(q) for q in scripted.finished]
assert seen == finished, f"yielded {seen}, but the calls finished in the order {finished}"
assert scripted.in_flight.peak == 3, f"{scripted.in_flight.peak} call(s) at once, limit 3"
### BEGIN HIDDEN TESTS
import random
import secrets


class _Probe(dspy.Module):
    """Answers after a delay known only to the test; counts calls at once; some fail."""

    def __init__(self, wait: dict[str, float], broken: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self._wait, self._broken = wait, broken
        self.done: list[str] = []
        self.now = self.most = 0

    async def aforward(self, question: str) -> dspy.Prediction:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(self._wait[question])
            self.done.append(question)
            if question in self._broken:
                raise RuntimeError(f"no answer for {question}")
            return dspy.Prediction(answer=f"re: {question}")
        finally:
            self.now -= 1


names = [f"{secrets.token_hex(4)}?" for _ in range(6)]
waits = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3]
while waits == sorted(waits) or waits == sorted(waits, reverse=True):
    random.shuffle(waits)  # finishing order differs from question order (and from its reverse)
plan = dict(zip(names, waits, strict=True))
probe = _Probe(plan)
got: list[tuple[int, object]] = []
still_running: list[int] = []  # calls in flight each time an answer is handed out
started = time.perf_counter()
async with asyncio.timeout(10):
    async for pair in answers_as_completed(probe, names, 6):
        got.append(pair)
        still_running.append(probe.now)
elapsed = time.perf_counter() - started
assert still_running[0] > 0, "the first answer came only after every call had finished"
assert [i for i, _ in got] == [names.index(q) for q in probe.done], "not in finishing order"
assert all(names[i] in r.answer for i, r in got), "an answer came with the wrong index"
assert probe.most == 6, f"only {probe.most} call(s) ran at once: the calls do not overlap"
assert elapsed < 0.3 + 0.4, f"{elapsed:.2f} s for calls of at most 0.3 s: they ran one by one"
probe = _Probe(plan)
async with asyncio.timeout(10):
    got = [pair async for pair in answers_as_completed(probe, names, 2)]
assert sorted(i for i, _ in got) == list(range(6)) and probe.most == 2, f"{probe.most} at once"
probe = _Probe(plan, broken=frozenset(names[1:2]))
async with asyncio.timeout(10):
    got = dict([pair async for pair in answers_as_completed(probe, names, 3)])
assert sorted(got) == list(range(6)), f"indices {sorted(got)}: a failure ended the stream"
assert [isinstance(got[i], Exception) for i in range(6)] == [i == 1 for i in range(6)]
quick = min(names, key=plan.__getitem__)
probe = _Probe({q: (0.02 if q == quick else 5.0) for q in names})
stream = answers_as_completed(probe, names, 6)
async with asyncio.timeout(10):
    first = await anext(stream)
    await stream.aclose()
await asyncio.sleep(0.05)
assert first[0] == names.index(quick) and probe.now == 0, "closing the generator left calls running"
for bad_limit in (0, -1, 2.5):
    try:
        async with asyncio.timeout(5):  # limit=0 must not wait forever
            await anext(answers_as_completed(_Probe(plan), names, bad_limit))
        raise AssertionError(f"limit={bad_limit!r} was accepted")
    except ValueError:
        pass
    except TimeoutError:
        raise AssertionError(f"limit={bad_limit!r}: waited 5 s instead of a ValueError") from None
### END HIDDEN TESTS

# %% [markdown]
# Print answers the moment they exist:

# %% tags=["nbval-ignore-output"]
with dspy.context(lm=remote_lm(jitter=LATENCY * 0.9)):
    start = time.perf_counter()
    async for index, result in answers_as_completed(qa, cc.distinct_questions(5, "live"), 5):
        elapsed = time.perf_counter() - start
        print(f"{elapsed:5.2f} s  #{index}: {getattr(result, 'answer', result)}")

# %% [markdown]
# ## 8. Token streaming
#
# `dspy.streamify(program, stream_listeners=[listener])`, with
# `listener = dspy.streaming.StreamListener(signature_field_name="answer")`, turns a program into a
# function that returns an async generator. The generator yields:
# * `StreamResponse` chunks of the `answer` field while the LM generates them;
# * then the final `Prediction`.
#
# Three details matter:
# * **Fresh listener per call.** A listener fires once unless `allow_reuse=True`.
# * **Cache hits don't stream.** The cached answer arrives whole, as the `Prediction`.
# * **JSON quotes in chunks.** With the JSON adapter, the chunks include the quotes of the JSON
#   string.
#
# **Stopping a stream midway.** `streamify`'s generator runs the program in an `anyio` task group.
# If you `break` out of it, Python finalizes the abandoned generator later, *in another task*. The
# task group then fails with *"Attempted to exit cancel scope in a different task than it was
# entered in"*. In DSPy 3.4.1 even `await gen.aclose()` in the same task does not prevent this: the
# outer generator does not close the inner one. What works is to **cancel the task that is
# iterating the stream**, because the cancellation unwinds the task group inside the task that
# entered it. So: drive the stream from a task you own, pass chunks to your generator through an
# `asyncio.Queue`, and cancel that task when your generator ends.
#
# ### Task 6 — `stream_answer` (2 points, extra credit)
#
# An async generator that yields the **text chunks** of the `answer` field. **Graded:**
# * chunks are `str`, more than one for a streamed answer, and together they spell the answer;
# * each chunk is yielded **as it arrives**: the first one reaches the consumer while the LM is
#   still generating the rest (awaiting the whole answer and then cutting it up does not count);
# * an error in the call is raised to the consumer;
# * closing the generator early leaves nothing running: no stray task, no call in flight, no
#   "cancel scope" error.
#
# If the answer comes whole (a cache hit, or an engine that does not stream), yield it once as a
# single chunk. Hints: `ex2.hint("stream_answer")` — three levels, the last close to a recipe.

# %%
# ex2.hint("stream_answer")  # uncomment and run for a hint; run again for the next one


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

# %% nbgrader={"grade": true, "grade_id": "test_stream_answer", "points": 2}
streaming_lm = wb.sim_lm(latency=0.05, cache=False)
with dspy.context(lm=streaming_lm):
    async with asyncio.timeout(10):
        chunks = [chunk async for chunk in stream_answer(qa, "Stream this answer, please")]
assert len(chunks) > 1, f"the answer arrived in {len(chunks)} chunk(s), not streamed"
assert all(isinstance(c, str) for c in chunks), "chunks must be text"
assert "Stream this answer, please" in "".join(chunks)
### BEGIN HIDDEN TESTS
timing_lm = wb.sim_lm(latency=0.6, cache=False)
arrivals: list[float] = []
busy_at_first = None
with dspy.context(lm=timing_lm):
    started = time.perf_counter()
    async with asyncio.timeout(10):
        async for _chunk in stream_answer(qa, "When does the first chunk come?"):
            if busy_at_first is None:
                busy_at_first = timing_lm.engine.stats.in_flight
            arrivals.append(time.perf_counter() - started)
    whole = time.perf_counter() - started
assert len(arrivals) > 1 and busy_at_first == 1, "the first chunk came after the LM had finished"
assert arrivals[0] < 0.75 * whole, f"first chunk at {arrivals[0]:.2f} s of {whole:.2f} s"
loop_errors: list[dict] = []
loop = asyncio.get_running_loop()
previous_handler = loop.get_exception_handler()
loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
try:
    tasks_before = asyncio.all_tasks()
    streaming_lm = wb.sim_lm(latency=0.4, cache=False)
    with dspy.context(lm=streaming_lm):
        chunks = stream_answer(qa, "Stop me midway")
        async with asyncio.timeout(10):
            first_chunk = await anext(chunks)
            await chunks.aclose()
        del chunks
        import gc

        gc.collect()
        await asyncio.sleep(0.1)
    assert isinstance(first_chunk, str)
    assert streaming_lm.engine.stats.in_flight == 0, "the LM call is still running after aclose()"
    assert all(t.done() for t in asyncio.all_tasks() - tasks_before - {asyncio.current_task()})
    assert not loop_errors, f"closing the stream left an error: {loop_errors[0].get('exception')!r}"
finally:
    loop.set_exception_handler(previous_handler)
with dspy.context(lm=wb.sim_lm(latency=0.01, error_rate=1.0, num_retries=0, cache=False)):
    try:
        async with asyncio.timeout(10):
            _ = [c async for c in stream_answer(qa, "This call fails")]
        raise AssertionError("the LM error was swallowed")
    except dspy.LMError:
        pass
### END HIDDEN TESTS

# %% [markdown]
# Print tokens as they come. `contextlib.aclosing` closes the generator when the block ends, even
# after a `break`, in this same task:

# %% tags=["nbval-ignore-output"]
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

# %% [markdown]
# ## Summary
#
# * In a notebook, `await` at top level. Never `asyncio.run` inside a running loop, and no
#   `nest_asyncio` unless sync code forces it (it patches the whole process).
# * `await module.acall(...)` is the cheap way to run DSPy concurrently. A custom module needs its
#   own `aforward`. `asyncify` and thread pools also work, but each waiting call holds a thread,
#   and `asyncify` runs at most `async_max_workers` (8) at once — a process-wide limit.
# * Context variables such as `dspy.context` reach tasks and `asyncio.to_thread`, not threads you
#   start yourself or `run_in_executor`.
# * Bound the number of calls in flight with a semaphore, and their rate with a token bucket whose
#   refill is capped at its burst. Refuse limits that cannot work instead of hanging. Let DSPy retry
#   rate-limit errors (`num_retries`, `retry_after`), and keep each failure next to its question
#   (`return_exceptions=True`), so a batch never loses its good results.
# * Concurrency multiplies throughput against a remote provider (nearly N×). Against a
#   CPU-bound local model it buys almost nothing.
# * A timeout is a cancellation, and cancellation must win: never swallow or replace it.
# * `gather` keeps order; `as_completed` and async generators give answers as they finish;
#   `streamify` gives tokens. Stop a stream by cancelling the task that drives it.
#
# ## Check your work
#
# `ex2.check_all()` re-runs every self-check on what your notebook defines now: one row per task,
# core and going further apart, with the points at stake. ✅ everywhere in the core part means
# the hidden tests for Tasks 1–4 will pass.

# %% tags=["nbval-ignore-output"]
ex2.check_all()

# %% [markdown]
# ## How to submit
#
# 1. Save the notebook (**File → Save**, or Ctrl-S).
# 2. **Restart the kernel and run all cells** (**Kernel → Restart Kernel and Run All Cells…**). The
#    grader runs your notebook top to bottom in a fresh kernel exactly like this, so a cell that
#    only worked because of something you ran earlier will show up now. Run All stops at the first
#    unfinished graded cell: that is expected if you skipped an optional task — its self-check says
#    "not attempted", and the tests after it still run when the grader executes the notebook.
# 3. Click **Validate** in the notebook toolbar: it runs the visible tests and reports any that
#    fail.
# 4. Submit from the **Assignments** tab (nbgrader's assignment list) if your course uses it, or
#    upload the saved `.ipynb` file wherever your instructor asked.
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
# 4. A token bucket with `rate=10, burst=5`: how many requests can pass in the first second after
#    a long pause? In any 3 seconds?
# 5. What goes wrong if a token bucket's refill is not capped at `burst`?
# 6. Why must `acquire` wait with `await asyncio.sleep` and never with `time.sleep`?
# 7. After `asyncio.timeout` cancels a native `acall`, what (if anything) is still running? And
#    after it cancels an `asyncify` call?
# 8. What happens to a timeout if the code being cancelled raises another exception from a
#    `finally:` block?
# 9. Does `with dspy.context(lm=...)` reach a `threading.Thread` you start inside the block? How
#    would you make it?
# 10. (Going further) Why is the first chunk's arrival time — not the number of chunks — the
#     test of real streaming?
#
# ## Further research
#
# * Python's [asyncio task documentation](https://docs.python.org/3/library/asyncio-task.html):
#   `TaskGroup`, `timeout`, `as_completed`, and the section on cancellation ("`CancelledError`
#   should generally be propagated").
# * The token bucket and its twin, the leaky bucket, as used by API gateways; compare the limits
#   your LM provider documents (requests *and* tokens per minute) — a limiter for both needs two
#   buckets.
# * Structured concurrency: Nathaniel J. Smith's essay "Notes on structured concurrency, or: Go
#   statement considered harmful", and how `anyio` task groups (used by `dspy.streamify`) follow it.
# * DSPy's own pieces: `dspy.Parallel` and `Module.batch` (thread-based, with `max_errors` and
#   `timeout`), and how `dspy.asyncify`'s process-wide limiter is sized by `async_max_workers`.
# * Backpressure in a server: what should a web API do when requests arrive faster than the
#   provider allows — queue, shed (HTTP 429 to its own clients) or degrade?
