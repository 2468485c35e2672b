"""Self-checks for Exercise 2 (async DSPy): a bounded runner and a token bucket (graded), and
timeouts, answers as they finish and token streaming (going further, no points).

The student's functions are coroutines, but a check is an ordinary call from a notebook cell whose
event loop is already running. So each step runs the student's code on a fresh event loop in a
helper thread (`dspy_workbook.threads.run_async`, which keeps the caller's `dspy.context`), under
a short time bound of its own: code that hangs costs a few seconds here, and the grader's cell
timeout only once. The token bucket runs on a loop whose clock skips idle waits
(`concurrency.trial_bucket`), so seconds of traffic take milliseconds.

Each check tries exactly the behaviours its task's text calls graded — the same ones the hidden
tests grade — with programs whose questions say nothing about the expected outcome, and measures
with this package's own helpers (bound at import, so a notebook that reassigns `cc.…` cannot
change what a check measures).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import math
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import dspy

from ..concurrency import (
    FlakyQA,
    FloodUnfinished,
    ScriptedQA,
    distinct_questions,
    trial_bucket,
    worst_overrun,
)
from ..lm import sim_lm
from ..threads import BoundExceeded, run_async
from ._core import call_student, expect, expect_callable
from ._exercise import Exercise

__all__ = [
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
_BAD_LIMITS = (0, -1, 2.5, math.nan)

ex = Exercise("Exercise 2 · async DSPy")


def _run(what: str, make: Callable[[], Awaitable[T]], seconds: float, too_slow: str) -> T:
    """Run `make()` on a fresh event loop in a helper thread; fail with `too_slow` after `seconds`.

    The student's own exceptions become a specific verdict naming `what` and their line
    (`call_student`); a `TimeoutError` their code raised is not mistaken for the bound running out.
    """

    def bounded() -> T:
        try:
            return run_async(make, timeout=seconds)
        except BoundExceeded:
            raise AssertionError(f"your code did not finish in {seconds:g} s: {too_slow}") from None

    return call_student(what, bounded)


async def _awaited(fn: Callable[..., Any], name: str, *args: Any) -> Any:
    """`await fn(*args)`, failing clearly when `fn` returns something that cannot be awaited."""
    pending = fn(*args)
    if not inspect.isawaitable(pending):
        raise AssertionError(
            f"`{name}(...)` returned {type(pending).__name__}, not something to `await`: "
            "make it an `async def`."
        )
    return await pending


def _need_async_generator(fn: Any, name: str, *args: Any) -> None:
    """Fail unless `fn` is an async generator function; an untouched starter is not attempted."""
    expect_callable(fn, name)
    if inspect.isasyncgenfunction(fn):
        return
    if inspect.iscoroutinefunction(fn):  # the starter raises NotImplementedError: not attempted

        async def call() -> None:
            with dspy.context(lm=sim_lm(latency=0.001, cache=False)):
                await fn(*args)

        _run(f"`{name}`", call, 10, f"`{name}` never returned.")
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
    "run_bounded",
    "Task 1 · run_bounded",
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
        "raise ValueError(...)` — a float such as 2.5 or `nan` slips through `limit < 1` alone.",
    ),
)
def check_run_bounded(run_bounded: Callable[..., Awaitable[list]]) -> str:
    expect_callable(run_bounded, "run_bounded")
    questions = distinct_questions(12, "chk1")
    what = "`run_bounded`"

    async def bounded(limit: int, asked: list[str]) -> tuple[Any, int]:
        provider = sim_lm(latency=0.05, jitter=0.04, cache=False)  # finishing order ≠ asking order
        with dspy.context(lm=provider):
            program = dspy.Predict(_QA_SIGNATURE)
            results = await _awaited(run_bounded, "run_bounded", program, asked, limit)
        return results, provider.engine.stats.max_in_flight

    for limit, asked in ((3, questions), (1, questions[:4])):
        results, peak = _run(
            what,
            lambda limit=limit, asked=asked: bounded(limit, asked),
            15,
            f"{len(asked)} questions never finished.",
        )
        expect(
            isinstance(results, list),
            f"`run_bounded` returned {type(results).__name__}, not a list.",
        )
        expect(len(results) == len(asked), f"{len(results)} results for {len(asked)} questions.")
        expect(peak <= limit, f"with `limit={limit}`, {peak} calls were in flight at once.")
        expect(
            peak == limit,
            f"with `limit={limit}` and {len(asked)} questions, at most {peak} call(s) ran at "
            "once: the calls do not overlap. Start them all and let the limit hold them back; "
            "inside it, `await program.acall(...)` (a sync `program(...)` holds the event loop).",
        )
        wrong = [
            i
            for i, (q, r) in enumerate(zip(asked, results, strict=True))
            if q not in getattr(r, "answer", "")
        ]
        expect(
            not wrong,
            f"result {wrong[0] if wrong else ''} is not the answer to question "
            f"{wrong[0] if wrong else ''}: keep the questions' order.",
        )

    mixed = ["ok 0", "FAIL 1", "ok 2", "FAIL 3", "ok 4"]

    async def flaky() -> Any:
        with dspy.context(lm=sim_lm(latency=0.01, cache=False)):
            try:
                return await _awaited(run_bounded, "run_bounded", FlakyQA(), mixed, 2)
            except dspy.LMError as exc:
                return exc

    results = _run(what, flaky, 15, "5 questions, two failing, never finished.")
    expect(
        not isinstance(results, dspy.LMError),
        f"two failing questions of five made the whole batch raise {type(results).__name__}: "
        "keep each failure in its place (`return_exceptions=True`).",
    )
    kinds = [type(r).__name__ for r in results]
    expect(
        [isinstance(r, Exception) for r in results] == [False, True, False, True, False],
        f"for questions {mixed} you returned {kinds}: want each answer for an 'ok' question and "
        "the exception object itself, in its place, for a 'FAIL' one.",
    )
    expect(
        all(
            q in r.answer
            for q, r in zip(mixed, results, strict=True)
            if not isinstance(r, Exception)
        ),
        "an answer next to a failure is not the answer to its own question.",
    )

    async def empty() -> Any:
        return await _awaited(run_bounded, "run_bounded", dspy.Predict(_QA_SIGNATURE), [], 3)

    nothing = _run(what, empty, 5, "no questions, and yet it never returned.")
    expect(type(nothing) is list and nothing == [], f"no questions gave {nothing!r}, not `[]`.")

    for limit in _BAD_LIMITS:

        async def refused(limit: Any = limit) -> tuple[str, int]:
            provider = sim_lm(latency=0.01, cache=False)
            with dspy.context(lm=provider):
                try:
                    async with asyncio.timeout(3):
                        program = dspy.Predict(_QA_SIGNATURE)
                        await _awaited(run_bounded, "run_bounded", program, questions, limit)
                except ValueError:
                    return "refused", provider.engine.stats.calls
                except TimeoutError:
                    return "hung", provider.engine.stats.calls
            stats = provider.engine.stats
            return f"ran ({stats.max_in_flight} at once)", stats.calls

        verdict, calls = _run(what, refused, 10, f"`limit={limit!r}` never returned.")
        expect(
            verdict != "hung",
            f"with `limit={limit!r}` your function waited 3 s without an answer or an error: "
            "refuse a limit below 1 with `ValueError`.",
        )
        expect(
            verdict == "refused",
            f"`limit={limit!r}` was accepted and the calls {verdict}: raise `ValueError` "
            "unless `limit` is an `int` of at least 1.",
        )
        expect(calls == 0, f"`limit={limit!r}` was refused only after {calls} call(s) were made.")
    return (
        "at most `limit` in flight (and exactly that many), results in order, failures kept in "
        "their places, `[]` for no questions, and limits like 0, 2.5 or nan refused."
    )


# -- Task 2 ----------------------------------------------------------------------------------


@ex.task(
    "token_bucket",
    "Task 2 · TokenBucket",
    points=3,
    needs=("TokenBucket",),
    seconds=45,
    hints=(
        "Tokens are not added by a timer: work them out when `acquire` runs. Since `self.updated`, "
        "`(now - self.updated) * self.rate` tokens have dripped in, where `now = self.clock()` — "
        "but the bucket never holds more than `self.burst`.",
        "Inside `async with self.lock:` loop: refill (capped with `min`), move `self.updated` to "
        "now, and if `self.tokens >= 1` take one and return. Otherwise wait, then loop again.",
        "Wait exactly until the next token is due: `await asyncio.sleep((1 - self.tokens) / "
        "self.rate)`. `time.sleep` would freeze every other task; a fixed sleep never bursts.",
    ),
)
def check_token_bucket(bucket_class: type) -> str:
    expect_callable(bucket_class, "TokenBucket")
    rate, burst, n = 20.0, 3, 20

    def trial() -> list:
        try:
            return trial_bucket(bucket_class, rate=rate, burst=burst, n=n, idle=0.8)
        except FloodUnfinished as exc:
            raise AssertionError(f"{exc} (`time.monotonic()` does not see the skips.)") from None
        except BoundExceeded:
            raise AssertionError(
                f"{2 * n} `acquire()` calls did not finish in 20 s: look for a loop that never "
                "waits with `await`."
            ) from None

    rounds = call_student("`TokenBucket(rate, burst, clock).acquire()`", trial)
    for label, r in zip(("at first", "after idling"), rounds, strict=True):
        expect(len(r.passed) == n, f"{len(r.passed)} of {n} `acquire()` calls returned {label}.")
        expect(
            r.longest_stall < 0.5 and r.total_stall < 0.5 * r.took + 0.05,
            f"{label}, the event loop was stuck for {r.total_stall:.2f} s of the {r.took:.2f} s "
            "the requests took: wait with `await asyncio.sleep`, never `time.sleep`.",
        )
        quick = sorted(r.passed)[burst - 1] - r.start
        expect(
            quick < 0.5 / rate,
            f"{label}, the first {burst} requests took {quick:.3f} s: a full bucket should let "
            f"`burst` requests through at once.",
        )
        ideal = (n - burst) / rate
        expect(
            r.took < ideal * 1.15 + 0.05,
            f"{label}, {n} requests took {r.took:.2f} s; at {rate:g}/s with a burst of {burst} "
            f"they need about {ideal:.2f} s: the rate is not reached.",
        )
    # Every stretch of time, not a few window sizes: one token too many per refill shows anywhere.
    overrun = worst_overrun([t for r in rounds for t in r.passed], rate=rate, burst=burst)
    expect(
        overrun is None,
        f"{overrun}. Does each request wait for a whole token (`self.tokens >= 1`), and is the "
        "refill capped at `burst` (idle time must not be saved up)?",
    )
    return (
        f"bursts of {burst}, {rate:g}/s sustained, the budget held in every window (also "
        "after idling), and the event loop kept running."
    )


# -- Task 3 (going further) ------------------------------------------------------------------


@ex.task(
    "timeout",
    "Task 3 · ask_with_timeout (going further)",
    points=0,
    core=False,
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
    expect_callable(ask_with_timeout, "ask_with_timeout")
    what, question = "`ask_with_timeout`", "Is anybody there?"

    async def slow() -> tuple[Any, int]:
        provider = sim_lm(latency=5.0, cache=False)
        with dspy.context(lm=provider):
            try:
                outcome = await _awaited(
                    ask_with_timeout, "ask_with_timeout", dspy.Predict(_QA_SIGNATURE), question, 0.1
                )
            except TimeoutError:
                raise AssertionError(
                    "the timeout was raised; return the `TimeoutError` instead."
                ) from None
        await asyncio.sleep(0.01)
        return outcome, provider.engine.stats.in_flight

    outcome, in_flight = _run(what, slow, 4, "a 0.1 s timeout on a 5 s call did not end it.")
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
            return await _awaited(
                ask_with_timeout, "ask_with_timeout", dspy.Predict(_QA_SIGNATURE), "Quick?", 2.0
            )

    outcome = _run(what, fast, 10, "a fast call with a 2 s timeout never returned.")
    expect(
        isinstance(outcome, dspy.Prediction),
        f"a fast call returned {type(outcome).__name__}, not its Prediction.",
    )

    async def failing_slowly() -> tuple[Any, float, int]:
        provider = sim_lm(latency=3.0, error_rate=1.0, cache=False)
        started = time.perf_counter()
        with dspy.context(lm=provider):
            try:
                outcome = await _awaited(
                    ask_with_timeout,
                    "ask_with_timeout",
                    dspy.Predict(_QA_SIGNATURE),
                    "Fails late?",
                    0.1,
                )
            except dspy.LMError as exc:
                outcome = exc
        return outcome, time.perf_counter() - started, provider.engine.stats.calls

    outcome, took, calls = _run(what, failing_slowly, 10, "a 0.1 s timeout on a failing call.")
    expect(
        isinstance(outcome, TimeoutError) and took < 1.5 and calls == 1,
        f"a 0.1 s timeout on a slow call that would fail gave {type(outcome).__name__} after "
        f"{took:.1f} s and {calls} call(s): the cancellation must win — don't catch "
        "`CancelledError` or retry inside `ask_with_timeout`.",
    )
    return "a slow call gives a clear TimeoutError and stops, a fast one gives its answer."


# -- Task 4 (going further) ------------------------------------------------------------------


@ex.task(
    "as_completed",
    "Task 4 · answers_as_completed (going further)",
    points=0,
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
        "in Task 1.",
    ),
)
def check_as_completed(answers_as_completed: Callable[..., Any]) -> str:
    _need_async_generator(
        answers_as_completed, "answers_as_completed", dspy.Predict(_QA_SIGNATURE), ["q"], 1
    )
    what = "`answers_as_completed`"
    questions = _random_questions(5)
    delays = dict(zip(questions, _shuffled_delays(5), strict=True))

    async def run(limit: int) -> tuple[list[tuple[int, Any]], list[int], ScriptedQA]:
        scripted, got, running = ScriptedQA(delays), [], []
        async for pair in answers_as_completed(scripted, questions, limit):
            got.append(pair)
            running.append(scripted.in_flight.current)
        return got, running, scripted

    got, running, scripted = _run(what, lambda: run(5), 10, "5 quick questions never arrived.")
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

    got, _, scripted = _run(what, lambda: run(2), 10, "5 questions with `limit=2` never arrived.")
    expect(
        scripted.in_flight.peak == 2,
        f"with `limit=2`, {scripted.in_flight.peak} call(s) ran at once.",
    )

    async def flaky() -> Any:
        with dspy.context(lm=sim_lm(latency=0.01, cache=False)):
            try:
                return [
                    p async for p in answers_as_completed(FlakyQA(), ["ok 0", "FAIL 1", "ok 2"], 2)
                ]
            except dspy.LMError as exc:
                return exc

    got = _run(what, flaky, 10, "3 questions, one failing, never all arrived.")
    expect(
        not isinstance(got, dspy.LMError),
        f"one failing question ended the stream with {type(got).__name__}: yield the exception "
        "as that question's result.",
    )
    failed = [isinstance(r, Exception) for _, r in sorted(got, key=lambda p: p[0])]
    expect(failed == [False, True, False], f"for one failing question of three you yielded {got}.")

    async def stop_early() -> int:
        scripted = ScriptedQA({q: (0.02 if i == 0 else 5.0) for i, q in enumerate(questions)})
        stream = answers_as_completed(scripted, questions, 5)
        await anext(stream)
        await stream.aclose()
        await asyncio.sleep(0.05)
        return scripted.in_flight.current

    left = _run(what, stop_early, 5, "closing the generator after the first answer hung.")
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

    verdict = _run(what, refused, 10, "`limit=0` never returned.")
    expect(
        verdict == "refused", f"`limit=0` was {verdict}: raise `ValueError` for a limit below 1."
    )
    return "answers arrive in finishing order while others run; closing early cancels the rest."


# -- Task 5 (going further) ------------------------------------------------------------------


@ex.task(
    "stream_answer",
    "Task 5 · stream_answer (going further)",
    points=0,
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
    what, question = "`stream_answer`", "Please stream this"

    async def full() -> tuple[list, int | None]:
        provider = sim_lm(latency=0.4, cache=False)
        chunks, in_flight_at_first = [], None
        with dspy.context(lm=provider):
            async for chunk in stream_answer(dspy.Predict(_QA_SIGNATURE), question):
                if in_flight_at_first is None:
                    in_flight_at_first = provider.engine.stats.in_flight
                chunks.append(chunk)
        return chunks, in_flight_at_first

    chunks, in_flight_at_first = _run(what, full, 10, "the stream never ended.")
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

    in_flight, errors = _run(what, stop_early, 10, "closing the stream early never finished.")
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

    verdict = _run(what, failing, 10, "a failing call's stream never ended.")
    expect(
        verdict == "raised",
        "the LM call failed, but your stream ended quietly: raise the error to the consumer.",
    )
    return "chunks arrive while the LM still generates; errors reach you; stopping early is clean."


hint, check_all = ex.hint, ex.check_all
