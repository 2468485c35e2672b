"""Per-key token buckets that *refuse* instead of waiting: what a server needs.

Exercise 2's `TokenBucket.acquire()` waits until a token is free — right for a client that must
not exceed a provider's budget. A server must not hold a connection open for a client that is over
its budget: it answers 429 at once and says when to come back (`Retry-After`). Same refill
arithmetic, different ending.

Two backends share one interface (`await limiter.acquire(key) -> RateDecision`):

* `MemoryRateLimiter` — a dict of buckets in this process. Right for one process; with N uvicorn
  workers each has its own dict, so a client gets N× its budget.
* `RedisRateLimiter` — the bucket lives in Redis and is updated by one Lua script, which Redis
  runs atomically, with Redis's own clock: every worker (and every machine) sees one bucket.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["MemoryRateLimiter", "RateDecision", "RateLimiter", "RedisRateLimiter", "rate_headers"]


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


def _decide(tokens: float, allowed: bool, rate: float, burst: int) -> RateDecision:
    return RateDecision(
        allowed=allowed,
        limit=burst,
        remaining=int(tokens),
        retry_after=0.0 if tokens >= 1 else (1 - tokens) / rate,
        reset=(burst - tokens) / rate,
    )


class RateLimiter(Protocol):
    """What the app needs from a limiter."""

    rate: float
    burst: int

    async def acquire(self, key: str) -> RateDecision: ...


class MemoryRateLimiter:
    """One token bucket per key, in this process (thread-safe: a plain lock, no awaiting inside)."""

    def __init__(self, rate: float, burst: int, clock: Any = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"need rate > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.rate, self.burst, self.clock = float(rate), int(burst), clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated)
        self._lock = threading.Lock()

    def try_acquire(self, key: str) -> RateDecision:
        """Take a token for `key` if one is there; never waits."""
        with self._lock:
            now = self.clock()
            tokens, updated = self._buckets.get(key, (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - updated) * self.rate)
            allowed = tokens >= 1
            if allowed:
                tokens -= 1
            self._buckets[key] = (tokens, now)
        return _decide(tokens, allowed, self.rate, self.burst)

    async def acquire(self, key: str) -> RateDecision:
        return self.try_acquire(key)


# Refill, take, store, expire — atomically, on Redis's clock (workers' clocks may differ).
_LUA_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


class RedisRateLimiter:
    """The same bucket, kept in Redis so that every worker process shares it."""

    def __init__(self, client: Any, rate: float, burst: int, prefix: str = "dspy-workbook") -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"need rate > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.client, self.rate, self.burst = client, float(rate), int(burst)
        self.prefix = prefix
        self._script = client.register_script(_LUA_TOKEN_BUCKET)

    async def acquire(self, key: str) -> RateDecision:
        allowed, tokens = await self._script(
            keys=[f"{self.prefix}:bucket:{key}"], args=[self.rate, self.burst]
        )
        return _decide(float(tokens), bool(int(allowed)), self.rate, self.burst)
