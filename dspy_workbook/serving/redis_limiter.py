"""The rate limiter every worker shares: one token bucket per key, kept in Redis.

One process's buckets are private to it, so with N uvicorn workers a client gets N× its budget.
Here each bucket is a Redis hash updated by one Lua script, which Redis runs atomically, on its
own clock (the workers' clocks may differ): every worker, on every machine, sees one bucket.

When Redis fails, `acquire` follows the policy of `redis_state` (bounded calls, one log line per
outage): `when_down="allow"` lets the request through — the headers then describe a fresh bucket
— and `"refuse"` raises a 503 `limiter_unavailable` with `Retry-After`.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ServiceError
from .limiter import RateDecision
from .redis_state import RedisUnavailable, guard_of
from .settings import WHEN_REDIS_DOWN

__all__ = ["RedisRateLimiter"]

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
local retry = 0
if tokens < 1 then retry = (1 - tokens) / rate end
return {allowed, tostring(tokens), tostring(retry), tostring((burst - tokens) / rate)}
"""


class RedisRateLimiter:
    """The token bucket, kept in Redis so that every worker process shares it.

    `when_down` is what to do when Redis fails: `"allow"` or `"refuse"`; None takes the policy
    the client was built with (`redis_state.redis_client`), else `"allow"`.
    """

    def __init__(
        self,
        client: Any,
        rate: float,
        burst: int,
        prefix: str = "dspy-workbook",
        *,
        when_down: str | None = None,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"need rate > 0 and burst >= 1, got rate={rate}, burst={burst}")
        if when_down is not None and when_down not in WHEN_REDIS_DOWN:
            raise ValueError(f"when_down is 'allow' or 'refuse', got {when_down!r}")
        self.client, self.rate, self.burst = client, float(rate), int(burst)
        self.prefix = prefix
        self.guard = guard_of(client)
        self.when_down = when_down or self.guard.when_down
        self._script = client.register_script(_LUA_TOKEN_BUCKET)

    async def acquire(self, key: str) -> RateDecision:
        try:
            allowed, tokens, retry_after, reset = await self.guard.call(
                "limiter",
                lambda: self._script(
                    keys=[f"{self.prefix}:bucket:{key}"], args=[self.rate, self.burst]
                ),
            )
        except RedisUnavailable as down:
            if self.when_down == "refuse":
                raise ServiceError(
                    503,
                    "limiter_unavailable",
                    "the rate limiter's store is unavailable; retry later",
                    {"Retry-After": str(max(1, math.ceil(down.retry_after)))},
                ) from None
            # Failing open: what a fresh bucket would say (the real one is out of reach).
            return RateDecision(True, self.burst, self.burst - 1, 0.0, 1 / self.rate)
        # Lua numbers come back from Redis as integers: the script returns them as text.
        return RateDecision(
            bool(int(allowed)), self.burst, int(float(tokens)), float(retry_after), float(reset)
        )
