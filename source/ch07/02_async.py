# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 2 — Async DSPy: concurrency, rate limits, retries and streaming
#
# A call to a hosted language model spends almost all of its time **waiting**: the request
# travels, the provider queues it, the answer comes back. While one call waits, a program could
# start nine others. That is what `async` buys you — and everything that comes with it is what
# this exercise is about: a limit on how many calls run at once, a budget of requests per second,
# retries when the provider says "slow down", failures that stay contained, timeouts, answers
# handed out as soon as they are ready, and tokens printed as they are generated.
#
# You will measure every claim. The **simulated provider** (`wb.sim_lm`) behaves like a remote
# API: each call waits (latency plus jitter), can fail, and enforces a requests-per-second limit
# with HTTP-429-style errors. Its `.engine.stats` counts what it saw, including the largest
# number of calls it served at the same time (`max_in_flight`).
#
# | Task | What you write | Points |
# |---|---|---|
# | 1 | `aforward` for a custom module | 1 |
# | 2 | `run_bounded`: a semaphore-bounded runner that keeps every result | 3 |
# | 3 | `TokenBucket`: a requests-per-second limiter with a burst | 2 |
# | 4 | `ask_with_timeout`: a per-call timeout with a clear result | 1 |
# | 5 | `answers_as_completed`: an async generator of answers as they finish | 2 |
# | 6 | `stream_answer`: token streaming that can be stopped cleanly | 2 |

# %%
import dspy_workbook as wb

lm = wb.setup()

# %%
import asyncio
import contextlib
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
#    the one you chose for this block. `asyncio.to_thread` copies the context. See below.
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
print("run_in_executor sees dspy.context(lm=...):", in_executor)
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
# * `context` is a per-task override, safe inside concurrent code, and it is copied into
#   `asyncify`'s worker threads and `asyncio.to_thread`.

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
# * `asyncify` stops at 8. Raise its cap with `dspy.configure(async_max_workers=...)`, or for one
#   block with `with dspy.context(async_max_workers=...)`.
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
# long. The tests check that calls really overlap.

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
    result = await DraftThenPolish().acall(question="What is DSPy?")
calls = provider.engine.stats.calls
assert isinstance(result, dspy.Prediction), f"acall returned {type(result).__name__}"
assert calls == 2, f"expected a draft call and a polish call, saw {calls}"
### BEGIN HIDDEN TESTS
provider = wb.sim_lm(latency=0.05, cache=False)
with dspy.context(lm=provider):
    results = await asyncio.gather(
        *(DraftThenPolish().acall(question=q) for q in cc.distinct_questions(5, "t1")))
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
# Answer every question with `program.acall(question=...)`:
# * never more than `limit` calls in flight;
# * results in the **same order** as `questions` (not in finishing order);
# * a call that fails gives its exception object in its place, and the others are kept.
#
# A `limit` below 1 is a mistake by the caller: raise `ValueError` with a clear message.

# %% nbgrader={"solution": true, "grade_id": "run_bounded"}
async def run_bounded(program: dspy.Module, questions: Sequence[str], limit: int) -> list:
    """Answer with at most `limit` calls in flight; results in order, failures as exceptions."""
    ### BEGIN SOLUTION
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
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
    results = await run_bounded(qa, questions, 4)
assert len(results) == len(questions), f"{len(results)} results for {len(questions)} questions"
peak = provider.engine.stats.max_in_flight
assert peak <= 4, f"{peak} calls in flight, limit 4"
assert all(q in r.answer for q, r in zip(questions, results)), "results are not in question order"
### BEGIN HIDDEN TESTS
assert peak == 4, "the limit was never reached: calls did not overlap"
provider = wb.sim_lm(latency=0.02, cache=False)
with dspy.context(lm=provider):
    results = await run_bounded(qa, questions[:5], 1)
assert provider.engine.stats.max_in_flight == 1
assert [q in r.answer for q, r in zip(questions, results)] == [True] * 5
mixed = ["ok 0", "FAIL 1", "ok 2", "FAIL 3", "ok 4"]
with dspy.context(lm=wb.sim_lm(latency=0.01, cache=False)):
    results = await run_bounded(cc.FlakyQA(), mixed, 2)
assert [isinstance(r, Exception) for r in results] == [False, True, False, True, False]
assert all(q in r.answer for q, r in zip(mixed, results) if not isinstance(r, Exception))
assert await run_bounded(qa, [], 3) == []
try:
    await run_bounded(qa, questions, 0)
    raise AssertionError("limit=0 was accepted")
except ValueError:
    pass
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Throughput, measured and charted
#
# Now you can measure what concurrency buys. Thirty different questions (different, so that DSPy's
# cache cannot answer any of them) go to the simulated provider:
# * sequentially;
# * through your `run_bounded` at limits 1, 2, 5, 10 and 20.
#
# `p50`/`p95` is the time *one call* took, median and 95th percentile.

# %% tags=["nbval-ignore-output"]
N = 30
rows = [cc.measure_sequential(qa, cc.distinct_questions(N, "seq"), lm=remote_lm())]
for limit in (1, 2, 5, 10, 20):
    rows.append(await cc.measure_concurrent(run_bounded, qa, cc.distinct_questions(N, f"c{limit}"),
                                            limit, lm=remote_lm()))
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
# small: the local model takes about a second per call.

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
print(f"{answered}/{len(results)} answered in {seconds:.1f} s; "
      f"the provider refused {limited.engine.stats.rate_limited} calls, which DSPy retried")

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
# second. Each request takes one token and waits when the bucket is empty. The result:
# * in any window of `T` seconds, at most `rate × T + burst` requests pass;
# * after a pause, up to `burst` requests can go at once.
#
# Write `acquire`:
# 1. refill by `(now − updated) × rate`, capped at `burst`;
# 2. if a token is available, take it and return;
# 3. otherwise `await asyncio.sleep(...)` until one will be, then try again.
#
# Measure time with `time.monotonic()`. Hold `self.lock` while you read and update the bucket, so
# two tasks cannot both spend the last token. Never `time.sleep` here: it would freeze the loop.

# %% nbgrader={"solution": true, "grade_id": "token_bucket"}
class TokenBucket:
    """Let `rate` acquisitions per second through on average, and up to `burst` at once."""

    def __init__(self, rate: float, burst: int = 1) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"need rate > 0 and burst >= 1, got rate={rate}, burst={burst}")
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
assert cc.max_per_window(passed_at, 0.5) <= 20 * 0.5 + 4
bucket = TokenBucket(rate=50, burst=1)
passed_at = []
async with asyncio.timeout(15):
    await asyncio.gather(*(take() for _ in range(60)))
assert cc.max_per_window(passed_at, 1.0) <= 51
assert cc.max_per_window(passed_at, 0.2) <= 11
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
print(f"{sum(not isinstance(r, Exception) for r in results)}/20 answered in {seconds:.1f} s; "
      f"refused by the provider: {stats.rate_limited}; "
      f"most requests in any 1 s window: {cc.max_per_window(stats.started_at, 1.0)} (limit 10)")

# %% [markdown]
# ## 6. Timeouts per call
#
# A call can hang: a stalled connection, an overloaded server. `asyncio.timeout(seconds)` (Python
# 3.11+; `asyncio.wait_for` on older versions) cancels the awaited call when time runs out.
#
# How clean the cancellation is depends on how you run the call:
# * **Native `acall`:** cancels cleanly. The request is abandoned, and nothing keeps running.
# * **`asyncify` or a thread:** the thread cannot be stopped. Your `await` returns, but the call
#   runs on in the background to the end — and a real provider still bills for it.
#
# ### Task 4 — `ask_with_timeout` (1 point)
#
# Return the prediction if it arrives within `seconds`. Otherwise **return** (don't raise) a
# `TimeoutError` whose message names the question and the limit. Then it can sit in a results
# list next to the answers that did arrive, like the exceptions of Task 2.

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
assert slow.engine.stats.in_flight == 0, "the timed-out call is still running"
with dspy.context(lm=wb.sim_lm(latency=0.01, cache=False)):
    fast = await ask_with_timeout(qa, "Quick one?", 2.0)
assert isinstance(fast, dspy.Prediction) and "Quick one?" in fast.answer
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
    outcomes = await asyncio.gather(*(ask_with_timeout(program, q, 0.5)
                                      for q in ["First?", "Second (stuck)?", "Third?"]))
for outcome in outcomes:
    print(f"{type(outcome).__name__:>11}: {getattr(outcome, 'answer', outcome)}")

# %% [markdown]
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

    arrival = [await next_done for next_done in
               asyncio.as_completed([tagged(i, q) for i, q in enumerate(order_questions)])]
    print("as_completed: ", [i for i, _ in arrival])

# %% [markdown]
# ### Task 5 — `answers_as_completed` (2 points)
#
# Write an **async generator** (an `async def` containing `yield`). It yields `(index, result)` for
# each question as soon as that question's call finishes:
# * at most `limit` calls in flight;
# * a failed call yields its exception as the result;
# * if the consumer stops early (`break`, then `aclose()`), cancel the calls that have not
#   finished. Put the cancellation in a `finally:` block.
#
# Hint: start one task per question with `asyncio.create_task`, each holding a semaphore permit
# while it runs, and iterate over `asyncio.as_completed(tasks)`.
#
# Until your function contains `yield`, it is an ordinary coroutine, and `async for` over it fails
# with a `TypeError` ("requires an object with `__aiter__`"). That applies to Task 6 as well.

# %% nbgrader={"solution": true, "grade_id": "as_completed"}
async def answers_as_completed(program: dspy.Module, questions: Sequence[str],
                               limit: int) -> AsyncIterator[tuple[int, object]]:
    """Yield `(index, prediction or exception)` for each question as soon as its call finishes."""
    ### BEGIN SOLUTION
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
# GatedQA holds questions starting with "slow" until .release(): the fast answers must come first.
gated = cc.GatedQA()
gated_questions = ["slow 0", "fast 1", "fast 2", "slow 3"]
seen: list[int] = []
with dspy.context(lm=wb.sim_lm(latency=0.01, cache=False)):
    async with asyncio.timeout(10):
        async for index, result in answers_as_completed(gated, gated_questions, 3):
            seen.append(index)
            assert gated_questions[index] in result.answer
            if len(seen) == 2:
                gated.release()
assert sorted(seen[:2]) == [1, 2], f"the fast answers did not come first: {seen}"
assert sorted(seen) == [0, 1, 2, 3]
### BEGIN HIDDEN TESTS
assert gated.in_flight.peak <= 3
with dspy.context(lm=wb.sim_lm(latency=0.01, cache=False)):
    got = [pair async for pair in answers_as_completed(cc.FlakyQA(), ["ok 0", "FAIL 1", "ok 2"], 2)]
assert sorted(i for i, _ in got) == [0, 1, 2]
failed = [isinstance(r, Exception) for _, r in sorted(got, key=lambda p: p[0])]
assert failed == [False, True, False]
gated = cc.GatedQA()
with dspy.context(lm=wb.sim_lm(latency=0.01, cache=False)):
    stream = answers_as_completed(gated, ["fast 0", "slow 1", "slow 2"], 3)
    async with asyncio.timeout(10):
        first = await anext(stream)
        await stream.aclose()
    await asyncio.sleep(0.05)
assert first[0] == 0 and gated.in_flight.current == 0, "closing the generator left calls running"
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
# entered it. So:
# * drive the stream from a task you own;
# * pass chunks through an `asyncio.Queue`;
# * in `finally:`, cancel that task and await it.
#
# ### Task 6 — `stream_answer` (2 points)
#
# An async generator that yields the **text chunks** of the `answer` field as they arrive.
# * If the answer comes whole (a cache hit, or an engine that does not stream), yield it once as
#   a single chunk.
# * An error in the call is raised to the consumer.
# * Closing the generator early leaves nothing running: no stray task, no call in flight, no
#   "cancel scope" error.
#
# One way to build it:
# 1. Make the streaming function: `dspy.streamify(program, stream_listeners=[a new listener],
#    is_async_program=True)`.
# 2. Write an inner `async def pump()` that iterates the stream.
#    * Put each `StreamResponse`'s `.chunk` into an `asyncio.Queue`.
#    * If nothing streamed, put the `Prediction`'s `.answer` instead.
#    * Finish with a sentinel object — or with the exception, if one is raised.
# 3. Start it with `asyncio.create_task(pump())`. In a `try:` block, take items from the queue and
#    `yield` them until the sentinel; `raise` an exception when you get one.
# 4. In `finally:`, cancel the task and await it, suppressing `asyncio.CancelledError`.

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
#   and `asyncify` runs at most `async_max_workers` (8) at once.
# * Bound the number of calls in flight with a semaphore, and their rate with a token bucket.
#   Let DSPy retry rate-limit errors (`num_retries`, `retry_after`), and keep each failure next to
#   its question (`return_exceptions=True`), so a batch never loses its good results.
# * Concurrency multiplies throughput against a remote provider (nearly N×). Against a
#   CPU-bound local model it buys almost nothing.
# * `gather` keeps order; `as_completed` and async generators give answers as they finish;
#   `streamify` gives tokens. Stop a stream by cancelling the task that drives it.
