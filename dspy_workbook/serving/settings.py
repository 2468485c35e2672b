"""The service's configuration, read from the environment (the twelve-factor way).

Every deployment — the notebook, the tests, `uvicorn --factory`, the container, AWS Lambda —
builds the app from one `Settings`. Secrets (the API keys) come only from the environment and are
never printed: `repr(settings)` masks them. A key must be printable ASCII: HTTP carries header
values as bytes that servers decode as latin-1, so a key such as `ключ` could be configured but
never presented; it is refused here, with the client's name (never the key) in the message.
What the service does when Redis fails is `redis_state`'s docstring.

| variable | default | meaning |
|---|---|---|
| `WORKBOOK_API_KEYS` | (none: all refused) | comma-separated `client:key` pairs, or bare keys |
| `WORKBOOK_RATE_PER_SECOND` | `5` | tokens added to each key's bucket per second |
| `WORKBOOK_RATE_BURST` | `10` | bucket size: requests a key may send at once |
| `WORKBOOK_MAX_QUESTION_CHARS` | `2000` | longest question accepted (422 beyond) |
| `WORKBOOK_LM_TIMEOUT` | `20` | seconds a prediction may take before the answer is 504 |
| `WORKBOOK_CONFIDENCE` | `auto` | `logprobs`, `agreement`, or `auto` (logprobs if available) |
| `WORKBOOK_CONFIDENCE_SAMPLES` | `3` | answers compared by the `agreement` method |
| `WORKBOOK_CACHE_SIZE` | `1024` | answers kept by the in-memory answer cache (0 = off) |
| `WORKBOOK_REDIS_URL` | (none: in-memory) | share the limiter and the answer cache across workers |
| `WORKBOOK_REDIS_TIMEOUT` | `0.5` | seconds one Redis call may take before it counts as failed |
| `WORKBOOK_WHEN_REDIS_DOWN` | `allow` | limiter without Redis: `allow` requests or `refuse` (503) |
| `WORKBOOK_LM` | `local` | the course LM backend (`local`, `sim`, or a LiteLLM id) |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .. import env as var

__all__ = ["WHEN_REDIS_DOWN", "Settings", "key_problem", "parse_api_keys"]

WHEN_REDIS_DOWN = ("allow", "refuse")
_KEY_ADVICE = (
    "HTTP header values are printable ASCII (letters, digits, punctuation); make one with "
    "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
)


def key_problem(name: str, key: object) -> str | None:
    """Why `key` cannot be presented in an HTTP header (None when it can). Never quotes the key."""
    if not isinstance(key, str):
        return f"the API key of client {name!r} is a {type(key).__name__}, not text"
    if not key:
        return f"the API key of client {name!r} is empty"
    for position, char in enumerate(key, 1):
        if not " " <= char <= "~":  # printable ASCII: what every client can send and we can read
            return (
                f"the API key of client {name!r} has a character that is not printable ASCII "
                f"(position {position} of {len(key)}): {_KEY_ADVICE}"
            )
    if key != key.strip(" "):  # servers strip the spaces around a header value
        return f"the API key of client {name!r} starts or ends with a space: {_KEY_ADVICE}"
    return None


def parse_api_keys(text: str) -> dict[str, str]:
    """`"alice:k1, bob:k2"` → `{"alice": "k1", "bob": "k2"}`; a bare key is named `client-N`."""
    keys: dict[str, str] = {}
    for number, item in enumerate(part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, key = item.partition(":")
        name, key = (name.strip(), key.strip()) if sep else (f"client-{number + 1}", name.strip())
        if not key:
            raise ValueError(f"API key entry {number + 1} of {var.API_KEYS} is empty")
        problem = key_problem(name, key)
        if problem:
            raise ValueError(f"{var.API_KEYS}: {problem}")
        keys[name] = key
    return keys


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not value >= minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the app needs to know; build it with `Settings.from_env()` or by hand."""

    api_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    rate_per_second: float = 5.0
    rate_burst: int = 10
    max_question_chars: int = 2000
    lm_timeout: float = 20.0
    confidence: str = "auto"
    confidence_samples: int = 3
    cache_size: int = 1024
    redis_url: str | None = field(default=None, repr=False)
    redis_timeout: float = 0.5
    when_redis_down: str = "allow"
    backend: str | None = None
    namespace: str = "dspy-workbook"

    def __post_init__(self) -> None:
        if self.confidence not in ("auto", "logprobs", "agreement"):
            raise ValueError(
                f"confidence is 'auto', 'logprobs' or 'agreement', got {self.confidence!r}"
            )
        if self.rate_per_second <= 0 or self.rate_burst < 1:
            raise ValueError("the rate limit needs rate_per_second > 0 and rate_burst >= 1")
        if self.max_question_chars < 1 or self.lm_timeout <= 0 or self.confidence_samples < 2:
            raise ValueError(
                "need max_question_chars >= 1, lm_timeout > 0, confidence_samples >= 2"
            )
        if not self.redis_timeout > 0 or self.when_redis_down not in WHEN_REDIS_DOWN:
            raise ValueError(
                "need redis_timeout > 0 and when_redis_down 'allow' or 'refuse', got "
                f"{self.redis_timeout!r} and {self.when_redis_down!r}"
            )
        for name, key in self.api_keys.items():
            problem = key_problem(str(name), key)
            if problem:
                raise ValueError(problem)

    def __repr__(self) -> str:  # never show a key, even by accident in a log or a notebook
        shown = ", ".join(f"{k}={v!r}" for k, v in self.public().items())
        return f"Settings({shown}, api_keys=<{len(self.api_keys)} hidden>)"

    def public(self) -> dict[str, object]:
        """The settings that are safe to show (no keys, no Redis URL with its password)."""
        return {
            "rate_per_second": self.rate_per_second,
            "rate_burst": self.rate_burst,
            "max_question_chars": self.max_question_chars,
            "lm_timeout": self.lm_timeout,
            "confidence": self.confidence,
            "confidence_samples": self.confidence_samples,
            "cache_size": self.cache_size,
            "shared_state": "redis" if self.redis_url else "memory",
            **(
                {"redis_timeout": self.redis_timeout, "when_redis_down": self.when_redis_down}
                if self.redis_url
                else {}
            ),
            "backend": self.backend or f"({var.LM})",
        }

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed (settings are immutable once an app uses them)."""
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every `WORKBOOK_*` variable of the table in the module docstring."""
        env = os.environ if env is None else env
        return cls(
            api_keys=parse_api_keys(env.get(var.API_KEYS, "")),
            rate_per_second=_number(env, var.RATE_PER_SECOND, 5.0, 0.001),
            rate_burst=int(_number(env, var.RATE_BURST, 10, 1)),
            max_question_chars=int(_number(env, var.MAX_QUESTION_CHARS, 2000, 1)),
            lm_timeout=_number(env, var.LM_TIMEOUT, 20.0, 0.001),
            confidence=env.get(var.CONFIDENCE, "auto").strip() or "auto",
            confidence_samples=int(_number(env, var.CONFIDENCE_SAMPLES, 3, 2)),
            cache_size=int(_number(env, var.CACHE_SIZE, 1024, 0)),
            redis_url=env.get(var.REDIS_URL) or None,
            redis_timeout=_number(env, var.REDIS_TIMEOUT, 0.5, 0.001),
            when_redis_down=(env.get(var.WHEN_REDIS_DOWN) or "allow").strip().lower(),
            backend=env.get(var.LM) or None,
        )
