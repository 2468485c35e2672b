"""Self-checks for Exercise 5 (deployment): each plugs the student's part into the real service.

Every check builds the production app (`dspy_workbook.serving.create_app`) with the student's part
and the package's stand-ins for the other two (`serving.standin_parts`: no answer to any task is
in this package), then sends it real requests in-process (FastAPI's TestClient: no socket, no
port). The checks exercise exactly the behaviours each task's text states, which are the ones the
hidden tests grade — so ✅ means full marks. In the notebook: `ex5.check_request_model(
question_model)` after a task, `ex5.hint("request_model")` for the next hint, `ex5.check_all()`
at the end.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable
from typing import Any

import dspy

from ..lm import sim_lm
from ..serving import RateDecision, Settings, create_app, standin_parts
from ._core import call_student, expect, expect_callable, student_line
from ._exercise import Exercise

__all__ = [
    "check_all",
    "check_api_key_task",
    "check_rate_limiter",
    "check_request_model",
    "ex",
    "hint",
]

ex = Exercise("Exercise 5 · deployment")

KEYS = {"alice": "alice-key-0123456789", "bob": "bob-key-9876543210", "carol": "carol-key-555"}
ALICE = {"X-API-Key": KEYS["alice"]}
BOB = {"X-API-Key": KEYS["bob"]}


def _client(parts: Any, lm: dspy.LM | None = None, **settings: Any):
    from fastapi.testclient import TestClient

    base = Settings(api_keys=KEYS, rate_per_second=100, rate_burst=100, lm_timeout=5)
    app = create_app(base.with_(**settings), lm=lm or sim_lm(latency=0.0, cache=False), parts=parts)
    return TestClient(app, raise_server_exceptions=False)


def _post(client: Any, body: Any, headers: dict[str, Any] | None = None) -> Any:
    return client.post("/predict", json=body, headers=ALICE if headers is None else headers)


def _surface(response: Any, what: str) -> None:
    """A 500 from the student's own part is a crash in their code: say so."""
    if response.status_code == 500:
        raise AssertionError(
            f"{what} answered 500: your code raised an exception inside the app "
            "(call it directly on that input to see the traceback)"
        )


# -- Task 1 ---------------------------------------------------------------------------------------
# Both length cases fail when the whitespace is removed only after the bounds were checked.
_TRIM_FIRST = " — remove the whitespace first, then check the length"


@ex.task(
    "request_model",
    "Task 1 · request validation",
    points=2,
    needs=("question_model",),
    hints=(
        "Inside `question_model`, define a pydantic model class with one field, `question`, and "
        "return the class. Trimming and refusing unknown fields are settings of the whole model; "
        "the length bounds belong to the field.",
        '`model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)` in the class body; '
        "the bounds go in `Field(...)`, using the `max_chars` argument — not a number of your own.",
        "`question: str = Field(min_length=1, max_length=max_chars)` — trimming runs first, so a "
        "blank question has length 0 and fails `min_length`; then `return` the class.",
    ),
)
def check_request_model(question_model: Callable[[int], type]) -> str:
    from pydantic import BaseModel

    expect_callable(question_model, "question_model")
    model = call_student("`question_model(2000)`", question_model, 2000)
    expect(
        isinstance(model, type) and issubclass(model, BaseModel),
        f"`question_model(2000)` returned {model!r}, not a pydantic `BaseModel` subclass",
    )
    parts = standin_parts(request_model=question_model)
    for max_chars in (2000, 30):
        with _client(parts, max_question_chars=max_chars) as c:
            good = _post(c, {"question": "  What is DSPy?  "})
            _surface(good, "a valid question")
            expect(
                good.status_code == 200,
                f"a valid question got {good.status_code}: {good.text[:200]}",
            )
            expect(
                good.json()["question"] == "What is DSPy?",
                f"the question came back as {good.json()['question']!r}: strip the whitespace",
            )
            # what -> (body, expected status, advice when it is not)
            cases = {
                f"a question of exactly {max_chars} characters": (
                    {"question": "y" * max_chars},
                    200,
                    "",
                ),
                f"{max_chars} characters between spaces": (
                    {"question": " " + "y" * max_chars + " "},
                    200,
                    _TRIM_FIRST,
                ),
                f"a question of {max_chars + 1} characters": (
                    {"question": "x" * (max_chars + 1)},
                    422,
                    "",
                ),
                "an empty question": ({"question": ""}, 422, ""),
                "a question of only spaces": ({"question": "   \t "}, 422, _TRIM_FIRST),
                "a number instead of text": ({"question": 42}, 422, ""),
                "null instead of text": ({"question": None}, 422, ""),
                "an unknown field": ({"question": "ok", "temperature": 2}, 422, ""),
                "a body with no question": ({}, 422, ""),
            }
            for what, (body, want, advice) in cases.items():
                response = _post(c, body)
                _surface(response, what)
                expect(
                    response.status_code == want,
                    f"with max_chars={max_chars}, {what} got {response.status_code}, not {want}"
                    + advice,
                )
    return (
        "blank, oversized, wrongly typed and unknown fields are 422 at the limit you are given; a "
        "valid question is trimmed and answered."
    )


# -- Task 2 ---------------------------------------------------------------------------------------
def _refusal(what: str, check_api_key: Callable[..., str], *args: Any, **kwargs: Any) -> Any:
    """Call the student's check; its HTTPException comes back as the value, anything else but
    NotImplementedError is a specific 'incorrect' (a TypeError here is a 500 in the app)."""
    from fastapi import HTTPException

    try:
        return check_api_key(*args, **kwargs)
    except HTTPException as exc:
        return exc
    except (NotImplementedError, AssertionError):
        raise
    except Exception as exc:
        where = student_line(exc)
        raise AssertionError(
            f"{what} raised {type(exc).__name__}: {exc}{f' ({where})' if where else ''} — the "
            "app answers that with a 500; refuse it with the 401"
        ) from exc


def _counting(calls: list[tuple[type, type]]) -> Callable[[Any, Any], bool]:
    """`hmac.compare_digest` that records the types of what it was given."""

    def compare(a: Any, b: Any) -> bool:
        calls.append((type(a), type(b)))
        return hmac.compare_digest(a, b)

    return compare


@ex.task(
    "api_key",
    "Task 2 · API-key authentication",
    points=3,
    needs=("check_api_key",),
    hints=(
        "Loop over `keys.items()` and call `compare(...)` once for every key; remember the name "
        "whose key matched, and decide only after the loop: return it, or `raise refuse`.",
        "`compare` wants bytes: `presented.encode()` and `key.encode()`. `presented` may be "
        "`None` or empty: refuse those too (`(presented or '').encode()` still lets you compare).",
        "`given, found = (presented or '').encode(), None`; `for name, key in keys.items(): if "
        "compare(given, key.encode()) and found is None: found = name`; then `if not presented "
        "or found is None: raise refuse`; `return found`. (Call `compare` first in the `if`: "
        "`found is None and compare(...)` would skip the keys after a match.)",
    ),
)
def check_api_key_task(check_api_key: Callable[..., str]) -> str:
    from fastapi import HTTPException

    expect_callable(check_api_key, "check_api_key")
    name = check_api_key(KEYS["bob"], KEYS)
    expect(
        type(name) is str and name == "bob",
        f"bob's key returned {name!r}, not the client's name 'bob'",
    )
    for what, presented in (
        ("no key (None)", None),
        ("an empty key", ""),
        ("a wrong key", "guess-123"),
        ("a key one character short", KEYS["alice"][:-1]),
        ("a key with non-ASCII characters", "clé-ключ"),
    ):
        result = _refusal(what, check_api_key, presented, KEYS)
        if not isinstance(result, HTTPException):
            raise AssertionError(f"{what} was accepted (returned {result!r})")
        expect(result.status_code == 401, f"{what} raised a {result.status_code}, not 401")
        if presented:
            expect(presented not in str(result.detail), f"the 401 for {what} repeats the key")
    for what, presented in (("alice's key (the first)", KEYS["alice"]), ("a wrong key", "nope")):
        calls: list[tuple[type, type]] = []
        result = _refusal(what, check_api_key, presented, KEYS, compare=_counting(calls))
        if presented == KEYS["alice"]:
            expect(result == "alice", f"alice's key with a counting `compare` gave {result!r}")
        expect(
            len(calls) >= len(KEYS),
            f"for {what}, `compare` was called {len(calls)} time(s) with {len(KEYS)} keys "
            "configured: call the `compare` you are given (not `==`, nor `hmac.compare_digest` "
            "by name: the checks count calls to `compare`), once for every key, even after a match",
        )
        kinds = sorted({f"({a.__name__}, {b.__name__})" for a, b in calls})
        expect(
            all(kind == (bytes, bytes) for kind in calls),
            f"`compare` was given {', '.join(kinds)}: encode both sides to bytes",
        )
    with _client(standin_parts(check_api_key=check_api_key)) as client:
        responses = [
            _post(client, {"question": "q"}, h)
            for h in (BOB, {}, {"X-API-Key": "nope"}, {"X-API-Key": "clé-ключ".encode()})
        ]
    statuses = [r.status_code for r in responses]
    expect(
        statuses == [200, 401, 401, 401],
        f"through the app, right / no / wrong / non-ASCII key gave {statuses}",
    )
    return (
        "a right key names its client; anything else is 401 without echoing it; every key is "
        "compared, on bytes."
    )


# -- Task 3 ---------------------------------------------------------------------------------------
class _Clock:
    """A clock the check moves by hand: no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# Appended where real time would make a figure slightly off: the likely cause.
_CLOCK = " (it is only slightly off: read the time with `self.clock()`, not `time`)"


def _clock_hint(got: Any, want: float) -> str:
    """Why `got` may miss `want`: by a sliver, real time was read; rounded up, the header's whole
    seconds were computed here (the app does that). Otherwise nothing."""
    if not isinstance(got, int | float):
        return ""
    if 0 < abs(got - want) < 0.01 * max(want, 1.0):
        return _CLOCK
    if got == math.ceil(want) != want:
        return " (give exact seconds: the app rounds them up for the headers)"
    return ""


def _close(a: Any, b: float) -> bool:
    return isinstance(a, int | float) and abs(a - b) < 1e-6


@ex.task(
    "rate_limit",
    "Task 3 · per-key rate limiter",
    points=3,
    needs=("KeyedTokenBucket",),
    hints=(
        "Exercise 2's bucket, per key: refill by the time elapsed × rate (never above the "
        "burst), then take a token if there is a whole one — but never wait. Keep "
        "`(tokens, time of last update)` per key in `self.buckets`; a new key starts full.",
        "`now = self.clock()`; `tokens, updated = self.buckets.get(key, (self.burst, now))`; "
        "`tokens = min(self.burst, tokens + (now - updated) * self.rate)`. A refused request "
        "takes nothing.",
        "After taking: `remaining = int(tokens)`; `retry_after = 0.0 if tokens >= 1 else "
        "(1 - tokens) / self.rate`; `reset = (self.burst - tokens) / self.rate`; store "
        "`(tokens, now)` and `return RateDecision(allowed, self.burst, remaining, retry_after, "
        "reset)`.",
    ),
)
def check_rate_limiter(KeyedTokenBucket: Callable[..., Any]) -> str:
    expect_callable(KeyedTokenBucket, "KeyedTokenBucket")
    clock = _Clock()
    bucket = KeyedTokenBucket(rate=4, burst=2, clock=clock)
    first = call_student('`acquire("k")`', bucket.acquire, "k")
    expect(
        isinstance(first, RateDecision),
        f"`acquire` returned {type(first).__name__}, not a RateDecision"
        + (": make it a plain `def` — it never waits" if hasattr(first, "__await__") else ""),
    )
    decisions = [first, bucket.acquire("k"), bucket.acquire("k")]
    allowed = [d.allowed for d in decisions]
    expect(
        allowed == [True, True, False],
        f"burst 2: three quick requests gave {allowed}, not [True, True, False]",
    )
    remaining = [d.remaining for d in decisions]
    expect(
        remaining == [1, 0, 0] and all(type(r) is int for r in remaining),
        f"`remaining` after each request was {remaining}: whole tokens left, as an int",
    )
    expect(all(d.limit == 2 for d in decisions), f"`limit` was {decisions[0].limit}, not burst 2")
    expect(
        decisions[0].retry_after == 0.0,
        f"with a token left, `retry_after` was {decisions[0].retry_after}, not 0.0",
    )
    expect(
        _close(decisions[1].retry_after, 0.25),
        f"after taking the last token, `retry_after` was {decisions[1].retry_after}, not 0.25 s"
        + (
            ": no whole token is left, so it is the time until one is back (0.0 only while one "
            "is left)"
            if decisions[1].retry_after == 0
            else _clock_hint(decisions[1].retry_after, 0.25)
        ),
    )
    expect(
        _close(decisions[2].retry_after, 0.25),
        f"refused at 4/s with an empty bucket, `retry_after` was {decisions[2].retry_after}, "
        f"not 0.25 s" + _clock_hint(decisions[2].retry_after, 0.25),
    )
    resets = (decisions[0].reset, decisions[1].reset)
    clock_time = any(isinstance(r, int | float) and r > 2 for r in resets)  # burst / rate = 0.5
    expect(
        _close(resets[0], 0.25) and _close(resets[1], 0.5),
        f"`reset` after 1 and 2 requests was {resets[0]} and {resets[1]}, not 0.25 and 0.5: "
        "seconds until the bucket is full"
        + (", not a clock time" if clock_time else "")
        + _clock_hint(resets[0], 0.25),
    )
    clock.now += 0.125
    half = bucket.acquire("k")
    expect(
        half.retry_after < decisions[2].retry_after,
        "nothing refilled in 0.125 s at 4 tokens/s: add (now - last update) × rate, reading "
        "the time with `self.clock()`",
    )
    expect(
        not half.allowed and _close(half.retry_after, 0.125),
        f"with half a token, `acquire` gave allowed={half.allowed}, retry_after="
        f"{half.retry_after} (want a refusal, and 0.125 s until the token is whole)",
    )
    clock.now += 0.125
    expect(
        bucket.acquire("k").allowed,
        "no token came back 0.25 s later at 4 tokens/s — read the time with `self.clock()`",
    )
    expect(bucket.acquire("other").remaining == 1, "a new key did not start with a full bucket")
    clock.now += 1000
    after = [bucket.acquire("k").allowed for _ in range(3)]
    expect(after == [True, True, False], f"after a long pause, a burst gave {after}: cap at burst")
    clock.now += 0.4375  # 1.75 tokens: one is taken, 0.75 of one is left
    part = bucket.acquire("k")
    expect(
        part.allowed and part.remaining == 0,
        f"with 1.75 tokens, `acquire` gave allowed={part.allowed}, remaining={part.remaining!r}; "
        "want allowed=True and 0 — the 0.75 left is not a whole token (round down)",
    )
    with _client(standin_parts(limiter=KeyedTokenBucket), rate_per_second=0.5, rate_burst=3) as c:
        responses = [_post(c, {"question": f"q{i}"}) for i in range(4)]
        other = _post(c, {"question": "b"}, BOB)
    statuses = [r.status_code for r in responses]
    expect(statuses == [200, 200, 200, 429], f"burst 3 through the app gave {statuses}")
    left = [r.headers.get("x-ratelimit-remaining") for r in responses]
    expect(left == ["2", "1", "0", "0"], f"`X-RateLimit-Remaining` headers were {left}")
    resets = [r.headers.get("x-ratelimit-reset") for r in responses]
    expect(
        all(v is not None and 0 < int(v) <= 6 for v in resets),
        f"`X-RateLimit-Reset` headers were {resets}: seconds until full (at most 3 / 0.5 = 6)",
    )
    expect(int(responses[3].headers.get("retry-after", "0")) >= 1, "no `Retry-After` on the 429")
    expect(other.status_code == 200, f"bob got {other.status_code} after alice used her burst")
    return "refills by the clock, caps at the burst, refuses with the right headers, per key."


hint, check_all = ex.hint, ex.check_all
