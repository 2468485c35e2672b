"""An in-memory stand-in for a cache (`get`/`put`), for demos and tests of a cached module."""

from __future__ import annotations

from typing import Any

__all__ = ["DictCache"]


class DictCache:
    """A dict with the cache interface; with `error`, every `put` raises it (a full disk, say)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.data: dict[str, Any] = {}
        self.error = error

    def get(self, key: str) -> Any | None:
        return self.data.get(key)

    def put(self, key: str, value: Any) -> None:
        if self.error is not None:
            raise self.error
        self.data[key] = value
