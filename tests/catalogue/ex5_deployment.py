"""Exercise 5 (deployment): answers a student could hand in, right and wrong.

`SUBMISSIONS` covers the three graded tasks and runs through `tests/_kit.py`: the self-check's
verdict and the graded cell (hidden tests included) must agree with each other and with the entry's
`correct`. Each wrong entry breaks one behaviour the task's text states and keeps the others (the
cases issue 18 quotes are among them: limits written with a validator, `==` with an early return,
`compare_digest` on `str`, `reset` as a Unix timestamp); each right entry is a style other than
the master's (validators vs `Field`, a closure vs a class, other data structures).
"""

from __future__ import annotations

from tests.catalogue import Submission

MASTER = "05_deployment"

# -- Task 1: question_model ------------------------------------------------------------------------
_MODEL_HEAD = '''
def question_model(max_chars: int) -> type[BaseModel]:
    """The model of `POST /predict`'s body, for questions of at most `max_chars` characters."""
'''


def _model(body: str) -> str:
    return _MODEL_HEAD.strip("\n") + "\n" + body.strip("\n") + "\n"


_FORBID_STRIP = 'model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)'

REQUEST_MODEL = [
    # right, in other styles
    Submission(
        "request_model",
        "field_validator instead of Field (issue 18: was ✅, then 0 from an OpenAPI key)",
        _model(
            """
    from pydantic import field_validator

    class QuestionRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        question: str

        @field_validator("question")
        @classmethod
        def trimmed_and_bounded(cls, value: str) -> str:
            value = value.strip()
            if not 1 <= len(value) <= max_chars:
                raise ValueError(f"the question must be 1 to {max_chars} characters")
            return value

    return QuestionRequest
"""
        ),
        True,
    ),
    Submission(
        "request_model",
        "Annotated with StringConstraints",
        _model(
            """
    from typing import Annotated

    from pydantic import StringConstraints

    Question = Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=max_chars)
    ]

    class QuestionRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        question: Question

    return QuestionRequest
"""
        ),
        True,
    ),
    Submission(
        "request_model",
        "create_model with a dict config and a strict field",
        _model(
            """
    from pydantic import create_model

    return create_model(
        "QuestionRequest",
        __config__={"extra": "forbid", "str_strip_whitespace": True},
        question=(str, Field(min_length=1, max_length=max_chars, strict=True)),
    )
"""
        ),
        True,
    ),
    Submission(
        "request_model",
        "a model_validator that checks the whole body",
        _model(
            """
    from pydantic import model_validator

    class QuestionRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
        question: str

        @model_validator(mode="after")
        def bounded(self):
            if not 0 < len(self.question) <= max_chars:
                raise ValueError("question: 1 to max_chars characters")
            return self

    return QuestionRequest
"""
        ),
        True,
    ),
    # wrong: one stated behaviour broken each
    Submission(
        "request_model",
        "checks the trimmed question but hands the untrimmed one on",
        _model(
            """
    from pydantic import field_validator

    class QuestionRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        question: str

        @field_validator("question")
        @classmethod
        def bounded(cls, value: str) -> str:
            if not 1 <= len(value.strip()) <= max_chars:
                raise ValueError("1 to max_chars characters")
            return value

    return QuestionRequest
"""
        ),
        False,
    ),
    Submission(
        "request_model",
        "limit off by one (max_chars - 1)",
        _model(
            f"""
    class QuestionRequest(BaseModel):
        {_FORBID_STRIP}
        question: str = Field(min_length=1, max_length=max_chars - 1)

    return QuestionRequest
"""
        ),
        False,
    ),
    Submission(
        "request_model",
        "limit written as 2000, not the max_chars it is given",
        _model(
            f"""
    class QuestionRequest(BaseModel):
        {_FORBID_STRIP}
        question: str = Field(min_length=1, max_length=2000)

    return QuestionRequest
"""
        ),
        False,
    ),
    Submission(
        "request_model",
        "no minimum: an empty or blank question is accepted",
        _model(
            f"""
    class QuestionRequest(BaseModel):
        {_FORBID_STRIP}
        question: str = Field(max_length=max_chars)

    return QuestionRequest
"""
        ),
        False,
    ),
    Submission(
        "request_model",
        "a before-validator that turns anything into text (42 is accepted)",
        _model(
            """
    from pydantic import field_validator

    class QuestionRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        question: str = Field(min_length=1, max_length=max_chars)

        @field_validator("question", mode="before")
        @classmethod
        def as_text(cls, value):
            return value if value is None else str(value).strip()

    return QuestionRequest
"""
        ),
        False,
    ),
    Submission(
        "request_model",
        "unknown fields ignored (no extra='forbid')",
        _model(
            """
    class QuestionRequest(BaseModel):
        model_config = ConfigDict(str_strip_whitespace=True)
        question: str = Field(min_length=1, max_length=max_chars)

    return QuestionRequest
"""
        ),
        False,
    ),
    Submission(
        "request_model",
        "a default question: a body without `question` is accepted",
        _model(
            f"""
    class QuestionRequest(BaseModel):
        {_FORBID_STRIP}
        question: str = Field(default="(none)", min_length=1, max_length=max_chars)

    return QuestionRequest
"""
        ),
        False,
    ),
    Submission(
        "request_model",
        "returns a dataclass, not a pydantic model",
        _model(
            """
    from dataclasses import dataclass

    @dataclass
    class QuestionRequest:
        question: str

    return QuestionRequest
"""
        ),
        False,
    ),
    # from the student trial (Dec 2026): the trial's answer, and the strip-order mix-up
    Submission(
        "request_model",
        "student trial: strict model config, bounds in Field",
        _model(
            """
    class Question(BaseModel):
        model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)
        question: str = Field(min_length=1, max_length=max_chars)

    return Question
"""
        ),
        True,
    ),
    Submission(
        "request_model",
        "a before-validator that trims strings and leaves the rest to the type",
        _model(
            """
    from pydantic import field_validator

    class Question(BaseModel):
        model_config = ConfigDict(extra="forbid")
        question: str = Field(min_length=1, max_length=max_chars)

        @field_validator("question", mode="before")
        @classmethod
        def trim(cls, value):
            return value.strip() if isinstance(value, str) else value

    return Question
"""
        ),
        True,
    ),
    Submission(
        "request_model",
        "trims in an after-validator: Field's bounds saw the untrimmed text",
        _model(
            """
    from pydantic import field_validator

    class Question(BaseModel):
        model_config = ConfigDict(extra="forbid")
        question: str = Field(min_length=1, max_length=max_chars)

        @field_validator("question")
        @classmethod
        def trim(cls, value: str) -> str:
            return value.strip()

    return Question
"""
        ),
        False,
    ),
]

# -- Task 2: check_api_key ------------------------------------------------------------------------
_KEY_HEAD = '''
def check_api_key(presented: str | None, keys: dict[str, str], compare=hmac.compare_digest) -> str:
    """The name of the client whose key is `presented`; `refuse` (401) otherwise."""
    refuse = HTTPException(401, "missing or invalid API key", {"WWW-Authenticate": "ApiKey"})
'''


def _key(body: str, head: str = _KEY_HEAD) -> str:
    return head.strip("\n") + "\n" + body.strip("\n") + "\n"


API_KEY = [
    # right, in other styles
    Submission(
        "api_key",
        "refuse an empty key first, then collect every match",
        _key(
            """
    if not presented:
        raise refuse
    given = presented.encode("utf-8")
    matches = [name for name, key in keys.items() if compare(given, key.encode("utf-8"))]
    if not matches:
        raise refuse
    return matches[0]
"""
        ),
        True,
    ),
    Submission(
        "api_key",
        "a verdict per key, folded without branching",
        _key(
            """
    given = (presented or "").encode()
    verdicts = [(compare(given, key.encode()), name) for name, key in keys.items()]
    found = next((name for ok, name in verdicts if ok), None)
    if not presented or found is None:
        raise refuse
    return found
"""
        ),
        True,
    ),
    Submission(
        "api_key",
        "compares SHA-256 digests (fixed length), raising its own 401",
        _key(
            """
    import hashlib

    digest = hashlib.sha256((presented or "").encode()).digest()
    found = None
    for name, key in keys.items():
        same = compare(digest, hashlib.sha256(key.encode()).digest())
        found = name if same and found is None else found
    if presented and found:
        return found
    raise HTTPException(status_code=401, detail="invalid API key")
"""
        ),
        True,
    ),
    # wrong: one stated behaviour broken each
    Submission(
        "api_key",
        "`==` and the first match returns (issue 18: was full marks)",
        _key(
            """
    for name, key in keys.items():
        if presented == key:
            return name
    raise refuse
"""
        ),
        False,
    ),
    Submission(
        "api_key",
        "compare on `str`, as hmac's text allows (issue 18: a non-ASCII key was a 500)",
        _key(
            """
    found = None
    for name, key in keys.items():
        if compare(presented or "", key) and found is None:
            found = name
    if not presented or found is None:
        raise refuse
    return found
"""
        ),
        False,
    ),
    Submission(
        "api_key",
        "stops at the first match (compare_digest on bytes, but an early return)",
        _key(
            """
    if not presented:
        raise refuse
    for name, key in keys.items():
        if compare(presented.encode(), key.encode()):
            return name
    raise refuse
"""
        ),
        False,
    ),
    Submission(
        "api_key",
        "skips the keys after a match (`found is None and compare(...)`)",
        _key(
            """
    given, found = (presented or "").encode(), None
    for name, key in keys.items():
        if found is None and compare(given, key.encode()):
            found = name
    if not presented or found is None:
        raise refuse
    return found
"""
        ),
        False,
    ),
    Submission(
        "api_key",
        "echoes the wrong key in the 401",
        _key(
            """
    given, found = (presented or "").encode(), None
    for name, key in keys.items():
        if compare(given, key.encode()) and found is None:
            found = name
    if not presented or found is None:
        raise HTTPException(401, f"unknown API key {presented!r}")
    return found
"""
        ),
        False,
    ),
    Submission(
        "api_key",
        "crashes on a missing key (None has no .encode)",
        _key(
            """
    given, found = presented.encode(), None
    for name, key in keys.items():
        if compare(given, key.encode()) and found is None:
            found = name
    if found is None:
        raise refuse
    return found
"""
        ),
        False,
    ),
    Submission(
        "api_key",
        "accepts a prefix of a key",
        _key(
            """
    given, found = (presented or "").encode(), None
    for name, key in keys.items():
        if compare(given, key.encode()[: len(given)]) and found is None:
            found = name
    if not presented or found is None:
        raise refuse
    return found
"""
        ),
        False,
    ),
    Submission(
        "api_key",
        "returns the key, not the client's name",
        _key(
            """
    given, found = (presented or "").encode(), None
    for name, key in keys.items():
        if compare(given, key.encode()) and found is None:
            found = key
    if not presented or found is None:
        raise refuse
    return found
"""
        ),
        False,
    ),
    Submission(
        "api_key",
        "refuses with 403 instead of 401",
        _key(
            """
    given, found = (presented or "").encode(), None
    for name, key in keys.items():
        if compare(given, key.encode()) and found is None:
            found = name
    if not presented or found is None:
        raise HTTPException(403, "forbidden")
    return found
"""
        ),
        False,
    ),
    # from the student trial (Dec 2026)
    Submission(
        "api_key",
        "student trial: refuse a missing key before the loop, then a found flag",
        _key(
            """
    if not presented:
        raise refuse
    given = presented.encode()
    found = None
    for name, key in keys.items():
        if compare(given, key.encode()) and found is None:
            found = name
    if found is None:
        raise refuse
    return found
"""
        ),
        True,
    ),
    Submission(
        "api_key",
        "calls hmac.compare_digest by name, not the `compare` it is given",
        _key(
            """
    given, found = (presented or "").encode(), None
    for name, key in keys.items():
        if hmac.compare_digest(given, key.encode()) and found is None:
            found = name
    if not presented or found is None:
        raise refuse
    return found
"""
        ),
        False,
    ),
]

# -- Task 3: KeyedTokenBucket ---------------------------------------------------------------------
_BUCKET_HEAD = '''
class KeyedTokenBucket:
    """One token bucket per key; `acquire` refuses instead of waiting."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic) -> None:
        self.rate, self.burst, self.clock = float(rate), int(burst), clock
        self.buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, time of last update)

    def acquire(self, key: str) -> RateDecision:
        """Take a token from `key`'s bucket if there is a whole one; never wait."""
'''

# The master's answer, one line of which each mistake below changes.
_NOW = "now = self.clock()"
_START = "tokens, updated = self.buckets.get(key, (self.burst, now))"
_REFILL = "tokens = min(self.burst, tokens + (now - updated) * self.rate)"
_TAKE = "allowed = tokens >= 1\n        if allowed:\n            tokens -= 1"
_STORE = "self.buckets[key] = (tokens, now)"
_RETRY = "retry_after = 0.0 if tokens >= 1 else (1 - tokens) / self.rate"
_RETURN = (
    "return RateDecision(allowed, self.burst, int(tokens), retry_after, "
    "(self.burst - tokens) / self.rate)"
)


def _bucket(
    now: str = _NOW,
    start: str = _START,
    refill: str = _REFILL,
    take: str = _TAKE,
    store: str = _STORE,
    retry: str = _RETRY,
    ret: str = _RETURN,
) -> str:
    lines = [now, start, refill, take, store, retry, ret]
    return _BUCKET_HEAD.strip("\n") + "\n" + "".join(f"        {line}\n" for line in lines)


RATE_LIMIT = [
    # right, in other styles
    Submission(
        "rate_limit",
        "GCRA: the time the bucket will be full, per key",
        '''
class KeyedTokenBucket:
    """One token bucket per key, kept as the time at which it will be full again."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic) -> None:
        self.rate, self.burst, self.clock = float(rate), int(burst), clock
        self.full_at: dict[str, float] = {}

    def acquire(self, key: str) -> RateDecision:
        now = self.clock()
        full_at = max(self.full_at.get(key, now), now)
        tokens = self.burst - (full_at - now) * self.rate
        allowed = tokens >= 1
        if allowed:
            full_at += 1 / self.rate
            tokens -= 1
        self.full_at[key] = full_at
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
        return RateDecision(allowed, self.burst, int(tokens), wait, full_at - now)
''',
        True,
    ),
    Submission(
        "rate_limit",
        "a closure instead of a class",
        """
def KeyedTokenBucket(rate, burst, clock=time.monotonic):
    import types

    buckets = {}

    def acquire(key):
        now = clock()
        tokens, at = buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        ok = tokens >= 1
        tokens = tokens - 1 if ok else tokens
        buckets[key] = (tokens, now)
        retry = 0.0 if tokens >= 1 else (1 - tokens) / rate
        return RateDecision(ok, int(burst), int(tokens), retry, (burst - tokens) / rate)

    return types.SimpleNamespace(acquire=acquire, rate=rate, burst=burst)
""",
        True,
    ),
    Submission(
        "rate_limit",
        "a defaultdict of mutable per-key state",
        '''
from collections import defaultdict
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float | None = None


class KeyedTokenBucket:
    """One token bucket per key; `acquire` refuses instead of waiting."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic) -> None:
        self.rate, self.burst, self.clock = float(rate), int(burst), clock
        self.buckets = defaultdict(lambda: _Bucket(float(self.burst)))

    def acquire(self, key: str) -> RateDecision:
        b = self.buckets[key]
        now = self.clock()
        if b.at is not None:
            b.tokens = min(self.burst, b.tokens + (now - b.at) * self.rate)
        b.at = now
        allowed = b.tokens >= 1
        b.tokens -= 1 if allowed else 0
        retry = max(0.0, (1 - b.tokens) / self.rate) if b.tokens < 1 else 0.0
        reset = (self.burst - b.tokens) / self.rate
        return RateDecision(allowed, self.burst, int(b.tokens), retry, reset)
''',
        True,
    ),
    # wrong: one stated behaviour broken each
    Submission("rate_limit", "never refills", _bucket(refill="tokens = tokens"), False),
    Submission(
        "rate_limit",
        "refills past the burst (no cap)",
        _bucket(refill="tokens = tokens + (now - updated) * self.rate"),
        False,
    ),
    Submission(
        "rate_limit",
        "a new key starts empty",
        _bucket(start="tokens, updated = self.buckets.get(key, (0.0, now))"),
        False,
    ),
    Submission(
        "rate_limit",
        "one bucket for every key",
        _bucket(
            start="tokens, updated = self.buckets.get('all', (self.burst, now))",
            store="self.buckets['all'] = (tokens, now)",
        ),
        False,
    ),
    Submission(
        "rate_limit",
        "a refused request takes a token too (goes negative)",
        _bucket(take="allowed = tokens >= 1\n        tokens -= 1"),
        False,
    ),
    Submission(
        "rate_limit",
        "reads time.monotonic(), not the clock it is given",
        _bucket(now="now = time.monotonic()"),
        False,
    ),
    Submission(
        "rate_limit",
        "`reset` as a Unix timestamp (issue 18: was ✅, then 0)",
        _bucket(
            ret="return RateDecision(allowed, self.burst, int(tokens), retry_after, "
            "time.time() + (self.burst - tokens) / self.rate)"
        ),
        False,
    ),
    Submission(
        "rate_limit",
        "`retry_after` always a whole token's time (1 / rate)",
        _bucket(retry="retry_after = 0.0 if tokens >= 1 else 1 / self.rate"),
        False,
    ),
    Submission(
        "rate_limit",
        "`remaining` as a float",
        _bucket(
            ret="return RateDecision(allowed, self.burst, tokens, retry_after, "
            "(self.burst - tokens) / self.rate)"
        ),
        False,
    ),
    Submission(
        "rate_limit",
        "`limit` is the rate, not the burst",
        _bucket(
            ret="return RateDecision(allowed, int(self.rate), int(tokens), retry_after, "
            "(self.burst - tokens) / self.rate)"
        ),
        False,
    ),
    Submission(
        "rate_limit",
        "an async acquire (the text asks for a plain method)",
        _BUCKET_HEAD.replace("    def acquire", "    async def acquire").strip("\n")
        + "\n"
        + "".join(
            f"        {line}\n" for line in (_NOW, _START, _REFILL, _TAKE, _STORE, _RETRY, _RETURN)
        ),
        False,
    ),
]
# from the student trial (Dec 2026): the trial's answer, and two readings of the table it allowed
RATE_LIMIT += [
    Submission(
        "rate_limit",
        "student trial: RateDecision by keyword, (tokens, time) per key",
        _BUCKET_HEAD.strip("\n")
        + """
        now = self.clock()
        tokens, last = self.buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self.buckets[key] = (tokens, now)
        retry_after = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
        return RateDecision(
            allowed=allowed,
            limit=self.burst,
            remaining=int(tokens),
            retry_after=retry_after,
            reset=(self.burst - tokens) / self.rate,
        )
""",
        True,
    ),
    Submission(
        "rate_limit",
        "`remaining` rounded to the nearest whole token, not down",
        _bucket(
            ret="return RateDecision(allowed, self.burst, round(tokens), retry_after, "
            "(self.burst - tokens) / self.rate)"
        ),
        False,
    ),
    Submission(
        "rate_limit",
        "`retry_after` 0.0 whenever allowed, also after taking the last token",
        _bucket(retry="retry_after = 0.0 if allowed else (1 - tokens) / self.rate"),
        False,
    ),
]
SUBMISSIONS = REQUEST_MODEL + API_KEY + RATE_LIMIT
