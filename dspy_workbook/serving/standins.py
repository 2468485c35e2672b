"""Stand-ins for the three parts of the service you write, so that one part can be tried alone.

A self-check (or a graded test) of your request model still needs *some* authentication and rate
limiter to build the app. These are the simplest that work — each one deliberately wrong for
production in the way its task is about:

* `any_question` — the starter's model: any string, no trimming, no limit, extra fields ignored;
* `key_lookup` — a dictionary lookup of the key: not constant-time;
* `Unlimited` — admits every request.

    create_app(settings, parts=standin_parts(check_api_key=check_api_key))   # only yours: auth
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from .errors import ServiceError
from .limiter import RateDecision
from .service import ServiceParts

__all__ = ["Unlimited", "any_question", "key_lookup", "standin_parts"]


def any_question(max_chars: int) -> type[BaseModel]:
    """The starter's request model: `question` is any string (validation is Task 1)."""

    class AnyQuestion(BaseModel):
        question: str

    return AnyQuestion


def key_lookup(presented: str | None, keys: Mapping[str, str]) -> str:
    """The client whose key is `presented`, by a dictionary lookup (authentication is Task 2)."""
    names = {key: name for name, key in keys.items()}
    if presented not in names:
        raise ServiceError(401, "unauthorized", "invalid API key", {"WWW-Authenticate": "ApiKey"})
    return names[presented]


class Unlimited:
    """A limiter that admits everything (rate limiting is Task 3)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.burst = int(burst)

    def acquire(self, key: str) -> RateDecision:
        return RateDecision(True, self.burst, self.burst, 0.0, 0.0)


def standin_parts(**yours: Any) -> ServiceParts:
    """`ServiceParts` with the stand-ins above for every part you do not pass."""
    parts: dict[str, Any] = {
        "request_model": any_question,
        "check_api_key": key_lookup,
        "limiter": Unlimited,
    }
    return ServiceParts(**{**parts, **yours})
