"""Values as JSON that keeps apart what plain JSON would merge, for cache keys (Exercise 1).

`json.dumps` writes a tuple as a list, turns the dict key `1` into `"1"`, and with `default=str`
writes `Decimal("1.10")` as the string `"1.10"`. A program can answer differently for each, so a
cache key built from the JSON text must record the type wherever JSON would lose it.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["tag_types"]


def _order(item: Any) -> str:
    return json.dumps(item, sort_keys=True)


def tag_types(value: Any) -> Any:
    """`value` as JSON-ready data that records each type JSON would merge.

    None, bools, ints, floats and strings are returned as they are (JSON already tells `1`,
    `1.0`, `true` and `"1"` apart). A dict becomes `{"dict": [[key, value], ...]}` with its pairs
    sorted, so its order does not matter and the key `1` stays apart from `"1"`. A list, tuple,
    set or frozenset becomes `{"<type>": [items]}` (a set's items sorted, so it gives one key
    whatever its iteration order). Anything else becomes `{"<type>": str(value)}`:
    `Decimal("1.10")` is `{"Decimal": "1.10"}`, a `date` is `{"date": "2024-01-02"}`.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        pairs = [[tag_types(k), tag_types(v)] for k, v in value.items()]
        return {"dict": sorted(pairs, key=_order)}
    if isinstance(value, list | tuple):
        return {type(value).__name__: [tag_types(item) for item in value]}
    if isinstance(value, set | frozenset):
        return {type(value).__name__: sorted((tag_types(item) for item in value), key=_order)}
    return {type(value).__qualname__: str(value)}
