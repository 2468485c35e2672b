"""The embedded llama.cpp model as a DSPy engine: real generations, no mocks of llama.cpp.

Generated text is never pinned (it is deterministic on one CPU, not across CPUs); what is checked
is the contract: every answer parses, usage is real, DSPy's cache/streaming/async/threads work, and
no call can hang or leave the model busy. Every test is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib.util
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import dspy
from dspy.lm15 import ContextLengthError, LockTimeoutError, Message, Request
from dspy.streaming import StreamListener, StreamResponse
from dspy_workbook._errors import BackendError
from dspy_workbook.lm._questions import FACT_QUESTIONS

pytestmark = pytest.mark.local_lm

QUESTIONS = FACT_QUESTIONS[:8]
TIMEOUT = 30.0  # seconds per bounded step; a healthy call takes well under one


def bounded(fn: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    """Run `fn` in a thread (with this context, so dspy.context applies) and fail if it hangs."""
    result: dict[str, Any] = {}
    ctx = contextvars.copy_context()

    def target() -> None:
        try:
            result["value"] = ctx.run(fn)
        except BaseException as exc:  # re-raised in the test thread
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"call did not finish within {timeout:g} s (hung or deadlocked)")
    if "error" in result:
        raise result["error"]
    return result["value"]


@pytest.fixture(scope="module")
def local() -> Any:
    """The engine module, skipping the file when the model is not installed."""
    from dspy_workbook.lm import _local

    try:
        _local.local_model_path()
        _local._import_llama_cpp()
    except BackendError as exc:
        pytest.skip(str(exc))
    return _local


@pytest.fixture(scope="module")
def lm(local: Any) -> dspy.LM:
    """The course LM with DSPy's cache off, so every call really generates."""
    return local.local_lm(cache=False)


@pytest.fixture()
def configured(lm: dspy.LM) -> Iterator[dspy.LM]:
    """DSPy set up as the course sets it up (JSON adapter), scoped to one test."""
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        yield lm


def _request(local: Any, text: str, **config: Any) -> Request:
    return Request(model=local.LOCAL_MODEL, messages=(Message.user(text),),
                   config=dspy.lm15.Config(**config))


def test_predict_and_cot_always_parse(configured: dspy.LM) -> None:
    # One module at a time, so consecutive prompts share DSPy's system prompt (llama.cpp reuses it).
    predict, cot = dspy.Predict("question -> answer"), dspy.ChainOfThought("question -> answer")
    for question in QUESTIONS:
        p = bounded(lambda q=question: predict(question=q))  # an AdapterParseError would raise here
        assert isinstance(p.answer, str) and p.answer.strip(), (question, p)
        assert len(p.answer) <= 200  # the grammar's bound
    for question in QUESTIONS:
        c = bounded(lambda q=question: cot(question=q))
        assert isinstance(c.answer, str) and c.answer.strip(), (question, c)
        assert isinstance(c.reasoning, str) and c.reasoning.strip(), (question, c)
        assert len(c.reasoning) <= 300 and len(c.answer) <= 200


def test_usage_is_real_tokens(configured: dspy.LM) -> None:
    bounded(lambda: dspy.Predict("question -> answer")(question="Name a primary color."))
    usage = configured.history[-1]["usage"]
    assert usage["prompt_tokens"] > 50  # DSPy's system prompt alone is longer than that
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_dspy_cache_hit_skips_the_model(local: Any) -> None:
    cached = local.local_lm()  # cache=True: DSPy's own cache (memory-only in tests, see conftest)
    question = f"What is the capital of Italy? (request {uuid.uuid4().hex[:8]})"
    with dspy.context(lm=cached, adapter=dspy.JSONAdapter()):
        first = bounded(lambda: dspy.Predict("question -> answer")(question=question))
        assert cached.history[-1]["usage"]["completion_tokens"] > 0
        second = bounded(lambda: dspy.Predict("question -> answer")(question=question))
    assert cached.history[-1]["usage"] == {}  # DSPy marks a cache hit with empty usage
    assert second.answer == first.answer


@pytest.mark.parametrize("is_async_program", [False, True], ids=["sync-engine", "async-engine"])
def test_streamify_streams_the_answer_token_by_token(configured: dspy.LM,
                                                     is_async_program: bool) -> None:
    program = dspy.streamify(dspy.Predict("question -> answer"), is_async_program=is_async_program,
                             stream_listeners=[StreamListener("answer")])

    async def consume() -> tuple[list[StreamResponse], dspy.Prediction | None]:
        chunks, final = [], None
        async for item in program(question="Describe the Eiffel Tower in one sentence."):
            if isinstance(item, StreamResponse):
                chunks.append(item)
            elif isinstance(item, dspy.Prediction):
                final = item
        return chunks, final

    chunks, final = asyncio.run(asyncio.wait_for(consume(), TIMEOUT))
    assert final is not None and final.answer.strip()
    assert len(chunks) > 1, chunks
    assert all(c.signature_field_name == "answer" for c in chunks)
    assert chunks[-1].is_last_chunk


def test_four_threads_share_the_model(configured: dspy.LM) -> None:
    program = dspy.ChainOfThought("question -> answer")
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def worker(i: int, ctx: contextvars.Context) -> None:
        try:
            results[i] = ctx.run(program, question=QUESTIONS[i])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i, contextvars.copy_context()), daemon=True)
               for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + TIMEOUT
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    assert sorted(results) == [0, 1, 2, 3]
    assert all(r.answer.strip() for r in results.values())


def test_async_acall(configured: dspy.LM) -> None:
    program = dspy.ChainOfThought("question -> answer")

    async def run() -> list[dspy.Prediction]:
        return await asyncio.gather(*(program.acall(question=q) for q in QUESTIONS[:3]))

    predictions = asyncio.run(asyncio.wait_for(run(), TIMEOUT))
    assert all(p.answer.strip() for p in predictions)


def test_abandoned_streams_release_the_model(local: Any, configured: dspy.LM) -> None:
    sync_engine, async_engine = configured.engine, configured._async_engine_spec
    request = _request(local, "Write a long story about a dragon.", max_tokens=200)

    async def scenario() -> dspy.Prediction:
        # 1. Break out of an async stream after two tokens (the generator is closed).
        async with contextlib.aclosing(async_engine.stream(request)) as events:
            seen = 0
            async for event in events:
                seen += event.type == "delta"
                if seen == 2:
                    break
        # 2. Cancel a task that is in the middle of consuming a stream.
        started = asyncio.Event()

        async def consume() -> None:
            async for event in async_engine.stream(request):
                if event.type == "delta":
                    started.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(started.wait(), TIMEOUT)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # 3. The model is free again: a normal async call completes.
        return await dspy.Predict("question -> answer").acall(question="What is 2 plus 2?")

    prediction = asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))
    assert prediction.answer.strip()

    # 4. Same for the sync stream: abandon it mid-generation, then call again.
    events = sync_engine.stream(request)
    assert next(events).type == "start"
    assert next(events).type == "delta"
    events.close()
    response = bounded(lambda: sync_engine.complete(_request(local, "Say hi.", max_tokens=8)), 10)
    assert response.usage.output_tokens > 0


def test_stream_and_complete_agree(local: Any, configured: dspy.LM) -> None:
    engine = configured.engine
    request = _request(local, "Write a long story about a dragon.", max_tokens=24)
    whole = bounded(lambda: engine.complete(request))
    events = bounded(lambda: list(engine.stream(request)))
    assert events[0].type == "start" and events[-1].type == "end"
    deltas = [e for e in events if e.type == "delta"]
    assert len(deltas) > 1
    # Text is not compared: the second call reuses the cached prompt, and llama.cpp's logits for a
    # token evaluated alone differ in the last bits from the same token evaluated in a batch.
    assert "".join(e.delta.text for e in deltas).strip() and whole.text.strip()
    assert events[-1].usage == whole.usage
    assert whole.usage.input_tokens > 0 and whole.usage.output_tokens > 0
    assert whole.finish_reason == events[-1].finish_reason == "length"  # a story needs more than 24
    assert whole.usage.output_tokens == 24


def test_a_busy_model_times_out_instead_of_hanging(local: Any, configured: dspy.LM) -> None:
    impatient = local.LocalLlamaEngine(wait_timeout=0.2)  # shares the model (and its queue)
    release = threading.Event()
    # Occupy the model's thread, as a long generation would.
    blocker = impatient._runtime.submit(lambda: release.wait(TIMEOUT))
    try:
        started = time.monotonic()
        with pytest.raises(LockTimeoutError):
            impatient.complete(_request(local, "Say hi.", max_tokens=4))
        assert time.monotonic() - started < 5
    finally:
        release.set()
        blocker.result(TIMEOUT)
    after = bounded(lambda: impatient.complete(_request(local, "Say hi.", max_tokens=4)))
    assert after.usage.output_tokens > 0


def test_fast_grammar_sampling_picks_the_same_tokens(local: Any, configured: dspy.LM) -> None:
    # The engine checks only the top token against the grammar; llama-cpp-python filters the
    # whole vocabulary. Under greedy decoding both must choose the same tokens.
    fast, slow = configured.engine, local.LocalLlamaEngine(fast_grammar=False)
    schema = {"type": "object", "additionalProperties": False, "required": ["reasoning", "answer"],
              "properties": {"reasoning": {"type": "string"}, "answer": {"type": "string"}}}

    def from_empty_context(engine: Any, request: Request) -> str:
        # Forget the cached prompt first: a token evaluated alone and the same token evaluated in a
        # batch get logits that differ in the last bits, which could change a greedy choice.
        runtime = engine._runtime
        runtime.submit(lambda: runtime.llama().reset()).result(TIMEOUT)
        return bounded(lambda: engine.complete(request)).text

    for question in QUESTIONS[:2]:
        request = _request(local, f"Answer in JSON with reasoning and answer. {question}",
                           max_tokens=64, response_format={"type": "json_schema", "schema": schema})
        assert from_empty_context(fast, request) == from_empty_context(slow, request)


def test_too_long_prompt_is_a_context_length_error(local: Any) -> None:
    small = local.LocalLlamaEngine(n_ctx=256, shared=False)  # its own tiny context
    try:
        with pytest.raises(ContextLengthError):
            bounded(lambda: small.complete(_request(local, "word " * 600, max_tokens=8)), 10)
        # the failure left the model usable
        ok = bounded(lambda: small.complete(_request(local, "Say hi.", max_tokens=8)), 10)
        assert ok.usage.output_tokens > 0
    finally:
        small.close()


def test_missing_model_package_is_a_backend_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from dspy_workbook.lm import _local as local  # runs without the model: no skip here

    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == local.MODEL_PACKAGE else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for build in (local.local_model_path, local.LocalLlamaEngine, local.local_lm):
        with pytest.raises(BackendError, match="make setup"):
            build()


def test_missing_llama_cpp_is_a_backend_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from dspy_workbook.lm import _local as local

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    with pytest.raises(BackendError, match="make setup"):
        local.local_lm()
