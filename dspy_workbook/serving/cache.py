"""The answer cache: the same question answered once, served many times.

Keys are a hash of the program's identity and the normalised question, so no question text is
stored as a key (a Redis `KEYS *` shows nothing private). Two backends, one interface:

* `MemoryAnswerCache` — a bounded LRU in this process (per uvicorn worker);
* `RedisAnswerCache` — shared by every worker, with a time to live. When Redis fails, or an entry
  is not what was stored, it is a miss (`redis_state`): the answer is computed again, never a 500.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any, Protocol

from .redis_state import RedisUnavailable, guard_of

__all__ = ["AnswerCache", "MemoryAnswerCache", "RedisAnswerCache", "answer_key"]


def answer_key(program_id: str, question: str) -> str:
    """A stable key: same program and same question (ignoring case and spacing) → same key."""
    normalised = " ".join(question.split()).casefold()
    return hashlib.sha256(f"{program_id}\x00{normalised}".encode()).hexdigest()


class AnswerCache(Protocol):
    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def put(self, key: str, value: dict[str, Any]) -> None: ...


class MemoryAnswerCache:
    """At most `size` answers, least recently used dropped first; `size=0` caches nothing."""

    def __init__(self, size: int = 1024) -> None:
        self.size = max(0, int(size))
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    async def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return dict(value) if value is not None else None

    async def put(self, key: str, value: dict[str, Any]) -> None:
        if self.size == 0:
            return
        with self._lock:
            self._items[key] = dict(value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class RedisAnswerCache:
    """Answers as JSON strings in Redis, expiring after `ttl` seconds; Redis failing is a miss."""

    def __init__(self, client: Any, prefix: str = "dspy-workbook", ttl: int = 3600) -> None:
        self.client, self.prefix, self.ttl = client, prefix, int(ttl)
        self.guard = guard_of(client)  # shared with the limiter on the same client

    async def get(self, key: str) -> dict[str, Any] | None:
        try:
            raw = await self.guard.call(
                "cache", lambda: self.client.get(f"{self.prefix}:answer:{key}")
            )
        except RedisUnavailable:
            return None
        try:
            value = json.loads(raw) if raw else None
        except ValueError:  # not what `put` wrote (another program's key, a truncated value)
            return None
        return value if isinstance(value, dict) else None

    async def put(self, key: str, value: dict[str, Any]) -> None:
        text = json.dumps(value)
        try:
            await self.guard.call(
                "cache", lambda: self.client.set(f"{self.prefix}:answer:{key}", text, ex=self.ttl)
            )
        except RedisUnavailable:
            pass  # the answer was served; it just is not shared this time
