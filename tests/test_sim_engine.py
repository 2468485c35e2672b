"""The simulated provider behaves like a remote one: latency, concurrency, faults and rate limits."""

from __future__ import annotations

import asyncio

import dspy
import pytest

import dspy_workbook as wb
from dspy_workbook.lm import SimEngine


def _ask(lm: dspy.LM, question: str, adapter: dspy.Adapter | None = None) -> dspy.Prediction:
    with dspy.context(lm=lm, adapter=adapter or dspy.JSONAdapter()):
        return dspy.Predict("question -> answer")(question=question)


def test_answers_are_deterministic_and_name_their_question() -> None:
    lm = wb.sim_lm(latency=0.0, cache=False)
    first, again = _ask(lm, "What is DSPy?"), _ask(lm, "What is DSPy?")
    assert first.answer == again.answer == "Simulated answer to: What is DSPy?"
    assert lm.engine.stats.calls == 2


def test_every_output_field_is_filled_for_both_adapters() -> None:
    lm = wb.sim_lm(latency=0.0)
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        cot = dspy.ChainOfThought("question -> answer")(question="Why?")
    assert cot.reasoning.startswith("Simulated reasoning") and cot.answer == "Simulated answer to: Why?"
    chat = _ask(lm, "Chat format?", adapter=dspy.ChatAdapter())
    assert chat.answer == "Simulated answer to: Chat format?"


def test_scripted_answers_replace_the_default() -> None:
    lm = wb.sim_lm(latency=0.0, answers={"capital of France": "Paris"})
    assert _ask(lm, "What is the capital of France?").answer == "Paris"


def test_usage_is_reported_and_dspy_cache_hits_report_none() -> None:
    lm = wb.sim_lm(latency=0.0)
    _ask(lm, "usage?")
    assert lm.history[-1]["usage"]["total_tokens"] > 0
    _ask(lm, "usage?")
    assert lm.history[-1]["usage"] == {} and lm.engine.stats.calls == 1


def test_concurrent_async_calls_overlap_like_network_io() -> None:
    lm = wb.sim_lm(latency=0.05, cache=False)

    async def run() -> list[dspy.Prediction]:
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            predict = dspy.Predict("question -> answer")
            return await asyncio.gather(*(predict.acall(question=f"q{i}") for i in range(6)))

    results = asyncio.run(asyncio.wait_for(run(), timeout=30))
    assert [r.answer for r in results] == [f"Simulated answer to: q{i}" for i in range(6)]
    assert lm.engine.stats.max_in_flight == 6 and lm.engine.stats.in_flight == 0


def test_rate_limit_errors_carry_retry_after_and_dspy_retries_them() -> None:
    lm = wb.sim_lm(latency=0.0, rate_limit=3, cache=False)
    answers = [_ask(lm, f"rl{i}").answer for i in range(5)]
    assert answers == [f"Simulated answer to: rl{i}" for i in range(5)]
    assert lm.engine.stats.rate_limited >= 1


def test_rate_limit_without_retries_surfaces_as_dspy_rate_limit_error() -> None:
    lm = wb.sim_lm(latency=0.0, rate_limit=1, cache=False, num_retries=0)
    _ask(lm, "first")
    with pytest.raises(dspy.LMRateLimitError) as caught:
        _ask(lm, "second")
    assert "requests per second" in str(caught.value)


def test_faults_are_decided_by_content_not_by_scheduling() -> None:
    def failures(seed: int) -> list[bool]:
        lm = wb.sim_lm(latency=0.0, error_rate=0.5, seed=seed, cache=False, num_retries=0)
        outcome = []
        for i in range(12):
            try:
                _ask(lm, f"fault {i}")
                outcome.append(False)
            except Exception:
                outcome.append(True)
        return outcome

    assert failures(1) == failures(1)
    assert any(failures(1)) and not all(failures(1))


def test_streaming_delivers_several_chunks() -> None:
    lm = wb.sim_lm(latency=0.0, cache=False)

    async def run() -> list:
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            program = dspy.streamify(dspy.Predict("question -> answer"),
                                     stream_listeners=[dspy.streaming.StreamListener("answer")])
            return [chunk async for chunk in program(question="stream?")]

    chunks = asyncio.run(asyncio.wait_for(run(), timeout=30))
    pieces = [c for c in chunks if isinstance(c, dspy.streaming.StreamResponse)]
    assert len(pieces) > 1
    # With the JSON adapter, the listener streams the JSON string value, quotes included.
    assert "".join(p.chunk for p in pieces).strip('"') == "Simulated answer to: stream?"
    assert isinstance(chunks[-1], dspy.Prediction)


@pytest.mark.parametrize("kwargs, message", [
    ({"latency": -1}, "latency"),
    ({"error_rate": 2}, "probability"),
    ({"rate_limit": 0}, "requests per second"),
])
def test_bad_settings_are_refused_with_a_clear_message(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimEngine(**kwargs)
