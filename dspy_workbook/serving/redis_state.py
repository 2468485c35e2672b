"""Redis as the workers' shared state, and what the service does when Redis fails.

With `WORKBOOK_REDIS_URL` set, the rate limiter and the answer cache live in Redis. Redis is then a
dependency that can die, restart, or freeze (a full disk, a failover, `SIGSTOP`), and the policy
for that is decided here, once, rather than left to whatever exception escapes:

* **Every call is bounded in time.** The client has socket and connect time-outs
  (`Settings.redis_timeout`, 0.5 s by default: Redis answers in well under a millisecond on a
  LAN) and no retries, and each call also runs under `asyncio.timeout`. redis-py's defaults (5 s
  per socket operation, three retries with back-off) would hold every request for seconds.
* **An outage is detected once, not per request.** After a failed call the service stops calling
  Redis for `retry_seconds` (a circuit breaker), then lets one call through to see whether it is
  back. A frozen Redis costs one time-out a second, not one per request.
* **One log line per outage**: a warning when it starts (the error, and what the service does
  meanwhile) and one line when Redis is back — never a traceback per request. Every limiter or
  cache decision made without Redis is counted in `dspy_api_redis_unavailable_total{component}`,
  so an alert can fire on it.
* **The answer cache treats a failure as a miss**: `get` returns None, `put` is skipped. The
  answer is computed again; nothing is wrong, only slower and dearer.
* **The rate limiter follows `Settings.when_redis_down`**: `"allow"` (the default) lets the request
  through, *failing open*: the service stays up, authenticated clients are unlimited for the length
  of the outage, the LM time-out and the provider's own limits still bound the damage, and the
  metric above says it is happening. `"refuse"` *fails closed*: 503 `limiter_unavailable` with
  `Retry-After` — for budgets that must hold (an expensive model, untrusted clients), at the price
  of an outage whenever Redis has one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["RedisGuard", "RedisUnavailable", "guard_of", "redis_client"]

T = TypeVar("T")
_GUARDS: weakref.WeakKeyDictionary[Any, RedisGuard] = weakref.WeakKeyDictionary()
_GUARDS_LOCK = threading.Lock()


class RedisUnavailable(Exception):
    """Redis failed, timed out, or is being skipped during an outage; `retry_after` in seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RedisGuard:
    """Runs Redis calls with a time bound and a circuit breaker; logs each outage once.

    `on_unavailable(component)` is called for every decision made without Redis (the service
    counts them in a metric); `when_down` is the limiter's policy (`"allow"` or `"refuse"`).
    """

    def __init__(
        self,
        *,
        timeout: float = 0.5,
        retry_seconds: float = 1.0,
        when_down: str = "allow",
        log: logging.Logger | None = None,
        on_unavailable: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout, self.retry_seconds, self.when_down = timeout, retry_seconds, when_down
        self.log = log or logging.getLogger("dspy_workbook.serving")
        self.on_unavailable, self.clock = on_unavailable, clock
        self.down_since: float | None = None  # monotonic time the current outage started
        self.outages = 0
        self._without = 0  # decisions made without Redis during the current outage
        self._next_try = 0.0
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self.down_since is None

    def retry_after(self) -> float:
        """Seconds until the breaker lets a call through again (0 when Redis is up)."""
        return max(0.0, self._next_try - self.clock()) if self.down_since is not None else 0.0

    async def call(self, component: str, make: Callable[[], Awaitable[T]]) -> T:
        """`await make()` within the time bound; `RedisUnavailable` when it fails or is skipped."""
        with self._lock:
            now = self.clock()
            skip = self.down_since is not None and now < self._next_try
            if self.down_since is not None and not skip:
                self._next_try = now + self.retry_seconds  # this call probes; the rest skip
        if skip:
            self._unavailable(component)
            raise RedisUnavailable("redis is down (skipped)", self.retry_after())
        try:
            async with asyncio.timeout(self.timeout):
                result = await make()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # redis.RedisError, OSError, TimeoutError: all mean "no Redis"
            self._failed(component, exc)
            raise RedisUnavailable(
                f"redis failed: {type(exc).__name__}", self.retry_after()
            ) from None
        if self.down_since is not None:
            self._recovered()
        return result

    def _unavailable(self, component: str) -> None:
        with self._lock:
            self._without += 1
        if self.on_unavailable is not None:
            self.on_unavailable(component)

    def _failed(self, component: str, exc: BaseException) -> None:
        with self._lock:
            first = self.down_since is None
            now = self.clock()
            if first:
                self.down_since, self.outages = now, self.outages + 1
            self._next_try = now + self.retry_seconds
        self._unavailable(component)
        if first:  # one line per outage, no traceback: the cause is Redis, not our code
            self.log.warning(
                "redis unavailable",
                extra={
                    "error": f"{type(exc).__name__}: {exc}"[:300],
                    "component": component,
                    "policy": self.when_down,
                    "meanwhile": (
                        f"limiter {'allows' if self.when_down == 'allow' else 'refuses (503)'} "
                        "requests, cache misses"
                    ),
                    "retry_seconds": self.retry_seconds,
                },
            )

    def _recovered(self) -> None:
        with self._lock:
            if self.down_since is None:
                return
            down = self.clock() - self.down_since
            without, self._without, self.down_since = self._without, 0, None
        self.log.info(
            "redis is back",
            extra={"down_seconds": round(down, 3), "decisions_without_redis": without},
        )

    def refuse_for(self) -> int:
        """`Retry-After` for a request refused during an outage: whole seconds, at least 1."""
        return max(1, math.ceil(self.retry_after()))


def guard_of(client: Any) -> RedisGuard:
    """The guard of a Redis client: the one `redis_client` made, else a default one (shared by
    every limiter and cache built on that client, so an outage is logged once)."""
    with _GUARDS_LOCK:
        guard = _GUARDS.get(client)
        if guard is None:
            guard = _GUARDS[client] = RedisGuard()
        return guard


def redis_client(
    url: str,
    *,
    timeout: float = 0.5,
    when_down: str = "allow",
    log: logging.Logger | None = None,
    on_unavailable: Callable[[str], None] | None = None,
) -> Any:
    """An asyncio Redis client whose every call is bounded by `timeout` seconds (no retries)."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    client = aioredis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),  # the breaker decides when to try again, not each call
    )
    guard = RedisGuard(timeout=timeout, when_down=when_down, log=log, on_unavailable=on_unavailable)
    with _GUARDS_LOCK:
        _GUARDS[client] = guard
    return client
