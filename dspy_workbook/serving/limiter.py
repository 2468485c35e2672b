"""Per-key token buckets that *refuse* instead of waiting: what a server needs.

Exercise 2's `TokenBucket.acquire()` waits until a token is free — right for a client that must
not exceed a provider's budget. A server must not hold a connection open for a client that is over
its budget: it answers 429 at once and says when to come back (`Retry-After`).

The in-process limiter is yours to write (Exercise 5, Task 3: `ServiceParts(limiter=…)`); one
process's buckets are private to it, so with N uvicorn workers a client gets N× its budget.
`redis_limiter.RedisRateLimiter` keeps each bucket in Redis, shared by every worker. Both answer
with a `RateDecision`, from which `rate_headers` makes the headers every answer carries.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["RateDecision", "RateLimiter", "rate_headers"]


@dataclass(frozen=True)
class RateDecision:
    """One request's verdict: let through or not, and what the client may do next."""

    allowed: bool
    limit: int  # the bucket size (burst)
    remaining: int  # whole tokens left after this request
    retry_after: float  # seconds until one token is back (0 when tokens remain)
    reset: float  # seconds until the bucket is full again


def rate_headers(decision: RateDecision) -> dict[str, str]:
    """The headers every answer carries; a refused one adds `Retry-After` (whole seconds, >= 1)."""
    headers = {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(max(0, decision.remaining)),
        "X-RateLimit-Reset": str(math.ceil(decision.reset)),
    }
    if not decision.allowed:
        headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after)))
    return headers


class RateLimiter(Protocol):
    """What the app needs from a limiter: `acquire(key)`, plain or `async`, never waiting."""

    def acquire(self, key: str) -> RateDecision | Awaitable[RateDecision]: ...
