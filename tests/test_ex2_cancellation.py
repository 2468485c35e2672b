"""Exercise 2's timeout reference: cancellation always wins, whatever the provider does meanwhile.

`ask_with_timeout` (the master's own answer) must return its `TimeoutError` on time even when the
call it cancels would have failed, been retried, or answered late. On an engine that raises from a
`finally:` block while being cancelled, the error replaces the `CancelledError`, the timeout never
fires and DSPy retries the "failed" call: these tests then fail because of the engine, not the
reference (issue 8). The time bounds are loose (seconds, not milliseconds): they tell "cancelled
at once" from "waited for the provider and its retries", which takes 3 s or more here.
"""

from __future__ import annotations

import asyncio
import time

import dspy
import pytest

import dspy_workbook as wb
from dspy_workbook import concurrency as cc
from tools.answer_key import load_solutions

ask_with_timeout = load_solutions("02_async", "timeout").ask_with_timeout
QA = dspy.Predict("question -> answer")


def run(coro, seconds: float = 30):
    return asyncio.run(asyncio.wait_for(coro, seconds))


@pytest.mark.parametrize("error_rate", [0.0, 1.0])
def test_a_slow_call_is_cancelled_on_time_even_if_it_would_fail(error_rate: float) -> None:
    lm = wb.sim_lm(latency=3.0, error_rate=error_rate, cache=False)
    with dspy.context(lm=lm):
        start = time.perf_counter()
        outcome = run(ask_with_timeout(QA, "Fails slowly?", 0.1), 20)
        took = time.perf_counter() - start
    assert isinstance(outcome, TimeoutError), f"got {type(outcome).__name__}: {outcome}"
    assert took < 1.5, f"the 0.1 s timeout returned after {took:.1f} s"
    calls = lm.engine.stats.calls
    assert calls == 1, f"the cancelled call was retried: {calls} calls"
    assert lm.engine.stats.in_flight == 0


def test_every_timed_out_call_of_a_flaky_provider_gives_a_timeout_error() -> None:
    lm = wb.sim_lm(latency=2.0, error_rate=0.3, cache=False)
    questions = cc.distinct_questions(20, "flaky-timeout")

    async def batch() -> list:
        return await asyncio.gather(*(ask_with_timeout(QA, q, 0.1) for q in questions))

    with dspy.context(lm=lm):
        start = time.perf_counter()
        outcomes = run(batch(), 30)
        took = time.perf_counter() - start
    kinds = sorted({type(o).__name__ for o in outcomes})
    assert kinds == ["TimeoutError"], f"outcomes: {kinds}"
    assert took < 1.5, f"20 calls with a 0.1 s timeout took {took:.1f} s"
    assert lm.engine.stats.calls == 20 and lm.engine.stats.in_flight == 0


def test_a_cancelled_batch_leaves_no_call_running() -> None:
    lm = wb.sim_lm(latency=2.0, error_rate=1.0, cache=False)

    async def cancel_midway() -> None:
        task = asyncio.ensure_future(
            asyncio.gather(
                *(QA.acall(question=q) for q in cc.distinct_questions(5, "cancel")),
                return_exceptions=True,
            )
        )
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.05)

    with dspy.context(lm=lm):
        run(cancel_midway(), 10)
    assert lm.engine.stats.in_flight == 0 and lm.engine.stats.calls == 5
