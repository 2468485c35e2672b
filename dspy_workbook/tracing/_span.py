"""The span: one traced DSPy call, plus helpers that turn spans into records and tables."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Span",
    "SpanKind",
    "children_of",
    "depth_of",
    "lm_usage",
    "open_span",
    "span_name",
    "span_record",
    "spans_table",
    "tidy_inputs",
    "to_jsonable",
]

SpanKind = Literal["module", "lm", "format", "parse", "tool"]
_HISTORY_WINDOW = 200  # how far back in `lm.history` to look for a call's entry


@dataclass
class Span:
    """One call in a trace: what ran, under which parent, when, for how long, and how it ended."""

    id: str
    parent_id: str | None
    kind: SpanKind
    name: str
    start: float  # time.perf_counter() when the call began
    inputs: dict[str, Any] = field(default_factory=dict)
    started_at: float = 0.0  # wall clock (time.time()) when the call began
    duration: float | None = None  # seconds; None while the call is still running
    outputs: Any = None
    error: BaseException | None = None
    tokens: dict[str, int] | None = None  # LM spans: prompt/completion/total tokens
    cache_hit: bool | None = None  # LM spans: served from DSPy's cache?
    instance: Any = field(default=None, repr=False, compare=False)  # the traced object (not logged)

    @property
    def ok(self) -> bool:
        """True when the call returned (False when it raised)."""
        return self.error is None

    @property
    def end(self) -> float | None:
        """perf_counter() when the call finished, if it has."""
        return None if self.duration is None else self.start + self.duration


def span_name(instance: Any) -> str:
    """A readable name for a traced object: `Predict(question -> answer)`, `LM sim/…`, …"""
    cls = type(instance).__name__
    model = getattr(instance, "model", None)
    if isinstance(model, str):
        return f"{cls} {model}"
    signature = getattr(instance, "signature", None)
    text = getattr(signature, "signature", None)
    if isinstance(text, str):
        return f"{cls}({text})"
    return cls


def open_span(
    call_id: str, parent_id: str | None, kind: SpanKind, instance: Any, inputs: Mapping[str, Any]
) -> Span:
    """A new, running `Span` for a call that starts now: readable name, tidy inputs, start times.

    `start` is `time.perf_counter()` (for durations), `started_at` is `time.time()` (for logs).
    """
    return Span(
        id=call_id,
        parent_id=parent_id,
        kind=kind,
        name=span_name(instance),
        inputs=tidy_inputs(inputs),
        start=time.perf_counter(),
        started_at=time.time(),
        instance=instance,
    )


def tidy_inputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Module calls arrive as ``{"args": (...), "kwargs": {...}}``: keep the keyword inputs flat."""
    inputs = dict(inputs)
    if set(inputs) <= {"args", "kwargs"} and isinstance(inputs.get("kwargs"), Mapping):
        flat = dict(inputs["kwargs"])
        if inputs.get("args"):
            flat["args"] = list(inputs["args"])
        return flat
    return inputs


def lm_usage(
    lm: Any, inputs: Mapping[str, Any], claimed: set[str]
) -> tuple[dict[str, int] | None, bool | None]:
    """Token usage and cache hit of the LM call that sent `inputs`, read from `lm.history`.

    DSPy's LM callbacks see the outputs but not the usage, which DSPy records in the LM's
    history. Under concurrency the *last* entry may belong to another call, so the entry is
    matched by its messages, and `claimed` (entry uuids already used) keeps two identical calls
    from taking the same entry. DSPy records a cache hit with empty usage.
    """
    history = getattr(lm, "history", None) or []
    messages, prompt = inputs.get("messages"), inputs.get("prompt")
    for entry in reversed(history[-_HISTORY_WINDOW:]):
        uuid = entry.get("uuid")
        if uuid in claimed or entry.get("messages") != messages or entry.get("prompt") != prompt:
            continue
        claimed.add(uuid)
        usage = entry.get("usage") or {}
        if not usage:
            return None, True
        keys = ("prompt_tokens", "completion_tokens", "total_tokens")
        return {k: int(usage[k]) for k in keys if isinstance(usage.get(k), (int, float))}, False
    return None, None  # the call failed, or history is disabled


def to_jsonable(value: Any, _depth: int = 0) -> Any:
    """`value` as JSON-ready data, faithfully: Predictions, exceptions, classes keep content."""
    if _depth > 20:
        return repr(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, BaseException):
        return {"type": type(value).__name__, "message": str(value)}
    if isinstance(value, type) and isinstance(getattr(value, "signature", None), str):
        return f"Signature({value.signature})"  # a dspy.Signature class: its fields are what matter
    if isinstance(value, type):
        return f"<class {value.__module__}.{value.__qualname__}>"
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v, _depth + 1) for v in value]
    if hasattr(value, "toDict") and callable(value.toDict):  # dspy.Prediction / dspy.Example
        return {"__type__": type(value).__name__, **to_jsonable(value.toDict(), _depth + 1)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "__type__": type(value).__name__,
            **{
                f.name: to_jsonable(getattr(value, f.name), _depth + 1)
                for f in dataclasses.fields(value)
            },
        }
    if hasattr(value, "model_dump") and callable(value.model_dump):  # pydantic
        try:
            return to_jsonable(value.model_dump(), _depth + 1)
        except Exception:
            pass
    return repr(value)


def span_record(span: Span, origin: float | None = None) -> dict[str, Any]:
    """One span as a JSON-ready dict (a JSONL log line); times relative to `origin` if given."""
    return {
        "id": span.id,
        "parent_id": span.parent_id,
        "kind": span.kind,
        "name": span.name,
        "started_at": span.started_at,
        "start_ms": None if origin is None else round((span.start - origin) * 1000, 3),
        "duration_ms": None if span.duration is None else round(span.duration * 1000, 3),
        "status": "ok" if span.ok else "error",
        "inputs": to_jsonable(span.inputs),
        "outputs": to_jsonable(span.outputs),
        "error": to_jsonable(span.error),
        "tokens": span.tokens,
        "cache_hit": span.cache_hit,
    }


def children_of(spans: Iterable[Span]) -> dict[str | None, list[Span]]:
    """Parent id -> child spans in start order; roots (parent not in the trace) under None."""
    spans = list(spans)
    ids = {s.id for s in spans}
    tree: dict[str | None, list[Span]] = {}
    for span in sorted(spans, key=lambda s: s.start):
        parent = span.parent_id if span.parent_id in ids else None
        tree.setdefault(parent, []).append(span)
    return tree


def depth_of(spans: Sequence[Span]) -> dict[str, int]:
    """Span id -> depth in the tree (roots are 0)."""
    by_id = {s.id: s for s in spans}
    depths: dict[str, int] = {}
    for span in spans:
        depth, parent, seen = 0, span.parent_id, set()
        while parent in by_id and parent not in seen:
            seen.add(parent)
            depth += 1
            parent = by_id[parent].parent_id
        depths[span.id] = depth
    return depths


def spans_table(spans: Sequence[Span]):
    """A pandas DataFrame with one row per span (name indented by depth), in start order."""
    import pandas as pd

    spans = sorted(spans, key=lambda s: s.start)
    origin = spans[0].start if spans else 0.0
    depths = depth_of(spans)
    rows = [
        {
            "span": "  " * depths[s.id] + s.name,
            "kind": s.kind,
            "start_ms": round((s.start - origin) * 1000, 2),
            "duration_ms": None if s.duration is None else round(s.duration * 1000, 2),
            "tokens": (s.tokens or {}).get("total_tokens"),
            "cache_hit": s.cache_hit,
            "status": "ok" if s.ok else "error",
            "error": "" if s.ok else f"{type(s.error).__name__}: {s.error}",
            "id": s.id[:8],
            "parent": (s.parent_id or "")[:8],
        }
        for s in spans
    ]
    columns = [
        "span",
        "kind",
        "start_ms",
        "duration_ms",
        "tokens",
        "cache_hit",
        "status",
        "error",
        "id",
        "parent",
    ]
    return pd.DataFrame(rows, columns=columns)
