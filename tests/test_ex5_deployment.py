"""Exercise 5 (deployment): the service answers every status code right, from real requests.

Everything runs in-process (httpx's ASGI transport, FastAPI's TestClient) on the simulated
provider, with faults injected through it: errors, time-outs, slow calls. The service's three
graded parts are the master's reference answers (`tools/reference_service.py`: the package has
none). Sockets, workers and Redis are in `test_ex5_workers.py`; the schema fuzz in
`test_ex5_fuzz.py`.
"""

from __future__ import annotations

import asyncio
import json
import random
import time

import dspy
import httpx
import pytest
from dspy.lm15 import Message, Response, TextPart, TokenLogprob, Usage
from fastapi.testclient import TestClient

import dspy_workbook as wb
from dspy_workbook.lm import request_inputs
from dspy_workbook.serving import (
    PARTS_VARIABLE,
    RateDecision,
    ServiceParts,
    Settings,
    agreement_confidence,
    classify_error,
    logprob_confidence,
    parts_from_env,
    standin_parts,
)
from dspy_workbook.serving import create_app as _create_app
from dspy_workbook.serving.logs import capture_logs
from tools import reference_service

KEYS = {"alice": "alice-secret-key-123", "bob": "bob-secret-key-456"}
ALICE = {"X-API-Key": KEYS["alice"]}
BOB = {"X-API-Key": KEYS["bob"]}


def create_app(settings=None, **options):
    """The service with the master's reference parts (unless the test passes its own)."""
    options.setdefault("parts", reference_service.parts())
    return _create_app(settings, **options)


def run(coro, seconds: float = 30):
    return asyncio.run(asyncio.wait_for(coro, seconds))


def settings(**changes) -> Settings:
    base = Settings(api_keys=KEYS, rate_per_second=50, rate_burst=50, lm_timeout=5)
    return base.with_(**changes)


def sim(**options) -> dspy.LM:
    options.setdefault("latency", 0.005)
    return wb.sim_lm(cache=False, **options)


async def post_all(app, requests: list[tuple[dict, dict]]) -> list[httpx.Response]:
    """POST each (json, headers) to /predict in order, through the ASGI transport."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return [
            await client.post("/predict", json=body, headers=headers) for body, headers in requests
        ]


def post(app, body, headers=ALICE) -> httpx.Response:
    return run(post_all(app, [(body, headers)]))[0]


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return body["error"]


# -- success --------------------------------------------------------------------------------------
def test_predict_answers_with_confidence_and_caches():
    lm = sim()
    app = create_app(settings(), lm=lm)
    first, second = run(post_all(app, [({"question": "What is DSPy?"}, ALICE)] * 2))
    assert first.status_code == 200 and second.status_code == 200
    one, two = first.json(), second.json()
    assert one["answer"] == "Simulated answer to: What is DSPy?"
    assert 0.0 <= one["confidence"] <= 1.0 and one["confidence_method"] in ("logprobs", "agreement")
    assert (one["cached"], two["cached"]) == (False, True)
    assert two["answer"] == one["answer"]
    calls = lm.engine.stats.calls
    post(app, {"question": "  what is   dspy?  "})  # same question, other spacing/case: a hit
    assert lm.engine.stats.calls == calls


def test_lifespan_configures_once_and_health_ready_metrics():
    with TestClient(create_app(settings(), lm=sim())) as client:
        assert client.get("/health").json() == {"status": "ok"}
        ready = client.get("/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        client.post("/predict", json={"question": "q1"}, headers=ALICE)
        client.post("/predict", json={"question": "q1"}, headers=ALICE)
        client.post("/predict", json={"question": ""}, headers=ALICE)
        text = client.get("/metrics").text
    assert 'dspy_api_requests_total{method="POST",route="/predict",status="200"} 2.0' in text
    assert "dspy_api_cache_hits_total 1.0" in text and "dspy_api_cache_misses_total 1.0" in text
    assert 'dspy_api_errors_total{type="validation_error"} 1.0' in text
    assert 'dspy_api_request_duration_seconds_bucket{le="+Inf",route="/predict"} 3.0' in text


def test_two_apps_in_one_process_have_separate_metrics_and_lms():
    """A registry per app: building it twice (a notebook cell re-run) never raises, never mixes."""
    lm_a, lm_b = sim(answers={"q": "from A"}), sim(answers={"q": "from B"})
    app_a, app_b = create_app(settings(), lm=lm_a), create_app(settings(), lm=lm_b)
    assert post(app_a, {"question": "q"}).json()["answer"] == "from A"
    assert post(app_b, {"question": "q"}).json()["answer"] == "from B"
    with TestClient(app_a) as client:
        assert "dspy_api_cache_misses_total 1.0" in client.get("/metrics").text


# -- validation -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body, field",
    [
        ({"question": ""}, "question"),
        ({"question": "   \n\t "}, "question"),
        ({"question": "x" * 2001}, "question"),
        ({"question": 42}, "question"),
        ({"question": ["a"]}, "question"),
        ({}, "question"),
        ({"question": "fine", "temperature": 2}, "temperature"),
    ],
)
def test_invalid_bodies_are_422_with_an_actionable_message(body, field):
    response = post(create_app(settings(), lm=sim()), body)
    assert response.status_code == 422
    error = error_of(response)
    assert error["type"] == "validation_error"
    assert field in error["message"] and error["fields"][0]["field"] == field
    assert "x" * 100 not in response.text  # the oversized input is not echoed back


def test_malformed_json_and_oversized_body():
    app = create_app(settings(max_question_chars=100), lm=sim())
    transport = httpx.ASGITransport(app=app)

    async def go():
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            bad = await c.post(
                "/predict",
                content=b"{not json",
                headers={**ALICE, "content-type": "application/json"},
            )
            huge = await c.post("/predict", json={"question": "y" * 5000}, headers=ALICE)
            return bad, huge

    bad, huge = run(go())
    assert bad.status_code == 422 and error_of(bad)["type"] == "validation_error"
    assert huge.status_code == 413 and error_of(huge)["type"] == "payload_too_large"


# -- authentication -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": ""},
        {"X-API-Key": "alice-secret-key-12"},
        {"X-API-Key": "wrong"},
        {"Authorization": KEYS["alice"]},
    ],
)
def test_missing_or_wrong_key_is_401_and_never_echoed(headers):
    lm = sim()
    response = post(create_app(settings(), lm=lm), {"question": "hi"}, headers)
    assert response.status_code == 401
    assert error_of(response)["type"] == "unauthorized"
    assert response.headers["www-authenticate"] == "ApiKey"
    for key in [*KEYS.values(), *headers.values()]:
        if key:
            assert key not in response.text and key not in str(response.headers)
    assert lm.engine.stats.calls == 0  # refused before any LM work


def test_auth_compares_every_key_in_constant_time():
    import hmac

    check = reference_service.solution("check_api_key")
    compared = []

    def compare(a, b):
        compared.append((type(a), type(b)))
        return hmac.compare_digest(a, b)

    assert check(KEYS["alice"], KEYS, compare=compare) == "alice"
    assert compared == [(bytes, bytes)] * len(KEYS)  # every key, after the match too, on bytes
    non_ascii = {"X-API-Key": "clé-ключ".encode()}
    assert post(create_app(settings(), lm=sim()), {"question": "hi"}, non_ascii).status_code == 401


def test_keys_never_reach_the_logs():
    # capture_logs sets the level it needs: an earlier test in this process (the answer key
    # quietens the service's logger) must not decide whether anything is logged here.
    app = create_app(settings(), lm=sim())
    with capture_logs() as entries:
        run(
            post_all(
                app,
                [
                    ({"question": "hi"}, ALICE),
                    ({"question": "hi"}, {"X-API-Key": "guess"}),
                    ({"question": ""}, BOB),
                ],
            )
        )
    access = [e for e in entries if e["msg"] == "request"]
    assert [a["status"] for a in access] == [200, 401, 422]
    for entry in access:
        assert entry["request_id"] and entry["latency_ms"] >= 0
    text = json.dumps(entries)  # each entry is what JsonFormatter wrote, parsed back
    assert all(key not in text for key in [*KEYS.values(), "guess"])
    assert repr(Settings(api_keys=KEYS)).count("secret") == 0


# -- rate limiting --------------------------------------------------------------------------------
def test_burst_beyond_the_limit_is_429_and_another_key_is_unaffected():
    app = create_app(settings(rate_per_second=0.5, rate_burst=3), lm=sim())
    responses = run(
        post_all(
            app, [({"question": f"q{i}"}, ALICE) for i in range(5)] + [({"question": "b"}, BOB)]
        )
    )
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429, 200]
    for response in responses:  # limit headers on every answer
        assert response.headers["x-ratelimit-limit"] == "3"
        assert (
            "x-ratelimit-remaining" in response.headers and "x-ratelimit-reset" in response.headers
        )
    refused = responses[3]
    assert error_of(refused)["type"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert [r.headers["x-ratelimit-remaining"] for r in responses[:3]] == ["2", "1", "0"]


def test_bucket_refills_at_its_rate():
    now = [0.0]
    limiter = reference_service.solution("KeyedTokenBucket")(rate=2, burst=2, clock=lambda: now[0])
    assert [limiter.acquire("k").allowed for _ in range(3)] == [True, True, False]
    assert limiter.acquire("k").retry_after == pytest.approx(0.5)
    now[0] = 0.5
    assert limiter.acquire("k").allowed and not limiter.acquire("k").allowed
    now[0] = 100.0
    assert limiter.acquire("k").remaining == 1  # never more than the burst


def test_an_async_limiter_is_awaited():
    """A shared limiter awaits its store (Redis): the app takes `async def acquire` too."""

    class AsyncNoLimit:
        def __init__(self, rate, burst):
            self.burst = burst

        async def acquire(self, key):
            await asyncio.sleep(0)
            return RateDecision(True, self.burst, self.burst - 1, 0.0, 0.1)

    app = create_app(settings(), lm=sim(), parts=standin_parts(limiter=AsyncNoLimit))
    response = post(app, {"question": "q"})
    assert response.status_code == 200 and response.headers["x-ratelimit-remaining"] == "49"


# -- errors ---------------------------------------------------------------------------------------
def test_lm_failure_is_503_json_without_internals():
    response = post(
        create_app(settings(), lm=sim(error_rate=1.0, num_retries=0)), {"question": "q"}
    )
    assert response.status_code == 503
    error = error_of(response)
    assert error["type"] == "lm_unavailable"
    assert "Traceback" not in response.text and "simulated provider" not in response.text


def test_lm_timeout_is_504():
    app = create_app(settings(lm_timeout=0.2), lm=sim(latency=2.0))
    started = time.monotonic()
    response = post(app, {"question": "slow"})
    assert response.status_code == 504 and error_of(response)["type"] == "lm_timeout"
    assert time.monotonic() - started < 1.5  # gave up at the timeout, did not wait for the LM


def test_not_ready_when_the_lm_fails():
    with TestClient(create_app(settings(), lm=sim(error_rate=1.0, num_retries=0))) as client:
        response = client.get("/ready")
    assert response.status_code == 503 and response.json()["error"]["type"] == "lm_unavailable"


def test_a_bug_is_a_500_json_body_not_a_traceback():
    class Broken(dspy.Module):
        async def aforward(self, question):
            raise KeyError("internal detail")

    app = create_app(settings(), lm=sim(), program=Broken())
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/predict", json={"question": "q"}, headers=ALICE)
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "internal_error"
    assert "internal detail" not in response.text and "Traceback" not in response.text


def test_a_slow_prediction_does_not_stall_other_requests():
    """`acall` awaits the LM: while one prediction waits, the loop serves /health at once."""
    app = create_app(settings(), lm=sim(latency=0.6))

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            started = time.perf_counter()
            slow = asyncio.create_task(c.post("/predict", json={"question": "slow"}, headers=ALICE))
            await asyncio.sleep(0.05)
            health = await c.get("/health")
            health_at = time.perf_counter() - started
            return (await slow), health, health_at

    slow, health, health_at = run(go())
    assert slow.status_code == 200 and health.status_code == 200
    assert health_at < 0.4


def test_request_id_is_propagated_or_generated():
    app = create_app(settings(), lm=sim())

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            mine = await c.get("/health", headers={"X-Request-ID": "trace-42"})
            evil = await c.get("/health", headers={"X-Request-ID": "x" * 500})
            return mine, evil

    mine, evil = run(go())
    assert mine.headers["x-request-id"] == "trace-42"
    assert len(evil.headers["x-request-id"]) == 32


def test_openapi_documents_auth_and_errors():
    schema = create_app(settings(), lm=sim()).openapi()
    assert schema["components"]["securitySchemes"]["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "Your API key (ask the operator for one).",
    }
    responses = schema["paths"]["/predict"]["post"]["responses"]
    assert {"200", "400", "401", "413", "422", "429", "503", "504"} <= set(responses)
    body = schema["components"]["schemas"]["QuestionRequest"]
    assert body["additionalProperties"] is False
    assert body["properties"]["question"]["maxLength"] == 2000


def test_docs_pages_work_offline():
    """/docs and /redoc load every script, style and icon from the app itself, never a CDN: a
    student without network still sees the documentation page."""
    import re

    async def fetch_pages():
        transport = httpx.ASGITransport(app=create_app(settings(), lm=sim()))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            pages = {path: await client.get(path) for path in ("/docs", "/redoc")}
            assets = {}
            for page in pages.values():
                for url in re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text):
                    assets[url] = await client.get(url) if url.startswith("/") else None
            return pages, assets

    pages, assets = run(fetch_pages())
    assert all(page.status_code == 200 for page in pages.values())
    external = [url for url, response in assets.items() if response is None]
    assert not external, f"documentation pages load from outside the app: {external}"
    scripts = [url for url in assets if url.endswith(".js")]
    assert len(scripts) >= 2, assets  # Swagger UI's bundle and ReDoc's
    for url, response in assets.items():
        assert response.status_code == 200 and len(response.content) > 0, url


# -- confidence -----------------------------------------------------------------------------------
class LogprobEngine:
    """A provider that returns token logprobs: sure of 'capital of France', unsure otherwise."""

    supports_response_schema = True
    supported_params = frozenset({"response_format", "temperature", "logprobs", "top_logprobs"})

    def _respond(self, request):
        question = request_inputs(request).get("question", "")
        easy = "capital of France" in question
        text = json.dumps({"answer": "Paris" if easy else "maybe 7"})
        per_token = -0.02 if easy else -1.2
        tokens = tuple(
            TokenLogprob(token=t, logprob=per_token, bytes=None, top=()) for t in text.split()
        )
        return Response(
            id=None,
            model="scripted",
            message=Message.assistant((TextPart(text),)),
            finish_reason="stop",
            usage=Usage(input_tokens=5, output_tokens=5),
            logprobs=tokens if request.config.logprobs is not None else None,
        )

    def complete(self, request):
        return self._respond(request)


class AsyncLogprobEngine(LogprobEngine):
    async def complete(self, request):
        return self._respond(request)


class SamplingEngine(LogprobEngine):
    """No logprobs (like the local model): the answer to a hard question varies between samples."""

    def __init__(self):
        self.rng = random.Random(7)

    def _respond(self, request):
        if request.config.logprobs is not None:
            raise dspy.lm15.UnsupportedFeatureError("no logprobs here", provider="scripted")
        question = request_inputs(request).get("question", "")
        easy = "capital of France" in question
        answer = "Paris" if easy else f"guess {self.rng.randint(1, 50)}"
        return Response(
            id=None,
            model="scripted",
            message=Message.assistant((TextPart(json.dumps({"answer": answer})),)),
            finish_reason="stop",
            usage=Usage(input_tokens=5, output_tokens=5),
        )


class AsyncSamplingEngine(SamplingEngine):
    def __init__(self, sync: SamplingEngine):
        self.rng = sync.rng

    async def complete(self, request):
        return self._respond(request)


def test_confidence_from_logprobs_differs_between_easy_and_hard():
    lm = dspy.LM(
        "openai/scripted", engine=LogprobEngine(), async_engine=AsyncLogprobEngine(), cache=False
    )
    app = create_app(settings(), lm=lm)
    easy, hard = run(
        post_all(
            app,
            [
                ({"question": "What is the capital of France?"}, ALICE),
                ({"question": "How many moons will Mars have in 3025?"}, ALICE),
            ],
        )
    )
    easy, hard = easy.json(), hard.json()
    assert easy["confidence_method"] == hard["confidence_method"] == "logprobs"
    assert easy["confidence"] == pytest.approx(0.98, abs=0.01)
    assert hard["confidence"] == pytest.approx(0.30, abs=0.01)


def test_confidence_from_agreement_when_the_model_has_no_logprobs():
    engine = SamplingEngine()
    lm = dspy.LM(
        "openai/scripted", engine=engine, async_engine=AsyncSamplingEngine(engine), cache=False
    )
    app = create_app(settings(confidence_samples=5), lm=lm)
    easy, hard = run(
        post_all(
            app,
            [
                ({"question": "What is the capital of France?"}, ALICE),
                ({"question": "Pick a number"}, ALICE),
            ],
        )
    )
    easy, hard = easy.json(), hard.json()
    assert easy["confidence_method"] == hard["confidence_method"] == "agreement"
    assert easy["confidence"] == 1.0
    assert hard["confidence"] < 0.5


def test_confidence_functions():
    assert logprob_confidence(None) is None
    assert logprob_confidence({"content": []}) is None
    assert logprob_confidence({"content": [{"logprob": 0.0}, {"logprob": 0.0}]}) == 1.0
    assert 0 < logprob_confidence({"content": [{"logprob": -50.0}]}) < 1e-9
    assert agreement_confidence("Paris.", ["paris", "PARIS", "Lyon"]) == 0.75
    assert agreement_confidence("a", []) == 1.0


# -- settings from the environment ----------------------------------------------------------------
def test_settings_from_env_and_refusals():
    s = Settings.from_env(
        {
            "WORKBOOK_API_KEYS": "alice:k1, k2",
            "WORKBOOK_RATE_PER_SECOND": "2",
            "WORKBOOK_RATE_BURST": "4",
            "WORKBOOK_LM": "sim",
        }
    )
    assert dict(s.api_keys) == {"alice": "k1", "client-2": "k2"}
    assert (s.rate_per_second, s.rate_burst, s.backend) == (2.0, 4, "sim")
    assert "k1" not in repr(s)
    with pytest.raises(ValueError, match="WORKBOOK_RATE_BURST must be a number"):
        Settings.from_env({"WORKBOOK_RATE_BURST": "lots"})
    with pytest.raises(ValueError, match="confidence"):
        Settings(confidence="vibes")
    with pytest.raises(ValueError, match="empty"):
        Settings.from_env({"WORKBOOK_API_KEYS": "alice:"})


def test_no_keys_configured_refuses_everyone():
    assert post(create_app(Settings(), lm=sim()), {"question": "q"}, ALICE).status_code == 401


def test_confidence_on_the_course_simulator_comes_from_logprobs_and_varies():
    app = create_app(settings(), lm=sim())
    answers = [
        r.json()
        for r in run(post_all(app, [({"question": f"Question {i}?"}, ALICE) for i in range(4)]))
    ]
    assert {a["confidence_method"] for a in answers} == {"logprobs"}
    assert len({round(a["confidence"], 6) for a in answers}) > 1


# -- failures by whose fault they are -------------------------------------------------------------
class Fails(dspy.Module):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def aforward(self, **inputs):
        raise self.error


@pytest.mark.parametrize(
    "error, status, error_type",
    [
        (TimeoutError(), 504, "lm_timeout"),
        (dspy.LMTimeoutError("slow"), 504, "lm_timeout"),
        (dspy.ContextWindowExceededError(model="m"), 422, "question_too_long"),
        (dspy.LMAuthError("our provider key was refused"), 500, "internal_error"),
        (dspy.LMConfigurationError("no such model"), 500, "internal_error"),
        (dspy.LMNotConfiguredError("no LM"), 500, "internal_error"),
        (dspy.LMBillingError("out of credit"), 500, "internal_error"),
        (dspy.LMRateLimitError("busy"), 503, "lm_unavailable"),
        (dspy.LMServerError("down"), 503, "lm_unavailable"),
        (
            dspy.AdapterParseError("JSONAdapter", dspy.Signature("q -> a"), "x"),
            503,
            "lm_unavailable",
        ),
        (KeyError("bug"), 500, "internal_error"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_each_failure_gets_the_status_of_whose_fault_it_is(error, status, error_type):
    assert classify_error(error) == (status, error_type)
    app = create_app(settings(), lm=sim(), program=Fails(error))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/predict", json={"question": "q"}, headers=ALICE)
    assert response.status_code == status
    assert response.json()["error"]["type"] == error_type
    assert str(error) not in response.text or not str(error)  # never the exception's text


# -- the parts: explicit, or named by the environment ---------------------------------------------
def test_parts_from_env_by_module_or_file(tmp_path, monkeypatch):
    module = tmp_path / "my_service.py"
    module.write_text(
        "from dspy_workbook.serving import standin_parts\nPARTS = standin_parts()\n"
        "def build():\n    return standin_parts()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert isinstance(parts_from_env({PARTS_VARIABLE: "my_service:PARTS"}), ServiceParts)
    assert isinstance(parts_from_env({PARTS_VARIABLE: f"{module}:build"}), ServiceParts)
    parts = parts_from_env({PARTS_VARIABLE: f"{module}:PARTS"})
    app = _create_app(settings(), lm=sim(), parts=parts)
    assert post(app, {"question": "q"}).status_code == 200
    for value, message in (
        ("", "the service needs its parts"),
        ("my_service", "is 'module:name'"),
        ("no_such_module_here:PARTS", "cannot import"),
        ("my_service:MISSING", "defines no 'MISSING'"),
        (f"{tmp_path / 'absent.py'}:PARTS", "cannot import"),
        ("json:dumps", "not a ServiceParts"),
    ):
        with pytest.raises(ValueError, match=message):
            parts_from_env({PARTS_VARIABLE: value})


def test_a_request_model_that_is_not_pydantic_is_refused_clearly():
    with pytest.raises(TypeError, match="not a pydantic BaseModel subclass"):
        _create_app(settings(), lm=sim(), parts=standin_parts(request_model=lambda n: dict))
