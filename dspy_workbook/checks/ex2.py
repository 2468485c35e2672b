"""Self-checks for Exercise 2 (async DSPy): concurrency limits, rate limits, timeouts, streaming.

The student's functions are coroutines, but a check is an ordinary call from a notebook cell whose
event loop is already running. So each step runs the student's code on a fresh event loop in a
helper thread (`dspy_workbook.threads.run_async`, which keeps the caller's `dspy.context`), under
a short time bound of its own: code that hangs costs a few seconds here, and the grader's cell
timeout only once. The whole check is bounded again by the `Exercise` registry.

Each check tests the behaviour its task's prose calls graded, with programs whose questions say
nothing about the expected outcome, and measures with this package's own helpers (bound at import,
so a notebook that reassigns `cc.max_per_window` cannot change what a check measures).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import dspy

from ..concurrency import FlakyQA, Flood, ScriptedQA, distinct_questions, flood, max_per_window
from ..lm import sim_lm
from ..threads import BoundExceeded, run_async
from ._core import NotAttempted, expect
from ._exercise import Exercise

__all__ = [
    "check_aforward",
    "check_all",
    "check_as_completed",
    "check_run_bounded",
    "check_stream",
    "check_timeout",
    "check_token_bucket",
    "ex",
    "hint",
]

T = TypeVar("T")
_QA_SIGNATURE = "question -> answer"
_BAD_LIMITS = (0, 2.5)

ex = Exercise("Exercise 2 · async DSPy")


def _run(make: Callable[[], Awaitable[T]], seconds: float, too_slow: str) -> T:
    """Run `make()` on a fresh event loop in a helper thread; fail with `too_slow` after `seconds`.

    A `TimeoutError` raised by the student's code itself is reported as such, not mistaken for
    the time bound running out (`BoundExceeded`).
    """
    try:
        return run_async(make, timeout=seconds)
    except BoundExceeded:
        raise AssertionError(f"your code did not finish in {seconds:g} s: {too_slow}") from None
    except TimeoutError as exc:
        raise AssertionError(f"your code raised `TimeoutError`: {exc}") from None


def _need_coroutine_function(fn: Any, name: str) -> None:
    if fn is None or not callable(fn):
        raise NotAttempted(f"pass your function itself: `ex2.check_…({name})`.")
    if not inspect.iscoroutinefunction(fn) and not inspect.isasyncgenfunction(fn):
        raise AssertionError(
            f"`{name}` is not an `async def` function: it must be awaited by the caller."
        )


def _need_async_generator(fn: Any, name: str, *args: Any) -> None:
    """Fail unless `fn` is an async generator function; an untouched starter is not attempted."""
    if fn is None or not callable(fn):
        raise NotAttempted(f"pass your function itself: `ex2.check_…({name})`.")
    if inspect.isasyncgenfunction(fn):
        return
    if inspect.iscoroutinefunction(fn):  # the starter raises NotImplementedError: not attempted

        async def call() -> None:
            with dspy.context(lm=sim_lm(latency=0.001, cache=False)):
                await fn(*args)

        _run(call, 10, f"`{name}` never returned.")
    raise AssertionError(f"`{name}` must be an async generator: an `async def` that uses `yield`.")


def _random_questions(n: int) -> list[str]:
    """Questions whose text says nothing about how long they take or how they end."""
    return [f"{secrets.token_hex(4)}?" for _ in range(n)]


def _shuffled_delays(n: int, step: float = 0.05) -> list[float]:
    """`step, 2·step, …` in an order that is neither ascending nor descending (n >= 3)."""
    delays = [step * (i + 1) for i in range(n)]
    while delays in (sorted(delays), sorted(delays, reverse=True)):
        random.shuffle(delays)
    return delays


# -- Task 1 ----------------------------------------------------------------------------------


@ex.task(
    "aforward",
    "Task 1 · aforward",
    points=1,
    needs=("DraftThenPolish",),
    seconds=45,
    hints=(
        "`aforward` is `forward` with `await`: the same two steps, the draft's answer feeding "
        "the polish step.",
        "Every DSPy module has an awaitable twin of calling it: `await module.acall(**inputs)`. "
        "Calling `self.draft(...)` or `self.forward(...)` inside `aforward` blocks the event loop.",
        "`draft = (await self.draft.acall(question=question)).answer`, then return the awaited "
        "`acall` of `self.polish` with `question` and `draft`.",
    ),
)
def check_aforward(module_class: type) -> str:
    if not (isinstance(module_class, type) and issubclass(module_class, dspy.Module)):
        raise NotAttempted("pass the class itself: `ex2.check_aforward(DraftThenPolish)`.")
    expect(
        "aforward" in vars(module_class), "`DraftThenPolish` has no `aforward` method of its own."
    )
    expect(
        inspect.iscoroutinefunction(module_class.aforward),
        "`aforward` must be an `async def` method.",
    )

    async def one() -> tuple[Any, int]:
        provider = sim_lm(latency=0.01, cache=False)
        with dspy.context(lm=provider):
            result = await module_class().acall(question="What is a coroutine?")
        return result, provider.engine.stats.calls

    result, calls = _run(one, 15, "one `acall` never returned.")
    expect(
        isinstance(result, dspy.Prediction),
        f"`acall` returned {type(result).__name__}, not a `dspy.Prediction`.",
    )
    expect(
        calls == 2,
        f"one `acall` made {calls} LM call(s); the module has two steps (draft, polish).",
    )

    async def four() -> int:
        provider = sim_lm(latency=0.05, cache=False)
        with dspy.context(lm=provider):
            await asyncio.gather(
                *(module_class().acall(question=q) for q in distinct_questions(4, "chk1"))
            )
        return provider.engine.stats.max_in_flight

    overlap = _run(four, 15, "four concurrent `acall`s never finished.")
    expect(
        overlap == 4,
        f"four concurrent `acall`s overlapped only {overlap} at a time: `aforward` blocks the "
        "event loop — await `acall` on each step instead of calling the sync version.",
    )
    return "two awaited steps, and four calls ran at the same time."


# -- Task 2 ----------------------------------------------------------------------------------


@ex.task(
    "run_bounded",
    "Task 2 · run_bounded",
    points=3,
    needs=("run_bounded",),
    seconds=60,
    hints=(
        "Three parts: check `limit` first, make one `asyncio.Semaphore(limit)`, and wrap each "
        "call in a small `async def` that holds a permit (`async with semaphore:`) while it "
        "awaits `program.acall(question=...)`.",
        "`asyncio.gather(*coroutines)` keeps the order you passed them in, and "
        "`return_exceptions=True` puts each failure in its place instead of raising it. "
        "An empty list of questions gives `gather()` nothing to do: it returns `[]`.",
        "Refuse bad limits before anything runs: `if not isinstance(limit, int) or limit < 1: "
        "raise ValueError(...)` — a float slips through `limit < 1` alone.",
    ),
)
def check_run_bounded(run_bounded: Callable[..., Awaitable[list]]) -> str:
    _need_coroutine_function(run_bounded, "run_bounded")
    questions = distinct_questions(10, "chk2")

    async def bounded() -> tuple[list, int]:
        provider = sim_lm(latency=0.02, cache=False)
        with dspy.context(lm=provider):
            results = await run_bounded(dspy.Predict(_QA_SIGNATURE), questions, 3)
        return results, provider.engine.stats.max_in_flight

    results, peak = _run(bounded, 15, "10 questions with `limit=3` never finished.")
    expect(
        isinstance(results, list), f"`run_bounded` returned {type(results).__name__}, not a list."
    )
    expect(
        len(results) == len(questions), f"{len(results)} results for {len(questions)} questions."
    )
    expect(peak <= 3, f"with `limit=3`, {peak} calls were in flight at once.")
    expect(
        peak == 3, f"with `limit=3`, at most {peak} call(s) ran at once: the calls do not overlap."
    )
    bad = next(
        (
            i
            for i, (q, r) in enumerate(zip(questions, results, strict=True))
            if q not in getattr(r, "answer", "")
        ),
        None,
    )
    expect(
        bad is None, f"result {bad} is not the answer to question {bad}: keep the questions' order."
    )

    mixed = ["ok 0", "FAIL 1", "ok 2"]

    async def flaky() -> list:
        with dspy.context(lm=sim_lm(latency=0.01, cache=False)):
            return await run_bounded(FlakyQA(), mixed, 2)

    try:
        results = _run(flaky, 15, "3 questions, one failing, never finished.")
    except dspy.LMError as exc:
        raise AssertionError(
            f"one failing question made the whole batch raise {type(exc).__name__}: "
            "keep each failure in its place (`return_exceptions=True`)."
        ) from None
    expect(
        [isinstance(r, Exception) for r in results] == [False, True, False],
        f"for questions {mixed} you returned {[type(r).__name__ for r in results]}.",
    )

    async def empty() -> list:
        return await run_bounded(dspy.Predict(_QA_SIGNATURE), [], 3)

    nothing = _run(empty, 5, "no questions, and yet it never returned.")
    expect(nothing == [], f"no questions gave {nothing!r}, not an empty list.")

    for limit in _BAD_LIMITS:

        async def refused(limit: Any = limit) -> tuple[str, int]:
            provider = sim_lm(latency=0.01, cache=False)
            with dspy.context(lm=provider):
                try:
                    async with asyncio.timeout(3):
                        await run_bounded(dspy.Predict(_QA_SIGNATURE), questions, limit)
                except ValueError:
                    return "refused", provider.engine.stats.calls
                except TimeoutError:
                    return "hung", provider.engine.stats.calls
            stats = provider.engine.stats
            return f"ran ({stats.max_in_flight} at once)", stats.calls

        what, calls = _run(refused, 10, f"`limit={limit!r}` never returned.")
        expect(
            what != "hung",
            f"with `limit={limit!r}` your function waited 3 s without an answer or an error: "
            "refuse a limit below 1 with `ValueError`.",
        )
        expect(
            what == "refused",
            f"`limit={limit!r}` was accepted and the calls {what}: raise `ValueError` "
            "unless `limit` is an `int` of at least 1.",
        )
        expect(calls == 0, f"`limit={limit!r}` was refused only after {calls} call(s) were made.")
    return (
        "at most 3 in flight, results in order, a failure kept in its place, "
        "and limits like 0 or 2.5 refused."
    )


# -- Task 3 ----------------------------------------------------------------------------------


@ex.task(
    "token_bucket",
    "Task 3 · TokenBucket",
    points=2,
    needs=("TokenBucket",),
    seconds=45,
    hints=(
        "Tokens are not added by a timer: work them out when `acquire` runs. Since `self.updated`, "
        "`(now - self.updated) * self.rate` tokens have dripped in — but the bucket never holds "
        "more than `self.burst`.",
        "Inside `async with self.lock:` loop: refill (capped with `min`), move `self.updated` to "
        "now, and if `self.tokens >= 1` take one and return. Otherwise wait, then loop again.",
        "Wait exactly until the next token is due: `await asyncio.sleep((1 - self.tokens) / "
        "self.rate)`. `time.sleep` would freeze every other task; a fixed sleep never bursts.",
    ),
)
def check_token_bucket(bucket_class: type) -> str:
    if not isinstance(bucket_class, type):
        raise NotAttempted("pass the class itself: `ex2.check_token_bucket(TokenBucket)`.")
    rate, burst, n = 20.0, 3, 20

    async def run() -> list[Flood]:
        bucket = bucket_class(rate=rate, burst=burst)
        first = await flood(bucket, n)
        await asyncio.sleep(0.8)  # idle: the bucket may refill to `burst`, never beyond
        return [first, await flood(bucket, n)]

    rounds = _run(
        run,
        20,
        f"{2 * n} `acquire()` calls at {rate:g}/s never all returned: "
        "does `acquire` return once a token is back?",
    )
    everything = [t for r in rounds for t in r.passed]
    for window in (0.25, 1.0):
        most, budget = max_per_window(everything, window), rate * window + burst
        expect(
            most <= budget + 1,
            f"{most} acquisitions passed within {window:g} s; the budget is rate × {window:g} s "
            f"+ burst = {budget:g}. Is the refill capped at `burst` (idle time must not be "
            "saved up)?",
        )
    for label, r in zip(("at first", "after idling"), rounds, strict=True):
        start, times, worst_lag, stalled = r.start, r.passed, r.longest_stall, r.total_stall
        expect(len(times) == n, f"{len(times)} of {n} `acquire()` calls returned {label}.")
        expect(
            worst_lag < 0.5 and stalled < 0.5 * (max(times) - start + 0.01),
            f"while requests waited, the event loop was stuck for up to {worst_lag:.2f} s "
            f"({label}): wait with `await asyncio.sleep`, never `time.sleep`.",
        )
        quick = sorted(times)[burst - 1] - start
        expect(
            quick < 0.1,
            f"{label}, the first {burst} requests took {quick:.2f} s: a full bucket should let "
            f"`burst` requests through at once.",
        )
        took, ideal = max(times) - start, (n - burst) / rate
        expect(
            took < ideal * 1.3 + 0.2,
            f"{label}, {n} requests took {took:.2f} s; at {rate:g}/s with a burst of {burst} "
            f"they need about {ideal:.2f} s: the rate is not reached.",
        )
    return (
        f"bursts of {burst}, {rate:g}/s sustained, the budget held in every window (also "
        "after idling), and the event loop kept running."
    )


# -- Task 4 ----------------------------------------------------------------------------------


@ex.task(
    "timeout",
    "Task 4 · ask_with_timeout",
    points=1,
    needs=("ask_with_timeout",),
    seconds=30,
    hints=(
        "`async with asyncio.timeout(seconds):` around the awaited call cancels it when time "
        "runs out, and raises `TimeoutError` at the end of the block.",
        "Catch that `TimeoutError` outside the `async with` block and `return` a new "
        "`TimeoutError(...)` instead of raising it.",
        'The message names both: `f"no answer to {question!r} within {seconds:g} s"`.',
    ),
)
def check_timeout(ask_with_timeout: Callable[..., Awaitable[Any]]) -> str:
    _need_coroutine_function(ask_with_timeout, "ask_with_timeout")
    question = "Is anybody there?"

    async def slow() -> tuple[Any, int]:
        provider = sim_lm(latency=5.0, cache=False)
        with dspy.context(lm=provider):
            try:
                outcome = await ask_with_timeout(dspy.Predict(_QA_SIGNATURE), question, 0.1)
            except TimeoutError:
                raise AssertionError(
                    "the timeout was raised; return the `TimeoutError` instead."
                ) from None
        await asyncio.sleep(0.01)
        return outcome, provider.engine.stats.in_flight

    outcome, in_flight = _run(slow, 4, "a 0.1 s timeout on a 5 s call did not end it.")
    expect(
        isinstance(outcome, TimeoutError),
        f"the slow call returned {type(outcome).__name__}, not a TimeoutError.",
    )
    expect(
        question in str(outcome),
        f"the TimeoutError's message does not name the question: {str(outcome)!r}.",
    )
    expect(in_flight == 0, "the timed-out call is still running after `ask_with_timeout` returned.")

    async def fast() -> Any:
        with dspy.context(lm=sim_lm(latency=0.01, cache=False)):
            return await ask_with_timeout(dspy.Predict(_QA_SIGNATURE), "Quick?", 2.0)

    outcome = _run(fast, 10, "a fast call with a 2 s timeout never returned.")
    expect(
        isinstance(outcome, dspy.Prediction),
        f"a fast call returned {type(outcome).__name__}, not its Prediction.",
    )

    async def failing_slowly() -> tuple[Any, float, int]:
        provider = sim_lm(latency=3.0, error_rate=1.0, cache=False)
        started = time.perf_counter()
        with dspy.context(lm=provider):
            try:
                outcome = await ask_with_timeout(dspy.Predict(_QA_SIGNATURE), "Fails late?", 0.1)
            except dspy.LMError as exc:
                outcome = exc
        return outcome, time.perf_counter() - started, provider.engine.stats.calls

    outcome, took, calls = _run(failing_slowly, 10, "a 0.1 s timeout on a failing call.")
    expect(
        isinstance(outcome, TimeoutError) and took < 1.5 and calls == 1,
        f"a 0.1 s timeout on a slow call that would fail gave {type(outcome).__name__} after "
        f"{took:.1f} s and {calls} call(s): the cancellation must win — don't catch "
        "`CancelledError` or retry inside `ask_with_timeout`.",
    )
    return "a slow call gives a clear TimeoutError and stops, a fast one gives its answer."


# -- Task 5 (going further) ------------------------------------------------------------------


@ex.task(
    "as_completed",
    "Task 5 · answers_as_completed (extra credit)",
    points=2,
    core=False,
    needs=("answers_as_completed",),
    seconds=45,
    hints=(
        "Start every call at once as its own task (`asyncio.create_task`), each holding a "
        "semaphore permit while it runs, then hand out results in the order the tasks finish.",
        "`for next_done in asyncio.as_completed(tasks): yield await next_done`. Let each task "
        "return `(index, result)` and catch its own exception, so a failure is a result too.",
        "Wrap the loop in `try: … finally:` and in `finally` call `task.cancel()` on every task, "
        "then `await asyncio.gather(*tasks, return_exceptions=True)`. Check `limit` first, as "
        "in Task 2.",
    ),
)
def check_as_completed(answers_as_completed: Callable[..., Any]) -> str:
    _need_async_generator(
        answers_as_completed, "answers_as_completed", dspy.Predict(_QA_SIGNATURE), ["q"], 1
    )
    questions = _random_questions(5)
    delays = dict(zip(questions, _shuffled_delays(5), strict=True))

    async def run(limit: int) -> tuple[list[tuple[int, Any]], list[int], ScriptedQA]:
        scripted, got, running = ScriptedQA(delays), [], []
        async for pair in answers_as_completed(scripted, questions, limit):
            got.append(pair)
            running.append(scripted.in_flight.current)
        return got, running, scripted

    got, running, scripted = _run(lambda: run(5), 10, "5 quick questions never all arrived.")
    seen = [index for index, _ in got]
    expect(sorted(seen) == list(range(5)), f"yielded indices {seen}, expected each of 0–4 once.")
    wrong = next((i for i, r in got if questions[i] not in getattr(r, "answer", "")), None)
    expect(wrong is None, f"index {wrong} came with an answer to another question.")
    expect(
        scripted.in_flight.peak == 5,
        f"with `limit=5`, only {scripted.in_flight.peak} call(s) ran at once: start them all "
        "before waiting for any.",
    )
    finished = [questions.index(q) for q in scripted.finished]
    expect(
        seen == finished,
        f"you yielded the answers in the order {seen}, but the calls finished in the order "
        f"{finished}: yield each one as it finishes.",
    )
    expect(
        running[0] > 0,
        "the first answer came only after every call had finished: yield as soon as one is "
        "done, like `asyncio.as_completed`.",
    )

    got, _, scripted = _run(lambda: run(2), 10, "5 questions with `limit=2` never all arrived.")
    expect(
        scripted.in_flight.peak == 2,
        f"with `limit=2`, {scripted.in_flight.peak} call(s) ran at once.",
    )

    async def flaky() -> list[tuple[int, Any]]:
        with dspy.context(lm=sim_lm(latency=0.01, cache=False)):
            return [p async for p in answers_as_completed(FlakyQA(), ["ok 0", "FAIL 1", "ok 2"], 2)]

    try:
        got = _run(flaky, 10, "3 questions, one failing, never all arrived.")
    except dspy.LMError as exc:
        raise AssertionError(
            f"one failing question ended the stream with {type(exc).__name__}: "
            "yield the exception as that question's result."
        ) from None
    failed = [isinstance(r, Exception) for _, r in sorted(got, key=lambda p: p[0])]
    expect(failed == [False, True, False], f"for one failing question of three you yielded {got}.")

    async def stop_early() -> int:
        scripted = ScriptedQA({q: (0.02 if i == 0 else 5.0) for i, q in enumerate(questions)})
        stream = answers_as_completed(scripted, questions, 5)
        await anext(stream)
        await stream.aclose()
        await asyncio.sleep(0.05)
        return scripted.in_flight.current

    left = _run(stop_early, 5, "closing the generator after the first answer did not return.")
    expect(
        left == 0,
        f"after `aclose()`, {left} call(s) were still running: cancel them in `finally:`.",
    )

    async def refused() -> str:
        try:
            async with asyncio.timeout(3):
                await anext(answers_as_completed(ScriptedQA(delays), questions, 0))
        except ValueError:
            return "refused"
        except TimeoutError:
            return "hung"
        return "accepted"

    what = _run(refused, 10, "`limit=0` never returned.")
    expect(what == "refused", f"`limit=0` was {what}: raise `ValueError` for a limit below 1.")
    return "answers arrive in finishing order while others run; closing early cancels the rest."


# -- Task 6 (going further) ------------------------------------------------------------------


@ex.task(
    "stream_answer",
    "Task 6 · stream_answer (extra credit)",
    points=2,
    core=False,
    needs=("stream_answer",),
    seconds=60,
    hints=(
        "`dspy.streamify(program, stream_listeners=[dspy.streaming.StreamListener("
        'signature_field_name="answer")], is_async_program=True)` gives a function; calling it '
        "with `question=...` gives an async generator of `StreamResponse` chunks, then the "
        "`Prediction`. Use a new listener per call.",
        "Don't `yield` straight from streamify's generator (closing it early breaks its task "
        "group). Iterate it in an inner `async def pump()` started with `asyncio.create_task`, "
        "which puts each `.chunk` into an `asyncio.Queue`; your generator takes from the queue.",
        "`pump` ends by putting a sentinel object (or the exception it caught) into the queue; "
        "if no chunk streamed, it puts the `Prediction`'s `.answer` first. Your generator yields "
        "until the sentinel, raises an exception it receives, and in `finally:` cancels the task "
        "and awaits it inside `contextlib.suppress(asyncio.CancelledError)`.",
    ),
)
def check_stream(stream_answer: Callable[..., Any]) -> str:
    _need_async_generator(stream_answer, "stream_answer", dspy.Predict(_QA_SIGNATURE), "q")
    question = "Please stream this"

    async def full() -> tuple[list, int | None]:
        provider = sim_lm(latency=0.4, cache=False)
        chunks, in_flight_at_first = [], None
        with dspy.context(lm=provider):
            async for chunk in stream_answer(dspy.Predict(_QA_SIGNATURE), question):
                if in_flight_at_first is None:
                    in_flight_at_first = provider.engine.stats.in_flight
                chunks.append(chunk)
        return chunks, in_flight_at_first

    chunks, in_flight_at_first = _run(full, 10, "the stream never ended.")
    kinds = sorted({type(c).__name__ for c in chunks})
    expect(
        all(isinstance(c, str) for c in chunks),
        f"yield text (`StreamResponse.chunk`), not {kinds}.",
    )
    expect(len(chunks) > 1, f"the answer came in {len(chunks)} chunk(s): it was not streamed.")
    expect(question in "".join(chunks), f"the chunks do not spell the answer: {''.join(chunks)!r}.")
    expect(
        in_flight_at_first == 1,
        "your first chunk arrived only after the LM had finished the whole answer: yield each "
        "chunk as it arrives, not the finished answer cut into pieces.",
    )

    async def stop_early() -> tuple[int, list]:
        errors: list = []
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(
            lambda _loop, ctx: errors.append(ctx.get("exception") or ctx.get("message"))
        )
        provider = sim_lm(latency=0.4, cache=False)
        with dspy.context(lm=provider):
            stream = stream_answer(dspy.Predict(_QA_SIGNATURE), "Stop me early")
            await anext(stream)
            await stream.aclose()
            del stream
            try:
                gc.collect()  # an abandoned generator is finalized now, not at some later cell
                await asyncio.sleep(0.1)
            except asyncio.CancelledError as exc:  # a cancel scope left open cancels this task
                errors.append(exc)
        return provider.engine.stats.in_flight, errors

    in_flight, errors = _run(stop_early, 10, "closing the stream early never finished.")
    expect(
        not errors,
        f"closing the stream early left an error behind: {errors[0] if errors else ''!r}.",
    )
    expect(in_flight == 0, "after `aclose()`, the LM call was still running.")

    async def failing() -> str:
        with dspy.context(lm=sim_lm(latency=0.01, error_rate=1.0, num_retries=0, cache=False)):
            try:
                _ = [c async for c in stream_answer(dspy.Predict(_QA_SIGNATURE), "This fails")]
            except dspy.LMError:
                return "raised"
        return "swallowed"

    what = _run(failing, 10, "a failing call's stream never ended.")
    expect(
        what == "raised",
        "the LM call failed, but your stream ended quietly: raise the error to the consumer.",
    )
    return "chunks arrive while the LM still generates; errors reach you; stopping early is clean."


hint, check_all = ex.hint, ex.check_all
