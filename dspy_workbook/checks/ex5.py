"""Self-checks for Exercise 5 (deployment): each plugs the student's part into the real service.

Every check builds the production app (`dspy_workbook.serving.create_app`) with one of the
student's parts swapped in and the reference for the rest, then sends real requests in-process
(FastAPI's TestClient: no socket, no port). ✅ on every core check means a correct solution passes
the hidden tests, which check the same behaviours. In the notebook: `ex5.check_request_model(
QuestionRequest)` after a task, `ex5.hint("request_model")` for the next hint, `ex5.check_all()`
at the end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import dspy

from ..lm import sim_lm
from ..serving import RateDecision, ServiceParts, Settings, create_app
from ._core import NotAttempted, expect
from ._exercise import Exercise

__all__ = [
    "check_all",
    "check_api_key_task",
    "check_error_mapping",
    "check_rate_limiter",
    "check_request_model",
    "ex",
    "hint",
]

ex = Exercise("Exercise 5 · deployment")

KEYS = {"alice": "alice-key-0123456789", "bob": "bob-key-9876543210"}
ALICE = {"X-API-Key": KEYS["alice"]}
BOB = {"X-API-Key": KEYS["bob"]}
MAX_CHARS = 2000


def _settings(**changes: Any) -> Settings:
    return Settings(api_keys=KEYS, rate_per_second=100, rate_burst=100, lm_timeout=5).with_(
        **changes
    )


def _client(parts: ServiceParts, lm: dspy.LM | None = None, **settings: Any):
    from fastapi.testclient import TestClient

    app = create_app(_settings(**settings), lm=lm or sim_lm(latency=0.0, cache=False), parts=parts)
    return TestClient(app, raise_server_exceptions=False)


def _post(client: Any, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post("/predict", json=body, headers=ALICE if headers is None else headers)


def _surface(response: Any, what: str) -> None:
    """A 500 from the student's own part is a crash in their code: say so, with its type."""
    if response.status_code == 500:
        raise AssertionError(
            f"{what} answered 500: your code raised an exception inside the app "
            "(run it directly on that input to see the traceback)"
        )


# -- Task 1 ---------------------------------------------------------------------------------------
@ex.task(
    "request_model",
    "Task 1 · request validation",
    points=2,
    needs=("QuestionRequest",),
    hints=(
        "A pydantic model can refuse what it does not declare, and trim strings before "
        "checking them: both are settings of the model, not code in a validator.",
        '`model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)`; then the '
        "field's bounds go in `Field(...)`.",
        "`question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description=...)`"
        " — stripping runs first, so a blank question has length 0 and fails `min_length`.",
    ),
)
def check_request_model(QuestionRequest: type) -> str:
    from pydantic import BaseModel, ValidationError

    expect(
        isinstance(QuestionRequest, type) and issubclass(QuestionRequest, BaseModel),
        "`QuestionRequest` must be a pydantic `BaseModel` subclass",
    )
    try:
        QuestionRequest(question="probe")
    except NotImplementedError as exc:
        raise NotAttempted("`QuestionRequest` still raises NotImplementedError") from exc
    except ValidationError as exc:
        raise AssertionError(f"a plain question was refused: {exc.errors()[0]['msg']}") from exc
    with _client(ServiceParts(request_model=QuestionRequest)) as client:
        good = _post(client, {"question": "  What is DSPy?  "})
        _surface(good, "a valid question")
        expect(
            good.status_code == 200, f"a valid question got {good.status_code}: {good.text[:200]}"
        )
        expect(
            good.json()["question"] == "What is DSPy?",
            f"the question came back as {good.json()['question']!r}: strip the whitespace",
        )
        cases = {
            "an empty question": {"question": ""},
            "a question of only spaces": {"question": "   \t "},
            f"a question of {MAX_CHARS + 1} characters": {"question": "x" * (MAX_CHARS + 1)},
            "a number instead of text": {"question": 42},
            "an unknown field": {"question": "ok", "temperature": 2},
            "a body with no question": {},
        }
        for what, body in cases.items():
            response = _post(client, body)
            _surface(response, what)
            expect(response.status_code == 422, f"{what} got {response.status_code}, not 422")
        edge = _post(client, {"question": "y" * MAX_CHARS})
        expect(
            edge.status_code == 200,
            f"a question of exactly {MAX_CHARS} characters got "
            f"{edge.status_code}: the limit is inclusive",
        )
    return (
        "blank, oversized, wrongly typed and unknown fields are 422; a valid question is "
        "trimmed and answered."
    )


# -- Task 2 ---------------------------------------------------------------------------------------
@ex.task(
    "api_key",
    "Task 2 · API-key authentication",
    points=2,
    needs=("check_api_key",),
    hints=(
        "Compare the presented key with every configured key, and refuse with 401 when none "
        "matches — or when there is no key at all.",
        "`hmac.compare_digest(a, b)` compares in constant time (on bytes: encode the strings). "
        'Refuse with `HTTPException(status_code=401, detail=..., headers={"WWW-Authenticate": '
        '"ApiKey"})`.',
        "Loop over `keys.items()`, remember the `name` whose key matches (keep looping: the time "
        "should not depend on which key matched), and `return name`; never put `presented` in the "
        "detail.",
    ),
)
def check_api_key_task(check_api_key: Callable[..., str]) -> str:
    from fastapi import HTTPException

    try:
        name = check_api_key(KEYS["bob"], KEYS)
    except NotImplementedError as exc:
        raise NotAttempted("`check_api_key` still raises NotImplementedError") from exc
    expect(name == "bob", f"the right key of `bob` returned {name!r}, not the client name 'bob'")
    for what, presented in (
        ("no key (None)", None),
        ("an empty key", ""),
        ("a wrong key", "guess-123"),
        ("a key one character short", KEYS["alice"][:-1]),
    ):
        try:
            result = check_api_key(presented, KEYS)
        except HTTPException as exc:
            expect(
                exc.status_code == 401, f"{what} raised HTTPException({exc.status_code}), not 401"
            )
            if presented:
                expect(presented not in str(exc.detail), f"the 401 for {what} repeats the key")
        else:
            raise AssertionError(f"{what} was accepted (returned {result!r})")
    with _client(ServiceParts(check_api_key=check_api_key)) as client:
        statuses = [
            _post(client, {"question": "q"}, h).status_code
            for h in (ALICE, {}, {"X-API-Key": "nope"})
        ]
    expect(statuses == [200, 401, 401], f"through the app: right/none/wrong key gave {statuses}")
    return "a right key names its client; none or a wrong one is 401, and the key is never echoed."


# -- Task 3 ---------------------------------------------------------------------------------------
@ex.task(
    "rate_limit",
    "Task 3 · per-key rate limiter",
    points=2,
    needs=("KeyedTokenBucket",),
    hints=(
        "Exercise 2's bucket, per key: refill by the time elapsed × rate (never above the "
        "burst), then take a token if there is one — but never wait.",
        "Keep `(tokens, updated)` per key in `self.buckets`; a new key starts full "
        "(`self.burst`). Use `time.monotonic()`.",
        "After refilling: `allowed = tokens >= 1`; if allowed, `tokens -= 1`; store it; return "
        "`RateDecision(allowed, self.burst, int(tokens), 0.0 if tokens >= 1 else "
        "(1 - tokens) / self.rate, (self.burst - tokens) / self.rate)`.",
    ),
)
def check_rate_limiter(KeyedTokenBucket: type) -> str:
    bucket = KeyedTokenBucket(rate=20, burst=2)
    try:
        first = asyncio.run(bucket.acquire("k"))
    except NotImplementedError as exc:
        raise NotAttempted("`KeyedTokenBucket.acquire` still raises NotImplementedError") from exc
    expect(
        isinstance(first, RateDecision),
        f"`acquire` returned {type(first).__name__}, not a RateDecision",
    )

    async def burst(limiter: Any, key: str, n: int) -> list[RateDecision]:
        return [await limiter.acquire(key) for _ in range(n)]

    decisions = [first, *asyncio.run(burst(bucket, "k", 2))]
    allowed = [d.allowed for d in decisions]
    expect(allowed == [True, True, False], f"burst 2: three quick requests gave {allowed}")
    expect(
        [d.remaining for d in decisions[:2]] == [1, 0],
        f"`remaining` after each allowed request: {[d.remaining for d in decisions[:2]]}",
    )
    expect(
        0 < decisions[2].retry_after <= 0.05 + 1e-6,
        f"refused at 20/s with an empty bucket, `retry_after` was {decisions[2].retry_after}",
    )
    time.sleep(0.06)
    expect(asyncio.run(bucket.acquire("k")).allowed, "no token came back after 1/rate seconds")
    expect(
        asyncio.run(bucket.acquire("other")).allowed, "another key was refused: one bucket per key"
    )
    time.sleep(0.2)
    expect(asyncio.run(bucket.acquire("k")).remaining <= 1, "the bucket refilled past its burst")
    with _client(ServiceParts(limiter=KeyedTokenBucket(rate=0.5, burst=3))) as client:
        responses = [_post(client, {"question": f"q{i}"}) for i in range(4)]
        other = _post(client, {"question": "b"}, BOB)
    statuses = [r.status_code for r in responses]
    expect(statuses == [200, 200, 200, 429], f"burst 3 through the app gave {statuses}")
    expect(int(responses[3].headers.get("retry-after", "0")) >= 1, "no `Retry-After` on the 429")
    expect(other.status_code == 200, f"bob got {other.status_code} after alice used up her burst")
    return "a burst beyond the limit is 429 with Retry-After; other keys are untouched; refills."


# -- Task 4 ---------------------------------------------------------------------------------------
@ex.task(
    "errors",
    "Task 4 · error mapping",
    points=2,
    needs=("classify_error",),
    hints=(
        "Three outcomes: the model was too slow, the model (or DSPy talking to it) failed, or our "
        "own code has a bug. Order matters: a DSPy timeout is also a DSPy error.",
        "`asyncio.timeout` raises the built-in `TimeoutError`; DSPy raises `dspy.LMTimeoutError`. "
        "Every DSPy failure is a `dspy.DSPyError`.",
        '`if isinstance(exc, (TimeoutError, dspy.LMTimeoutError)): return 504, "lm_timeout"`; then '
        '`dspy.DSPyError` → `(503, "lm_unavailable")`; anything else `(500, "internal_error")`.',
    ),
)
def check_error_mapping(classify_error: Callable[[BaseException], tuple[int, str]]) -> str:
    try:
        got = classify_error(TimeoutError())
    except NotImplementedError as exc:
        raise NotAttempted("`classify_error` still raises NotImplementedError") from exc
    table = {
        "TimeoutError()": (TimeoutError(), (504, "lm_timeout")),
        "dspy.LMTimeoutError()": (dspy.LMTimeoutError("slow"), (504, "lm_timeout")),
        "dspy.LMServerError()": (dspy.LMServerError("down"), (503, "lm_unavailable")),
        "dspy.LMRateLimitError()": (dspy.LMRateLimitError("busy"), (503, "lm_unavailable")),
        "dspy.LMUnexpectedError()": (dspy.LMUnexpectedError("garbled"), (503, "lm_unavailable")),
        "KeyError()": (KeyError("bug"), (500, "internal_error")),
    }
    expect(got == (504, "lm_timeout"), f"`classify_error(TimeoutError())` returned {got!r}")
    for what, (exc, expected) in table.items():
        got = classify_error(exc)
        expect(tuple(got) == expected, f"`classify_error({what})` returned {got!r}")
    parts = ServiceParts(classify_error=classify_error)
    with _client(parts, lm=sim_lm(latency=0.0, error_rate=1.0, num_retries=0, cache=False)) as c:
        failing = _post(c, {"question": "q"})
    with _client(parts, lm=sim_lm(latency=2.0, cache=False), lm_timeout=0.2) as c:
        slow = _post(c, {"question": "q"})
    expect(failing.status_code == 503, f"a failing LM gave {failing.status_code}, not 503")
    expect(
        slow.status_code == 504, f"an LM slower than the timeout gave {slow.status_code}, not 504"
    )
    expect(
        slow.json().get("error", {}).get("type") == "lm_timeout",
        f"the 504's body was {slow.text[:200]}",
    )
    return "time-outs are 504, LM failures 503, bugs 500 — each a JSON body with a request id."


hint, check_all = ex.hint, ex.check_all
