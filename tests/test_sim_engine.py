"""The simulated provider behaves like a remote one: latency, concurrency, faults, rate limits,
cancellation that always wins, and deterministic log-probabilities."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time

import dspy
import pytest
from dspy.lm15 import Message, Request

import dspy_workbook as wb
from dspy_workbook.lm import SimEngine, answer_confidence


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
    assert cot.reasoning.startswith("Simulated reasoning")
    assert cot.answer == "Simulated answer to: Why?"
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
            program = dspy.streamify(
                dspy.Predict("question -> answer"),
                stream_listeners=[dspy.streaming.StreamListener("answer")],
            )
            return [chunk async for chunk in program(question="stream?")]

    chunks = asyncio.run(asyncio.wait_for(run(), timeout=30))
    pieces = [c for c in chunks if isinstance(c, dspy.streaming.StreamResponse)]
    assert len(pieces) > 1
    # With the JSON adapter, the listener streams the JSON string value, quotes included.
    assert "".join(p.chunk for p in pieces).strip('"') == "Simulated answer to: stream?"
    assert isinstance(chunks[-1], dspy.Prediction)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"latency": -1}, "latency"),
        ({"error_rate": 2}, "probability"),
        ({"rate_limit": 0}, "requests per second"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimEngine(**kwargs)


# -- cancellation and Ctrl-C always win -------------------------------------------------------
@pytest.mark.parametrize("error_rate", [1.0, 0.3])
def test_an_asyncio_timeout_is_a_timeout_whatever_the_faults(error_rate: float) -> None:
    lm = wb.sim_lm(latency=0.5, error_rate=error_rate, cache=False)
    predict = dspy.Predict("question -> answer")

    async def ask_with_timeout(question: str, seconds: float) -> dspy.Prediction:
        return await asyncio.wait_for(predict.acall(question=question), seconds)

    async def run() -> list[BaseException | dspy.Prediction]:
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            return await asyncio.gather(
                *(ask_with_timeout(f"t{i}", 0.1) for i in range(20)), return_exceptions=True
            )

    started = time.monotonic()
    outcomes = asyncio.run(asyncio.wait_for(run(), timeout=30))
    elapsed = time.monotonic() - started
    assert all(isinstance(o, TimeoutError) for o in outcomes), outcomes
    assert elapsed < 2.0, f"20 timeouts of 0.1 s took {elapsed:.2f} s (retried?)"
    # Nothing retried (a call cancelled before it reached the engine is not counted at all).
    assert lm.engine.stats.calls <= 20 and lm.engine.stats.in_flight == 0
    assert lm.engine.stats.server_errors == 0  # a cancelled attempt reports no fault


def test_a_cancelled_stream_raises_no_fault() -> None:
    lm = wb.sim_lm(latency=0.5, error_rate=1.0, cache=False)

    async def run() -> None:
        stream = lm._async_engine_spec.stream(_request("stream me"))
        async with contextlib.aclosing(stream) as events:
            async for event in events:
                if event.type == "delta":
                    break

    asyncio.run(asyncio.wait_for(run(), timeout=10))  # closing early raised nothing
    assert lm.engine.stats.in_flight == 0 and lm.engine.stats.server_errors == 0


def test_ctrl_c_during_a_sync_call_is_a_keyboard_interrupt_at_once() -> None:
    lm = wb.sim_lm(latency=3.0, error_rate=1.0, cache=False)
    timer = threading.Timer(
        0.2, signal.pthread_kill, args=(threading.main_thread().ident, signal.SIGINT)
    )
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            _ask(lm, "interrupt me")
    finally:
        timer.cancel()
        timer.join()
    assert time.monotonic() - started < 1.5
    assert lm.engine.stats.calls == 1 and lm.engine.stats.in_flight == 0  # not retried


# -- deterministic log-probabilities --------------------------------------------------------------
def _request(text: str, **config: object) -> Request:
    return Request(
        model="sim/course-provider",
        messages=(Message.user(text),),
        config=dspy.lm15.Config(**config),
    )


def test_logprobs_are_deterministic_and_differ_between_questions() -> None:
    lm = wb.sim_lm(latency=0.0, cache=False)
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        predict = dspy.Predict("question -> answer", logprobs=True)
        first, again = predict(question="What is DSPy?"), predict(question="What is DSPy?")
        other = predict(question="Why is the sky blue?")
    text = lm.history[0]["outputs"][0]["text"]
    assert "".join(t["token"] for t in first.logprobs["content"]) == text
    assert first.logprobs == again.logprobs
    confidence = answer_confidence(first)
    assert 0 < confidence <= 1 and confidence == answer_confidence(again)
    assert confidence != answer_confidence(other)
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        assert "logprobs" not in dspy.Predict("question -> answer")(question="x").keys()


def test_streamed_logprobs_match_the_whole_response() -> None:
    engine = SimEngine(latency=0.0)
    request = _request("stream with logprobs", logprobs=0)
    whole = engine.complete(request)
    deltas = [e.delta for e in engine.stream(request) if e.type == "delta"]
    assert "".join(d.text for d in deltas) == whole.text
    assert tuple(lp for d in deltas for lp in d.logprobs) == whole.logprobs


@pytest.mark.parametrize(
    "kwargs",
    [
        {"latency": float("nan")},
        {"latency": float("inf")},
        {"jitter": float("nan")},
        {"rate_limit": float("inf")},
    ],
)
def test_non_finite_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SimEngine(**kwargs)
