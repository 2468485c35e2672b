"""The hosted path, end to end: the workbook through DSPy and LiteLLM against a real
OpenAI-compatible server (llama-cpp-python's, serving the course model on loopback).

The model is served as ``course-model`` — a name no price table or catalogue knows — and reached
exactly as a student reaches a provider: ``WORKBOOK_LM=openai/course-model`` with
``OPENAI_API_BASE`` and ``OPENAI_API_KEY``. A small proxy (`tests/_hosted.py`) sits in between to
record requests and to inject the failures real providers produce. Tier: ``local_lm``: the
model answers one call in 1–20 s on a busy 2-core machine; the file takes a few minutes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import dspy
import pytest

from dspy_workbook.lm import CourseJSONAdapter, HostedLM, answer_confidence, course_lm
from dspy_workbook.lm.class_server import ClassServer
from dspy_workbook.monitoring import CallUsage
from dspy_workbook.monitoring._prices import price_of
from dspy_workbook.serving.confidence import logprob_confidence
from dspy_workbook.serving.errors import classify_error
from tests import _class_server
from tests._hosted import Proxy

pytestmark = pytest.mark.local_lm  # needs the model file; the "hosted" tier (see report)

MODEL = _class_server.MODEL  # "openai/course-model"
# The course model on loopback, one server per session (`tests/_class_server.py`): imported
# here, pytest finds the fixture.
class_server = _class_server.class_server


@pytest.fixture(scope="session")
def proxy(class_server: ClassServer) -> Iterator[Proxy]:
    running = Proxy(class_server.base_url).start()
    yield running
    running.stop()


@pytest.fixture
def hosted(proxy: Proxy, class_server: ClassServer, monkeypatch: pytest.MonkeyPatch) -> Proxy:
    """The student's settings (`kernel_env`), pointed at the proxy; the proxy passing requests
    through."""
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)  # LiteLLM prefers it to OPENAI_API_BASE
    for name, value in _class_server.kernel_env({}, proxy.base_url, class_server.api_key).items():
        monkeypatch.setenv(name, value)
    return proxy.reset()


def _lm(**options) -> HostedLM:
    lm = course_lm(max_tokens=128, temperature=0.0, **options)
    assert isinstance(lm, HostedLM)
    return lm


def test_structured_outputs_parse_chain_of_thought_and_a_float(hosted: Proxy) -> None:
    lm = _lm()
    with dspy.context(lm=lm, adapter=CourseJSONAdapter()):
        thought = dspy.ChainOfThought("question -> answer")(question="What is 2 + 2?")
        number = dspy.Predict("question -> answer: float")(question="What is 2 + 2?")
    assert isinstance(thought.reasoning, str) and isinstance(thought.answer, str)
    assert isinstance(number.answer, float)
    # The server refused OpenAI's json_schema form and took the schema in JSON mode:
    assert lm.response_form == "json_object+schema"
    sent = hosted.requests[-1]["response_format"]
    assert sent["type"] == "json_object" and "answer" in sent["schema"]["properties"]


def test_log_probabilities_reach_exercise_5s_confidence(hosted: Proxy) -> None:
    with dspy.context(lm=_lm(), adapter=CourseJSONAdapter()):
        predict = dspy.Predict("question -> answer", logprobs=True)
        prediction = predict(question="Capital of France?")
    assert hosted.requests[-1]["top_logprobs"] == 1  # logprobs alone gets none from this server
    confidence = answer_confidence(prediction)
    assert 0.0 < confidence <= 1.0
    assert logprob_confidence(prediction) == pytest.approx(confidence)


def test_token_usage_reaches_exercise_6_and_an_unknown_price_stays_unknown(hosted: Proxy) -> None:
    lm = _lm(cache=False)
    with dspy.context(lm=lm, adapter=CourseJSONAdapter()):
        usage = CallUsage.begin(lm.model)
        dspy.Predict("question -> answer")(question="Name a colour.")
        usage.end()
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert lm.history[-1]["usage"]["prompt_tokens"] == usage.input_tokens
    assert price_of(lm.model) is None  # unknown: never a made-up 0 or NaN


def test_a_provider_that_ignores_response_format_gets_an_explained_error(hosted: Proxy) -> None:
    hosted.reset("strip")  # drops response_format and logprobs from every request
    lm = _lm()
    with dspy.context(lm=lm, adapter=CourseJSONAdapter()):
        try:
            prediction = dspy.Predict("question -> answer: float")(question="What is 3 + 4?")
        except dspy.AdapterParseError as error:
            assert "ignores response_format" in str(error)
            assert MODEL in str(error)
        else:  # the model happened to write a number unconstrained: that parses, and is fine
            assert isinstance(prediction.answer, float)
        prediction = dspy.Predict("question -> answer", logprobs=True)(question="Say yes.")
    assert "response_format" not in hosted.requests[-1]
    # No log-probabilities: Exercise 5's service falls back to agreement across samples.
    assert logprob_confidence(prediction) is None


def test_a_wrong_key_names_the_variable(hosted: Proxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "wrong-key")  # the real server refuses it
    lm = _lm(num_retries=0)
    with pytest.raises(dspy.LMAuthError) as caught:
        lm("Say hi")
    assert "OPENAI_API_KEY" in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1
    assert classify_error(caught.value) == (500, "internal_error")  # as the simulated provider


def test_429_with_retry_after_is_waited_out_by_dspys_retries(hosted: Proxy) -> None:
    hosted.reset("429", retry_after=3.0, failures=1)
    lm = _lm(num_retries=2, cache=False)
    times: list[float] = []

    class Clock(dspy.utils.callback.BaseCallback):
        def on_lm_start(self, call_id, instance, inputs):  # noqa: ANN001
            times.append(time.monotonic())

        def on_lm_end(self, call_id, outputs, exception=None):  # noqa: ANN001
            times.append(time.monotonic())

    with dspy.context(callbacks=[Clock()]):
        assert lm("Say hi", max_tokens=4)
    assert hosted.statuses[:2] == [429, 200]
    # DSPy waited as the provider asked (3 s), not its own first backoff (1 s).
    assert times[-1] - times[0] >= 2.9


def test_no_retry_gives_the_rate_limit_error_exercise_5_maps_to_503(hosted: Proxy) -> None:
    hosted.reset("429", failures=5)
    with pytest.raises(dspy.LMRateLimitError) as caught:
        _lm(num_retries=0, cache=False)("Say hi", max_tokens=4)
    assert caught.value.retry_after == pytest.approx(1.0)
    assert classify_error(caught.value) == (503, "lm_unavailable")


def test_a_slow_provider_is_exercise_5s_504(hosted: Proxy) -> None:
    hosted.reset("slow", delay=4.0)
    lm = _lm(num_retries=0, cache=False, timeout=1)
    with pytest.raises(Exception) as caught:  # noqa: PT011 — its type is what is checked
        lm("Say hi", max_tokens=4)
    assert classify_error(caught.value) == (504, "lm_timeout")


def test_a_dropped_connection_is_exercise_5s_503(hosted: Proxy) -> None:
    hosted.reset("drop", failures=5)
    with pytest.raises(dspy.DSPyError) as caught:
        _lm(num_retries=0, cache=False)("Say hi", max_tokens=4)
    assert classify_error(caught.value) == (503, "lm_unavailable")


def test_cache_history_and_callbacks_behave_as_the_notebooks_say(hosted: Proxy) -> None:
    lm = _lm()
    seen: list[str] = []

    class Seen(dspy.utils.callback.BaseCallback):
        def on_lm_end(self, call_id, outputs, exception=None):  # noqa: ANN001
            seen.append("end")

    with dspy.context(lm=lm, adapter=CourseJSONAdapter(), callbacks=[Seen()]):
        first = dspy.Predict("question -> answer")(question="Name a fruit.")
        sent = len(hosted.requests)
        again = dspy.Predict("question -> answer")(question="Name a fruit.")
    assert again.answer == first.answer and len(hosted.requests) == sent  # a hit: no request
    assert lm.history[-1]["usage"] == {}  # Exercise 1's hit signal
    assert len(lm.history) == 2 and seen == ["end", "end"]


def test_streaming_and_concurrent_acalls(hosted: Proxy) -> None:
    lm = _lm(cache=False)

    async def run() -> tuple[list[str], list[dspy.Prediction]]:
        with dspy.context(lm=lm, adapter=CourseJSONAdapter()):
            program = dspy.streamify(
                dspy.Predict("question -> answer"),
                stream_listeners=[dspy.streaming.StreamListener("answer")],
            )
            chunks = []
            async for item in program(question="Name a planet."):
                if isinstance(item, dspy.streaming.StreamResponse):
                    chunks.append(item.chunk)
            predict = dspy.Predict("question -> answer")
            answers = await asyncio.gather(
                *(predict.acall(question=f"Name a number above {n}.") for n in range(4))
            )
        return chunks, answers

    chunks, answers = asyncio.run(run())
    assert any(request.get("stream") for request in hosted.requests)
    assert chunks, "no answer chunks streamed"
    assert len(answers) == 4 and all(isinstance(a.answer, str) for a in answers)


def test_a_stream_is_not_cut_off_by_another_students_request(class_server: ClassServer) -> None:
    """Requests queue: a second request arriving mid-stream must not end the first one early."""
    import http.client
    import json
    import threading

    def post(body: dict) -> http.client.HTTPResponse:
        connection = http.client.HTTPConnection("127.0.0.1", class_server.port, timeout=300)
        headers = {
            "Authorization": f"Bearer {class_server.api_key}",
            "Content-Type": "application/json",
        }
        connection.request("POST", "/v1/chat/completions", json.dumps(body), headers)
        return connection.getresponse()

    ask = {"model": _class_server.MODEL_ALIAS, "max_tokens": 200, "temperature": 0.0}
    events: list[dict] = []
    under_way = threading.Event()

    def stream() -> None:
        count = {"role": "user", "content": "Count from 1 to 100, one number per line."}
        for line in post({**ask, "stream": True, "messages": [count]}):
            if line.startswith(b"data: {"):
                events.append(json.loads(line.removeprefix(b"data: ")))
                under_way.set()
        under_way.set()

    streaming = threading.Thread(target=stream)
    streaming.start()
    assert under_way.wait(timeout=120)
    other = json.loads(post({**ask, "messages": [{"role": "user", "content": "Say hi."}]}).read())
    streaming.join(timeout=300)
    assert other["choices"][0]["finish_reason"] in {"stop", "length"}
    reasons = [e["choices"][0].get("finish_reason") for e in events if e.get("choices")]
    assert len(reasons) > 20 and reasons[-1] in {"stop", "length"}, (
        f"the stream was cut after {len(reasons)} events: {reasons[-3:]}"
    )
