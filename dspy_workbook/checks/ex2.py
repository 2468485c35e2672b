"""Self-checks for Exercise 2 (async DSPy): concurrency limits, rate limits, timeouts, streaming.

The student's functions are coroutines, but a check is an ordinary call made from a notebook cell
whose event loop is already running. So each check runs the student's code on a fresh event loop
in a helper thread (with the caller's `dspy.context` copied in) and waits for it, bounded in time.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import dspy

from ..concurrency import FlakyQA, GatedQA, distinct_questions, max_per_window
from ..lm._sim import sim_lm
from ._core import NotAttempted, check, expect

__all__ = [
    "check_aforward",
    "check_as_completed",
    "check_run_bounded",
    "check_stream",
    "check_timeout",
    "check_token_bucket",
]

T = TypeVar("T")
_QA_SIGNATURE = "question -> answer"


def _run(make: Callable[[], Awaitable[T]], seconds: float, too_slow: str) -> T:
    """Run `make()` on a new event loop in a helper thread; fail with `too_slow` after `seconds`."""
    context = contextvars.copy_context()
    box: dict[str, Any] = {}

    async def bounded() -> T:
        try:
            return await asyncio.wait_for(make(), seconds)
        except TimeoutError:
            raise AssertionError(too_slow) from None

    def target() -> None:
        try:
            box["value"] = context.run(asyncio.run, bounded())
        except BaseException as exc:  # handed back to the calling thread
            box["error"] = exc

    worker = threading.Thread(target=target, name="ex2-check", daemon=True)
    worker.start()
    worker.join(seconds + 10)
    if worker.is_alive():
        raise AssertionError(too_slow)
    if "error" in box:
        raise box["error"]
    return box["value"]


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
    if inspect.iscoroutinefunction(
        fn
    ):  # the starter: raises NotImplementedError, reported as not attempted

        async def call() -> None:
            with dspy.context(lm=sim_lm(latency=0.001, cache=False)):
                await fn(*args)

        _run(call, 10, f"`{name}` did not return within 10 s.")
    raise AssertionError(f"`{name}` must be an async generator: an `async def` that uses `yield`.")


@check("Task 1 · aforward")
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

    result, calls = _run(one, 20, "`acall` did not finish within 20 s.")
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

    overlap = _run(four, 20, "four concurrent `acall`s did not finish within 20 s.")
    expect(
        overlap == 4,
        f"four concurrent `acall`s overlapped only {overlap} at a time: `aforward` blocks "
        "the event loop — await `acall` on each step instead of calling the sync version.",
    )
    return "two awaited steps, and four calls ran at the same time."


@check("Task 2 · run_bounded")
def check_run_bounded(run_bounded: Callable[..., Awaitable[list]]) -> str:
    _need_coroutine_function(run_bounded, "run_bounded")
    questions = distinct_questions(10, "chk2")

    async def bounded() -> tuple[list, int]:
        provider = sim_lm(latency=0.02, cache=False)
        with dspy.context(lm=provider):
            results = await run_bounded(dspy.Predict(_QA_SIGNATURE), questions, 3)
        return results, provider.engine.stats.max_in_flight

    results, peak = _run(bounded, 30, "`run_bounded` did not finish 10 questions within 30 s.")
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
            for i, (q, r) in enumerate(zip(questions, results))
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
        results = _run(flaky, 30, "`run_bounded` did not finish 3 questions within 30 s.")
    except dspy.LMError as exc:
        raise AssertionError(
            f"one failing question made the whole batch raise {type(exc).__name__}: "
            "keep each failure in its place (`return_exceptions=True`)."
        ) from None
    expect(
        [isinstance(r, Exception) for r in results] == [False, True, False],
        f"for questions {mixed} you returned {[type(r).__name__ for r in results]}.",
    )
    return "at most 3 in flight, results in order, and a failure kept in its place."


@check("Task 3 · TokenBucket")
def check_token_bucket(bucket_class: type) -> str:
    if not isinstance(bucket_class, type):
        raise NotAttempted("pass the class itself: `ex2.check_token_bucket(TokenBucket)`.")
    rate, burst, n = 20.0, 3, 30

    async def run() -> list[float]:
        bucket = bucket_class(rate=rate, burst=burst)
        times: list[float] = []

        async def take() -> None:
            await bucket.acquire()
            times.append(time.monotonic())

        await asyncio.gather(*(take() for _ in range(n)))
        return times

    times = _run(
        run,
        15,
        f"{n} `acquire()` calls at {rate:g}/s did not finish within 15 s: "
        "does `acquire` ever return once a token is back?",
    )
    worst = max_per_window(times, 1.0)
    expect(
        worst <= rate + burst,
        f"{worst} acquisitions passed within one second; the budget is "
        f"rate × 1 s + burst = {rate + burst:g}.",
    )
    return f"{n} acquisitions at {rate:g}/s with a burst of {burst} stayed within budget in every second."


@check("Task 4 · ask_with_timeout")
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

    outcome, in_flight = _run(slow, 4, "a 0.1 s timeout on a 5 s call did not return within 4 s.")
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

    outcome = _run(fast, 10, "a fast call with a 2 s timeout did not return within 10 s.")
    expect(
        isinstance(outcome, dspy.Prediction),
        f"a fast call returned {type(outcome).__name__}, not its Prediction.",
    )
    return "a slow call gives a clear TimeoutError, a fast one its answer."


@check("Task 5 · answers_as_completed")
def check_as_completed(answers_as_completed: Callable[..., Any]) -> str:
    _need_async_generator(
        answers_as_completed, "answers_as_completed", dspy.Predict(_QA_SIGNATURE), ["q"], 1
    )
    questions = ["slow 0", "fast 1", "fast 2"]

    async def run() -> tuple[list[int], int]:
        gated, seen = GatedQA(), []
        with dspy.context(lm=sim_lm(latency=0.01, cache=False)):
            async for index, result in answers_as_completed(gated, questions, 3):
                expect(
                    questions[index] in getattr(result, "answer", ""),
                    f"index {index} came with {result!r}, not the answer to {questions[index]!r}.",
                )
                seen.append(index)
                if len(seen) == 2:
                    gated.release()
        return seen, gated.in_flight.peak

    seen, peak = _run(
        run,
        5,
        "no answer arrived while one question was still waiting: are you waiting "
        "for every call to finish (like `gather`) before yielding?",
    )
    expect(sorted(seen) == [0, 1, 2], f"yielded indices {seen}, expected each of 0, 1, 2 once.")
    expect(
        sorted(seen[:2]) == [1, 2], f"arrival order {seen}: the fast questions should come first."
    )
    expect(peak <= 3, f"with `limit=3`, {peak} calls ran at once.")
    return "answers arrive as they finish, slow ones last."


@check("Task 6 · stream_answer")
def check_stream(stream_answer: Callable[..., Any]) -> str:
    _need_async_generator(stream_answer, "stream_answer", dspy.Predict(_QA_SIGNATURE), "q")
    question = "Please stream this"

    async def full() -> list:
        with dspy.context(lm=sim_lm(latency=0.05, cache=False)):
            return [chunk async for chunk in stream_answer(dspy.Predict(_QA_SIGNATURE), question)]

    chunks = _run(full, 15, "the stream did not end within 15 s.")
    expect(
        all(isinstance(c, str) for c in chunks),
        f"yield text (`StreamResponse.chunk`), not {sorted({type(c).__name__ for c in chunks})}.",
    )
    expect(len(chunks) > 1, f"the answer came in {len(chunks)} chunk(s): it was not streamed.")
    expect(question in "".join(chunks), f"the chunks do not spell the answer: {''.join(chunks)!r}.")

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
            except (
                asyncio.CancelledError
            ) as exc:  # a cancel scope left open cancels whoever is running
                errors.append(exc)
        return provider.engine.stats.in_flight, errors

    in_flight, errors = _run(stop_early, 15, "closing the stream early did not finish within 15 s.")
    expect(
        not errors,
        f"closing the stream early left an error behind: {errors[0] if errors else ''!r}.",
    )
    expect(in_flight == 0, "after `aclose()`, the LM call was still running.")
    return "the answer streamed in several chunks, and stopping early leaves nothing behind."
