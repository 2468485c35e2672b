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
# A DSPy program in a notebook answers *you*; a service answers anyone who can reach it — clients
# that send nonsense, guess keys or never stop — with a model that is sometimes slow or down. You
# will complete a FastAPI service around a DSPy program, run it, and package it.
#
# **Objectives — you will learn to**
#
# * spot the production bugs in a typical "FastAPI + DSPy" starter;
# * validate requests with pydantic, so that a client gets a `422` saying what to fix;
# * check API keys in constant time, never echoing them;
# * rate-limit each key with a token bucket that *refuses* (`429` + `Retry-After`);
# * answer failures with a status a client can act on; log every request as JSON;
# * run the app under uvicorn from a cell, and package it as a container.
#
# **Prerequisites:** Exercise 2 (`acall`, the token bucket); HTTP status codes and headers. The
# [FastAPI tutorial](https://fastapi.tiangolo.com/tutorial/) covers the FastAPI used here.
#
# | part | what you do | time | points |
# |---|---|---|---|
# | Sections 1–2 | read: the starter's bugs, the service you complete | 3 min | — |
# | Task 1 | `question_model`: validate the request | 4 min | 2 |
# | Task 2 | `check_api_key`: API keys in constant time | 6 min | 3 |
# | Task 3 | `KeyedTokenBucket`: a per-key limiter that refuses | 7 min | 3 |
# | Sections 4–7 | run and read: failures, a real server, logs, a container | 5 min | — |
# | **core** | reading included | **~25 min** | **8** |
# | *going further* | load test, Redis across workers, your own image, AWS Lambda | optional | — |
#
# **How each task works.** Write your code at `YOUR CODE HERE`, run it, then the self-check below:
# ✅ means the hidden tests will pass too, ❌ says what your code did. Each task names its hint
# (every call shows one more). The locked cell after that is the graded test.

# %%
import dspy_workbook as wb

lm = wb.setup()

# %%
import hmac
import logging
import time

import dspy
import httpx
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field

from dspy_workbook import serving
from dspy_workbook.checks import ex5
from dspy_workbook.serving import RateDecision, ServiceParts, Settings, create_app

# The service logs a JSON line per request to stderr: quiet here (section 6 shows them).
logging.getLogger("dspy_workbook.serving").setLevel(logging.CRITICAL)

# %% [markdown]
# ## 1. What is wrong with the usual starter
#
# The chapter's starter, abridged:
#
# ```python
# dspy.configure(model="gpt-4")                                             # (1)
#
# @app.post("/predict")
# async def predict(request: QuestionRequest):
#     try:
#         if not request.question:
#             raise HTTPException(status_code=400, detail="Question required")  # (2)
#         result = program(question=request.question)                          # (3)
#         return {"answer": result.answer, "confidence": 0.95}                 # (4)
#     except Exception as e:
#         raise HTTPException(status_code=500, detail="Prediction failed")
# ```
#
# 1. **No LM is configured**: DSPy reads `lm=`, so the first request fails ("No LM is loaded").
#    Call `dspy.configure(lm=dspy.LM(...))` once at start-up; `dspy.context(lm=...)` per request.
# 2. **The 400 becomes a 500**: the `HTTPException` is raised inside the `try`, and the `except`
#    turns the client's mistake into "server broken". Validate in the request model (Task 1).
# 3. **A blocking call stalls the server**: while `program(...)` waits for the model, the event
#    loop serving *every* request waits too. Await `program.acall(...)` (Exercise 2).
# 4. **A constant confidence says nothing**: it must come from the model (section 4).
#
# ## 2. The service you complete
#
# `dspy_workbook.serving.create_app(settings, lm=..., parts=...)` builds the service: settings
# from the environment (keys never shown), DSPy configured once, predictions awaited with
# `acall`, a request id on every answer, one JSON shape for every error. Three parts have no
# default — they are yours: `ServiceParts(request_model=..., check_api_key=..., limiter=...)`.
#
# ## Task 1 — Validate the request (2 points)
#
# **Why.** A blank question wastes an LM call, a 5 MB one costs money, and a misspelt field
# (`"temperatur": 2`) deserves an error, not silence. FastAPI validates the body against your
# pydantic model *before* your code runs, and answers `422` with the reason.
#
# **Your task.** `question_model(max_chars)` defines the pydantic model class of the body
# `{"question": "..."}` for the limit it is given (a setting) and returns the class. The model
#
# * removes surrounding whitespace first, and hands the trimmed question on;
# * accepts 1 to `max_chars` characters, both included — anything else is a 422;
# * accepts only a string (`42` is a 422);
# * refuses a body with any other field, or without `question`.
#
# `ConfigDict(...)` and `Field(...)` can say all of it. Stuck? `ex5.hint("request_model")`.


# %% nbgrader={"solution": true, "grade_id": "request_model"}
def question_model(max_chars: int) -> type[BaseModel]:
    """The model of `POST /predict`'s body, for questions of at most `max_chars` characters."""

    ### BEGIN SOLUTION
    class QuestionRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
        question: str = Field(min_length=1, max_length=max_chars, examples=["What is DSPy?"])

    return QuestionRequest
    ### END SOLUTION


# %%
ex5.check_request_model(question_model)

# %% nbgrader={"grade": true, "grade_id": "test_request_model", "points": 2}
from fastapi.testclient import TestClient  # noqa: F811 (tests import afresh)

from dspy_workbook.lm import sim_lm
from dspy_workbook.serving import Settings, create_app, standin_parts  # noqa: F811


def _ask(max_chars: int, *bodies: object) -> list:
    """POST each body to a service with your model (and stand-ins for the other parts)."""
    parts = standin_parts(request_model=question_model)
    app = create_app(
        Settings(api_keys={"t": "k"}, max_question_chars=max_chars),
        parts=parts,
        lm=sim_lm(latency=0.0, cache=False),
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        return [client.post("/predict", json=b, headers={"X-API-Key": "k"}) for b in bodies]


_ok, _blank = _ask(2000, {"question": " Why is the sky blue? "}, {"question": "  "})
assert _ok.status_code == 200, f"a valid question got {_ok.status_code}: {_ok.text[:200]}"
assert _ok.json()["question"] == "Why is the sky blue?", f"came back as {_ok.json()['question']!r}"
assert _blank.status_code == 422, f"a blank question got {_blank.status_code}, not 422"
### BEGIN HIDDEN TESTS
_cases = {
    "a question of exactly 40 characters": ({"question": "x" * 40}, 200),
    "40 characters inside spaces": ({"question": "  " + "x" * 40 + "\n"}, 200),
    "a question of 41 characters": ({"question": "x" * 41}, 422),
    "an empty question": ({"question": ""}, 422),
    "tabs and newlines only": ({"question": "\t\n "}, 422),
    "the number 42": ({"question": 42}, 422),
    "null": ({"question": None}, 422),
    "a list": ({"question": ["a"]}, 422),
    "an empty body": ({}, 422),
    "an unknown extra field": ({"question": "ok", "extra": 1}, 422),
    "`Question` spelt with a capital": ({"Question": "case matters"}, 422),
}
for (_what, (_body, _want)), _r in zip(
    _cases.items(), _ask(40, *(b for b, _ in _cases.values())), strict=True
):
    assert _r.status_code == _want, f"with max_chars=40, {_what} got {_r.status_code}, not {_want}"
_r = _ask(40, {"question": "\n a \t"})[0]
assert _r.status_code == 200 and _r.json()["question"] == "a", (
    f"'\\n a \\t' should be answered as 'a': got {_r.status_code} {_r.text[:120]}"
)
_edge, _over = _ask(2000, {"question": "y" * 2000}, {"question": "y" * 2001})
assert (_edge.status_code, _over.status_code) == (200, 422), (
    f"with max_chars=2000, 2000 and 2001 characters got {_edge.status_code} and "
    f"{_over.status_code}, not 200 and 422"
)
### END HIDDEN TESTS

# %% [markdown]
# ## Task 2 — Check API keys in constant time (3 points)
#
# **Why.** LM calls cost money, so the service must know who is calling. Each client gets a long
# random key; the operator lists them in the environment (`WORKBOOK_API_KEYS="alice:…,bob:…"`),
# and clients send theirs in the `X-API-Key` header. Three details make it safe:
#
# * **Constant time.** `a == b` stops at the first differing character, so its duration tells an
#   attacker how much of a guess was right. `hmac.compare_digest(a, b)` takes the same time
#   wherever they differ. It compares `bytes` (a `str` only if ASCII: anything else raises
#   `TypeError`, and a client can send anything), so encode both sides with `.encode()`.
# * **Every key, every time.** Compare with *all* configured keys, even after a match, so the
#   time does not tell which one matched.
# * **Say nothing.** One 401 for a missing and a wrong key, never the key itself in a message.
#
# **Your task.** `check_api_key(presented, keys)` returns the name of the client whose key was
# presented (`keys` maps names to keys); for anything else — no key, empty, wrong — it raises the
# given `refuse`. Compare with `compare` (by default `hmac.compare_digest`; the checks pass one
# that counts its calls), once per configured key, on bytes. Stuck? `ex5.hint("api_key")`.


# %% nbgrader={"solution": true, "grade_id": "api_key"}
def check_api_key(presented: str | None, keys: dict[str, str], compare=hmac.compare_digest) -> str:
    """The name of the client whose key is `presented`; `refuse` (401) otherwise."""
    refuse = HTTPException(401, "missing or invalid API key", {"WWW-Authenticate": "ApiKey"})
    ### BEGIN SOLUTION
    given, found = (presented or "").encode(), None
    for name, key in keys.items():
        if compare(given, key.encode()) and found is None:
            found = name
    if not presented or found is None:
        raise refuse
    return found
    ### END SOLUTION


# %%
ex5.check_api_key_task(check_api_key)

# %% nbgrader={"grade": true, "grade_id": "test_api_key", "points": 3}
import hmac  # noqa: F811 (tests import afresh)

from fastapi import HTTPException  # noqa: F811
from fastapi.testclient import TestClient  # noqa: F811

from dspy_workbook.lm import sim_lm  # noqa: F811
from dspy_workbook.serving import Settings, create_app, standin_parts  # noqa: F811

_keys = {"ann": "ann-key-abcdef", "ben": "ben-key-123456", "cy": "cy-key-987654"}
_name = check_api_key("ben-key-123456", _keys)
assert type(_name) is str and _name == "ben", f"ben's key returned {_name!r}, not 'ben'"
try:
    check_api_key("ben-key-12345", _keys)
except HTTPException as _exc:
    assert _exc.status_code == 401, f"a near miss raised a {_exc.status_code}, not 401"
else:
    raise AssertionError("a key one character short was accepted")
### BEGIN HIDDEN TESTS
for _what, _bad in (
    ("no key (None)", None),
    ("an empty key", ""),
    ("a wrong key", "nope"),
    ("a key with its last character changed", "ann-key-abcdeX"),
    ("a key with a character more", "ann-key-abcdef0"),
    ("a key with non-ASCII characters", "ключ-ann-key"),
):
    try:
        _got = check_api_key(_bad, _keys)
    except HTTPException as _exc:
        assert _exc.status_code == 401, f"{_what} raised a {_exc.status_code}, not 401"
        assert not _bad or _bad not in str(_exc.detail), f"the 401 for {_what} repeats the key"
    except Exception as _exc:
        raise AssertionError(f"{_what} raised {type(_exc).__name__}: {_exc}, not the 401") from None
    else:
        raise AssertionError(f"{_what} was accepted (returned {_got!r})")


def _counting(calls: list):
    def compare(a, b):
        calls.append((type(a), type(b)))
        return hmac.compare_digest(a, b)

    return compare


for _what, _presented in (("ann's key (the first)", "ann-key-abcdef"), ("a wrong key", "zzz")):
    _calls: list = []
    try:
        _got = check_api_key(_presented, _keys, compare=_counting(_calls))
    except HTTPException:
        _got = None
    except Exception as _exc:
        raise AssertionError(f"for {_what} with a counting `compare`: {_exc!r}") from None
    assert _got == ("ann" if _what.startswith("ann") else None), f"{_what} gave {_got!r}"
    assert len(_calls) >= len(_keys), (
        f"for {_what}, `compare` was called {len(_calls)} time(s) with {len(_keys)} keys "
        "configured: call the `compare` you are given (not `==`, nor `hmac.compare_digest` by "
        "name: the tests count calls to `compare`), once for every key, even after a match"
    )
    assert all(t == (bytes, bytes) for t in _calls), (
        f"`compare` got {sorted({f'{a.__name__}, {b.__name__}' for a, b in _calls})}: "
        "encode both sides to bytes"
    )
_app = create_app(
    Settings(api_keys=_keys),
    lm=sim_lm(latency=0.0, cache=False),
    parts=standin_parts(check_api_key=check_api_key),
)
with TestClient(_app, raise_server_exceptions=False) as _c:
    _headers = (
        {"X-API-Key": "cy-key-987654"},
        {},
        {"X-API-Key": "ann-key-abcdeX"},
        {"X-API-Key": "clé-ключ".encode()},
    )
    _r = [_c.post("/predict", json={"question": "q"}, headers=_h) for _h in _headers]
_statuses = [r.status_code for r in _r]
assert _statuses == [200, 401, 401, 401], (
    f"through the app, right / no / wrong / non-ASCII key gave {_statuses}, "
    "not [200, 401, 401, 401]"
)
assert "ann-key-abcdeX" not in _r[2].text, "the 401's body repeats the wrong key"
### END HIDDEN TESTS

# %% [markdown]
# ## Task 3 — Rate-limit each key, and refuse (3 points)
#
# **Why.** One client in a loop can spend everyone's LM budget. Per key, a **bucket** holds up to
# `burst` tokens, refilled continuously at `rate` per second; a request takes one. Exercise 2's
# `TokenBucket` *waits* for a token — right for a client pacing itself, wrong for a server, where
# a waiting request holds a connection its client has long given up on. A server **refuses** at
# once: `429 Too Many Requests`, with headers the app builds from your `RateDecision` (it rounds
# your seconds up to whole ones for the headers; give them exact):
#
# | field | header | meaning |
# |---|---|---|
# | `allowed` | status 200 or 429 | a whole token was there, and was taken |
# | `limit` | `X-RateLimit-Limit` | `burst` |
# | `remaining` | `X-RateLimit-Remaining` | whole tokens left after this request (round down) |
# | `retry_after` | `Retry-After` | **seconds** until a token is back; `0.0` only if one is left |
# | `reset` | `X-RateLimit-Reset` | **seconds** until the bucket is full (not a clock time) |
#
# **Your task.** `KeyedTokenBucket.acquire(key)` refills `key`'s bucket for the time since its
# last update (never above `burst`; a new key starts full), takes a token if there is a whole
# one, and returns the `RateDecision`. Read the time only with `self.clock()`: the checks pass a
# fake clock, so they never sleep. `acquire` never waits, so nothing else runs in the middle of
# it and it needs no lock. Stuck? `ex5.hint("rate_limit")`.


# %% nbgrader={"solution": true, "grade_id": "rate_limit"}
class KeyedTokenBucket:
    """One token bucket per key; `acquire` refuses instead of waiting."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic) -> None:
        self.rate, self.burst, self.clock = float(rate), int(burst), clock
        self.buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, time of last update)

    def acquire(self, key: str) -> RateDecision:
        """Take a token from `key`'s bucket if there is a whole one; never wait."""
        ### BEGIN SOLUTION
        now = self.clock()
        tokens, updated = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - updated) * self.rate)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self.buckets[key] = (tokens, now)
        retry_after = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
        return RateDecision(
            allowed, self.burst, int(tokens), retry_after, (self.burst - tokens) / self.rate
        )
        ### END SOLUTION


# %%
ex5.check_rate_limiter(KeyedTokenBucket)

# %% nbgrader={"grade": true, "grade_id": "test_rate_limit", "points": 3}
from fastapi.testclient import TestClient  # noqa: F811 (tests import afresh)

from dspy_workbook.lm import sim_lm  # noqa: F811
from dspy_workbook.serving import RateDecision, Settings, create_app, standin_parts  # noqa: F811

_now = [100.0]
_bucket = KeyedTokenBucket(rate=2, burst=3, clock=lambda: _now[0])
_d = [_bucket.acquire("k") for _ in range(4)]
assert all(type(d) is RateDecision for d in _d), f"acquire returned {type(_d[0]).__name__}"
assert [d.allowed for d in _d] == [True, True, True, False], (
    f"burst 3 gave {[d.allowed for d in _d]}"
)
_now[0] += 0.5
assert _bucket.acquire("k").allowed, "no token came back 0.5 s later at 2 tokens/s"
### BEGIN HIDDEN TESTS
_rem = [d.remaining for d in _d]
assert _rem == [2, 1, 0, 0] and all(type(r) is int for r in _rem), (
    f"`remaining` after four quick requests was {_rem}, not the whole numbers [2, 1, 0, 0]"
)
assert all(d.limit == 3 for d in _d), f"`limit` was {[d.limit for d in _d]}, not the burst 3"
assert _d[0].retry_after == 0.0, f"`retry_after` with tokens left was {_d[0].retry_after}, not 0"
assert abs(_d[2].retry_after - 0.5) < 1e-6, (
    f"after taking the last token at 2/s, `retry_after` was {_d[2].retry_after}, not 0.5 s"
)
assert abs(_d[3].retry_after - 0.5) < 1e-6, (
    f"refused with an empty bucket at 2/s, `retry_after` was {_d[3].retry_after}, not 0.5"
)
assert abs(_d[0].reset - 0.5) < 1e-6 and abs(_d[2].reset - 1.5) < 1e-6, (
    f"`reset` after 1 and 3 requests was {_d[0].reset} and {_d[2].reset}, not 0.5 and 1.5 "
    "(seconds until full)"
)
_now[0] += 0.25
_half = _bucket.acquire("k")
assert not _half.allowed and abs(_half.retry_after - 0.25) < 1e-6, (
    f"with half a token, got allowed={_half.allowed}, retry_after={_half.retry_after}; "
    "want a refusal and 0.25 s"
)
assert _bucket.acquire("other").remaining == 2, "a new key did not start with a full bucket"
_now[0] += 1000
_full = [_bucket.acquire("k") for _ in range(4)]
assert [d.allowed for d in _full] == [True, True, True, False], (
    f"after a long pause a burst gave {[d.allowed for d in _full]}: never above the burst"
)
_now[0] += 0.875  # 1.75 tokens: one is taken, 0.75 of one is left
_part = _bucket.acquire("k")
assert _part.allowed and _part.remaining == 0, (
    f"with 1.75 tokens, got allowed={_part.allowed}, remaining={_part.remaining!r}; "
    "want True and 0 (0.75 is not a whole token)"
)
_parts = standin_parts(limiter=KeyedTokenBucket)
_app = create_app(
    Settings(api_keys={"ann": "a", "ben": "b"}, rate_per_second=0.5, rate_burst=3),
    lm=sim_lm(latency=0.0, cache=False),
    parts=_parts,
)
with TestClient(_app, raise_server_exceptions=False) as _c:
    _r = [
        _c.post("/predict", json={"question": f"q{i}"}, headers={"X-API-Key": "a"})
        for i in range(5)
    ]
    _other = _c.post("/predict", json={"question": "b"}, headers={"X-API-Key": "b"})
_statuses = [r.status_code for r in _r]
assert _statuses == [200, 200, 200, 429, 429], (
    f"a burst of 5 at burst 3 through the app gave {_statuses}"
)
_h = [(r.headers.get("X-RateLimit-Remaining"), r.headers.get("X-RateLimit-Reset")) for r in _r]
assert [h[0] for h in _h] == ["2", "1", "0", "0", "0"], (
    f"X-RateLimit-Remaining was {[h[0] for h in _h]}"
)
assert all(h[1] is not None and 0 < int(h[1]) <= 6 for h in _h), (
    f"X-RateLimit-Reset was {[h[1] for h in _h]}: seconds until full, at most 3 / 0.5 = 6"
)
assert int(_r[3].headers.get("Retry-After", "0")) >= 1, "the 429 had no Retry-After of >= 1 s"
assert _other.status_code == 200, f"another key got {_other.status_code} after ann's burst"
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Your service, assembled
#
# From here on the notebook runs *your* service. **Confidence** (bug 4) is measured: from token
# log-probabilities when the model returns them, else from agreement between a few answers
# sampled at temperature 1.0. Neither is the probability of being *right*, but both move with
# the model's certainty; `confidence_method` says which was used.


# %% tags=["nbval-ignore-output"]
def my_service(settings: Settings, **options) -> FastAPI:
    """The real app, with your three parts (and a fresh limiter of its own)."""
    parts = ServiceParts(
        request_model=question_model, check_api_key=check_api_key, limiter=KeyedTokenBucket
    )
    return create_app(settings, lm=lm, parts=parts, **options)


KEYS = {"alice": "alice-demo-key-1", "bob": "bob-demo-key-2"}  # really: WORKBOOK_API_KEYS
ALICE, BOB = {"X-API-Key": KEYS["alice"]}, {"X-API-Key": KEYS["bob"]}
settings = Settings(api_keys=KEYS, rate_per_second=0.2, rate_burst=5)  # then 1 per 5 s
print(settings)
with TestClient(my_service(settings)) as client:
    for question in ("What is the capital of France?", "What will the weather be on 3 May 2091?"):
        response = client.post("/predict", json={"question": question}, headers=BOB)
        body = response.json()
        if response.status_code != 200:  # e.g. 504: a busy model took over settings.lm_timeout
            print(f"{response.status_code} {body['error']['type']:9} {question}")
            continue
        print(
            f"{body['confidence']:.2f} {body['confidence_method']:9} {question} -> {body['answer']!r}"
        )

# %% [markdown]
# ## 5. Failures a client can act on
#
# When answering fails, *whose fault it is* decides what the client should do. The service's
# `classify_error` (in `dspy_workbook/serving/errors.py`) decides; the app answers with the JSON
# error body and request id — never the exception's text, which may hold a prompt or a key:
#
# | what happened | status | the client should |
# |---|---|---|
# | no answer in time: `TimeoutError`, `dspy.LMTimeoutError` | 504 | retry later |
# | the question does not fit the model: `dspy.ContextWindowExceededError` | 422 | shorten it |
# | *our* LM setup: `dspy.LMAuthError`, `LMConfigurationError`, `LMBillingError` | 500 | report it |
# | any other `dspy.DSPyError`: the model is down, rate-limited, garbled | 503 | back off |
# | anything else: a bug in our code | 500 | report it |
#
# Order matters: timeouts and context-window errors are `DSPyError`s too. A program raising each:


# %%
class Fails(dspy.Module):
    """A program that raises `error` instead of answering."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def aforward(self, **inputs):
        raise self.error


for error in (
    TimeoutError(),
    dspy.ContextWindowExceededError(model="demo"),
    dspy.LMAuthError("provider rejected our key"),
    dspy.LMRateLimitError("provider busy"),
    KeyError("bug"),
):
    with TestClient(my_service(settings, program=Fails(error)), raise_server_exceptions=False) as c:
        reply = c.post("/predict", json={"question": "Why?"}, headers=ALICE)
    print(f"{type(error).__name__:27} -> {reply.status_code} {reply.json()['error']['type']}")

# %% [markdown]
# ## 6. Run it: a real HTTP server on this machine
#
# A deployed service runs under an ASGI server, **uvicorn**. `serving.start_background` starts
# one in a background thread of this kernel on `127.0.0.1` (this machine only), port 8000 or the
# next free one; running the cell again replaces it. Open the printed URL plus `/docs` in your
# browser: FastAPI documents the API from your code.

# %% tags=["nbval-ignore-output"]
served = my_service(settings)
server = serving.start_background(served, host="127.0.0.1", port=8000, name="exercise5")
BASE = server.url
print(f"Running API server accessible at {BASE}")
print(httpx.get(f"{BASE}/health").json(), httpx.get(f"{BASE}/ready").json())

# %% [markdown]
# Now call it over HTTP: a success, a missing key, a blank question, a burst beyond bob's limit.
# Then each request's log line — JSON, with the client's *name*, never its key — and a counter
# from `GET /metrics`, which Exercise 6 scrapes.

# %% tags=["nbval-ignore-output"]
with serving.logs.capture_logs() as entries, httpx.Client(base_url=BASE, timeout=30) as http:
    ok = http.post("/predict", json={"question": "What is DSPy?"}, headers=ALICE)
    no_key = http.post("/predict", json={"question": "What is DSPy?"})
    blank = http.post("/predict", json={"question": "   "}, headers=ALICE)
    burst = [http.post("/predict", json={"question": "Burst?"}, headers=BOB) for _ in range(8)]
    metrics = http.get("/metrics").text
print("success:", ok.status_code, "| remaining", ok.headers["X-RateLimit-Remaining"])
print("no key: ", no_key.status_code, no_key.json()["error"]["message"])
print("blank:  ", blank.status_code, blank.json()["error"]["message"])
print("burst:  ", [r.status_code for r in burst], "| Retry-After", burst[-1].headers["Retry-After"])
for entry in entries[:3]:
    print({k: entry.get(k) for k in ("request_id", "path", "status", "latency_ms", "client")})
print(*[m for m in metrics.splitlines() if m.startswith("dspy_api_requests_total")], sep="\n")

# %% [markdown]
# ## 7. Ship it as a container
#
# A container image holds the service, its pinned dependencies and the command that starts it;
# a platform (Kubernetes, Cloud Run, ECS) runs copies of it. For this service, on a hosted model:
#
# ```dockerfile
# FROM python:3.11-slim
# WORKDIR /app
# COPY constraints.txt .
# RUN pip install --no-cache-dir -c constraints.txt dspy fastapi fastapi-offline uvicorn prometheus-client
# COPY dspy_workbook/ dspy_workbook/
# COPY my_service.py .
# ENV WORKBOOK_SERVICE_PARTS=my_service:PARTS WORKBOOK_LM=openai/gpt-4o-mini
# USER 10001
# HEALTHCHECK CMD python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/health')"
# CMD ["uvicorn", "--factory", "dspy_workbook.serving.app:app_from_env", "--host", "0.0.0.0"]
# ```
#
# Pinned versions, not root, a health check, your parts in `my_service.py` (*going further*), and
# no key in the image: the process reads its configuration from the environment
# (`docker run -e WORKBOOK_API_KEYS=… -e OPENAI_API_KEY=… my-service`), as below without Docker.

# %%
container_env = {"WORKBOOK_API_KEYS": "ops:key-from-the-environment", "WORKBOOK_RATE_BURST": "3"}
print(Settings.from_env(container_env))
with TestClient(my_service(Settings.from_env(container_env))) as container:
    print("HEALTHCHECK:", container.get("/health").status_code, container.get("/health").json())

# %% [markdown]
# ## Going further (optional, ungraded)
#
# Nothing below is graded, and nothing needs more than your three parts. The service's own code
# is in your workbook folder, `dspy_workbook/serving/` — read it next to the prose.
#
# ### A small load test
#
# How fast is the service, and how much does the answer cache buy? 4 clients send 60 requests
# over 10 distinct questions, over HTTP. A question's first request is a **miss** (the model
# answers); a repeat is a **hit** (the cache answers) — unless it arrives while the first answer
# is still being computed (the service does not merge concurrent identical requests). The
# limiter would refuse most of them, so the server restarts (same port) with a limit high enough
# to measure the service, not the limiter. Bounded: 60 requests, each with a 30 s timeout —
# about 10–30 s on the local model (the progress bar shows how far it is).

# %% tags=["nbval-ignore-output"]
import asyncio

from IPython.display import display

from dspy_workbook.caching import progress
from dspy_workbook.stats import summary_table

server = serving.start_background(
    my_service(settings.with_(rate_per_second=10_000, rate_burst=10_000)),
    host="127.0.0.1",
    port=8000,
    name="exercise5",
)


async def load_test(url: str, questions: list[str], repeats: int, concurrency: int) -> list[dict]:
    """Send every question `repeats` times with `concurrency` clients; record each outcome."""
    work = [q for _ in range(repeats) for q in questions]
    limit = asyncio.Semaphore(concurrency)

    async def one(http: httpx.AsyncClient, question: str) -> dict:
        async with limit:
            started = time.perf_counter()
            response = await http.post("/predict", json={"question": question}, headers=ALICE)
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
hits = [r["seconds"] for r in results if r["status"] == 200 and r["cached"]]
misses = [r["seconds"] for r in results if r["status"] == 200 and not r["cached"]]
print(
    f"{len(results)} requests in {elapsed:.2f} s = {len(results) / elapsed:.0f} requests/s; "
    f"statuses {sorted({r['status'] for r in results})}"
)
table = summary_table({"cache hit": hits, "cache miss": misses})
display(table[["count", "p50 ms", "p95 ms", "p99 ms"]].round(2))

# %% tags=["nbval-ignore-output"]
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(7, 3))
width = 0.38
for offset, (name, row) in zip((-width / 2, width / 2), table.iterrows(), strict=True):
    values = [row["p50 ms"], row["p95 ms"], row["p99 ms"]]
    ax.bar([i + offset for i in range(3)], values, width, label=f"{name} (n={int(row['count'])})")
ax.set_xticks(range(3), ["p50", "p95", "p99"])
ax.set_ylabel("latency (ms, log scale)")
ax.set_yscale("log")
ax.set_title("/predict over HTTP, 4 concurrent clients")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # beside, not on, the bars
fig.tight_layout()
plt.show()

# %% [markdown]
# A hit skips the model, so it costs what the web stack costs (the table's first row) — and much
# of that is the HTTP client and the server sharing this one kernel, its event loop and the
# machine's cores; a load generator in a process of its own measures less. A miss costs what the
# model costs. On a hosted model the gap is larger still
# (hundreds of milliseconds), which is why a cache in front of an LM is the first optimisation to
# make — and why its hit rate is one of the metrics Exercise 6 watches. Stop the server (the port
# is free again afterwards):

# %%
server.stop()
print("server running:", server.running)

# %% [markdown]
# ### The starter's bugs 2 and 3, live
#
# A six-line app built the starter's way, driven in-process: the empty question's 400 comes back
# as a 500, and a blocking call makes `/health` wait for the prediction.

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
blocked = await health_while_predicting(starter)
print(f"/health answered after {blocked:.2f} s with the blocking call (it waited)")
print(f"/health answered after {await health_while_predicting(awaiting):.2f} s with an await")

# %% [markdown]
# ### The API documents itself
#
# FastAPI serves the OpenAPI schema at `/openapi.json` and the interactive page at `/docs`, both
# generated from the code: your request model's limits (if you used `Field(...)`, they appear as
# `minLength`/`maxLength`), the `X-API-Key` scheme (the "Authorize" button) and every error
# response with its shape — so the documentation cannot drift from what the service does.

# %%
schema = served.openapi()
print("security scheme:", schema["components"]["securitySchemes"])
print("POST /predict answers:", sorted(schema["paths"]["/predict"]["post"]["responses"]))

# %% [markdown]
# ### More than one process: Redis for the limiter and the cache
#
# One uvicorn process runs its Python — routes, validation, JSON — on one core at a time (the
# GIL; the local model's llama.cpp threads run outside it, so a model-bound process can keep more
# than one core busy). `uvicorn --workers 4` starts four processes behind one port — and quietly
# breaks two things you built: each worker has its **own** token buckets, so a client gets 4× its
# limit, and its **own** answer cache, so a question answered by one worker is a miss on the other
# three. Shared state has to live outside the workers. With `WORKBOOK_REDIS_URL=redis://…` the
# service keeps each bucket in Redis and updates it with one Lua script (`RedisRateLimiter` in
# `dspy_workbook/serving/redis_limiter.py`) — Redis runs a script atomically, on its own clock, so every
# worker sees one bucket — and keeps answers there too, with a time-to-live:
#
# ```bash
# redis-server --port 6379 --bind 127.0.0.1 --save "" &
# WORKBOOK_LM=sim WORKBOOK_API_KEYS="alice:secret" WORKBOOK_REDIS_URL=redis://127.0.0.1:6379/0 \
#   WORKBOOK_SERVICE_PARTS=my_service:PARTS \
#   uvicorn --factory dspy_workbook.serving.app:app_from_env --workers 2 --port 8000
# ```
#
# (`my_service.py` is described in the next part.) The course's tests run exactly this: over 40
# requests spread across two workers, no more are admitted than the burst plus rate × time, and
# an answer cached by one worker is a hit on the other (`X-Served-By` names the worker).
# **Metrics** stay per process, and the workers share one listening socket: a scrape of the port
# reaches whichever worker accepts it, so they cannot be scraped one by one. Use
# prometheus-client's multiprocess mode (every worker writes to a shared directory, one endpoint
# adds them up), or run one process per port and scrape each port.
#
# ### What an adversarial review broke, and how the service holds now
#
# * **A body limit must count bytes received.** `Content-Length` is a promise the client makes;
#   a chunked body makes none. The service wraps the ASGI `receive` and answers 413 at the limit,
#   so five 10 MB chunked bodies leave a worker at ~103 MB (they took it to 170 MB before).
# * **Label values come from a closed set.** Every label value is a time series kept for the life
#   of the process: 500 invented HTTP methods once made 501 series. `method` is now a standard
#   method or `other`.
# * **Shared state needs a failure policy.** Every Redis call is bounded (redis-py's defaults wait
#   5 s and retry), an outage is logged once (a circuit breaker), the cache treats it as a miss,
#   and the limiter fails open (`WORKBOOK_WHEN_REDIS_DOWN=allow`, counted in
#   `dspy_api_redis_unavailable_total`) or closed (`refuse`: 503 + `Retry-After`). Try
#   `kill -STOP` on redis-server with each.
# * **Even a 500 carries the request id.** Starlette's `ServerErrorMiddleware` sits outside every
#   user middleware, so the service catches bugs inside its own middleware and answers a 500 with
#   `X-Request-ID` — the id a client must quote.
# * **Check secrets at configuration.** Header values arrive as latin-1, so a UTF-8 key such as
#   `ключ-secret` could be configured but never matched: such keys are refused at start-up, with
#   the client's name and never the key.

# ### Your own container image
#
# A process started by `uvicorn` (or Docker, or Lambda) cannot see this notebook, so your three
# parts go in a module, `my_service.py`, next to `dspy_workbook/`: copy the three solution cells
# into it with the imports they use (`hmac`, `time`, `HTTPException`, `BaseModel`, `ConfigDict`,
# `Field`, `RateDecision`, `ServiceParts`), and end it with
#
# ```python
# PARTS = ServiceParts(request_model=question_model, check_api_key=check_api_key,
#                      limiter=KeyedTokenBucket)
# ```
#
# `WORKBOOK_SERVICE_PARTS=my_service:PARTS` then names them for
# `dspy_workbook.serving.app:app_from_env`, which builds the app from the environment alone. The
# recipe of section 7 builds the image (`docker build -t my-service .`), given a Docker daemon —
# which the course machines do not have. Before that, try the command itself on your machine:
# `WORKBOOK_LM=sim WORKBOOK_API_KEYS=me:secret WORKBOOK_SERVICE_PARTS=my_service:PARTS uvicorn
# --factory dspy_workbook.serving.app:app_from_env`. For a real image, also pin the base image's
# digest, build llama.cpp in a separate stage, and keep the model in the image (or use a hosted
# model) so that a cold start needs no download.
#
# ### AWS Lambda, Cloud Run, Cloud Functions
#
# On AWS Lambda there is no server process: API Gateway hands the function an *event* (a JSON
# description of the HTTP request) and expects a JSON description of the response. **Mangum**
# translates both ways, so the same ASGI app runs unchanged
# (`dspy_workbook.serving.lambda_handler.handler`, with `WORKBOOK_SERVICE_PARTS` naming your
# parts). Here is your service, answering a sample API Gateway event without any network:

# %%
from dspy_workbook.serving.lambda_handler import make_handler
from dspy_workbook.threads import run_with_timeout

my_parts = ServiceParts(
    request_model=question_model, check_api_key=check_api_key, limiter=KeyedTokenBucket
)
handler = make_handler(settings, lm=lm, parts=my_parts)
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
# **Google Cloud Run** runs the *container* of section 7 as it is: it sets `$PORT` (run uvicorn
# with `--port $PORT`), scales instances with traffic (down to zero), and passes secrets as
# environment variables from Secret Manager — so `WORKBOOK_API_KEYS` never enters the image.
# **Cloud Functions (2nd gen)** is built on Cloud Run; deploying the same container to Cloud Run
# is the simpler path for an ASGI app. On every platform, keep the limiter and the cache in a
# shared store once there is more than one instance.
#
# ## Check everything
#
# `ex5.check_all()` runs every self-check again on what your notebook defines now.

# %%
ex5.check_all()

# %% [markdown]
# ## How to submit
#
# 1. Save the notebook (**File → Save**, or Ctrl-S).
# 2. **Kernel → Restart Kernel and Run All Cells…**: the grader runs your notebook top to bottom in a
#    fresh kernel, so this shows what it will see. It must reach `check_all()` without stopping; if
#    it stops at a graded cell, that task is unfinished.
# 3. Press **Validate** in the notebook's toolbar: it runs the notebook the way the grader does and
#    reports any test cell that fails.
# 4. Hand it in: on the course JupyterHub, **Nbgrader → Assignment List**, then **Submit** next to
#    `ch07`; working on your own machine (`make lab`), upload the saved `05_deployment.ipynb` where your
#    instructor asked.
#
# ## Questionnaire
#
# 1. In the starter, why does an empty question produce a 500 and not the 400 it raises? Give two
#    ways to fix it.
# 2. Why does one slow LM call in a synchronous `program(...)` make *every* request slow, while
#    one slow `await program.acall(...)` does not? Which starter route would a load balancer's
#    health check then mark as down?
# 3. What does a client learn from the *time* a `==` comparison of keys takes? Why compare
#    against every key, even after one matched — and why on bytes?
# 4. A server's limiter refuses, a client's limiter waits (Exercise 2). Why is waiting wrong on
#    the server side? What should a client do with `Retry-After`?
# 5. Why is the limit per key and not global? What would a global limit let one client do?
# 6. The LM timed out: why 504 and not 500? The provider rejected *our* key: why 500 and not 503
#    — what would a client do differently with each?
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
# * [Prometheus: metric and label naming](https://prometheus.io/docs/practices/naming/), and
#   [prometheus-client's multiprocess mode](https://prometheus.github.io/client_python/multiprocess/).
# * [Mangum](https://mangum.fastapiexpert.com/) and
#   [Cloud Run: containers](https://cloud.google.com/run/docs/deploying).
# * DSPy's [deployment tutorial](https://dspy.ai/tutorials/deployment/) — compare its
#   `dspy.asyncify` route with this exercise's native `acall`.
#
# **Done.** You have a DSPy service that refuses what it should, shares capacity fairly, fails
# usefully, documents itself, and reports what it does — Exercise 6 will watch it.
