"""The given half of Exercise 6's metrics collector: storage, listeners, safety, LM-call usage.

The notebook's `MetricsCollector` subclasses `CollectorBase` and writes the part that is the
lesson: which module call is a prediction, and what to record when it ends. Everything here is
plumbing it relies on:

* `observations` — a ring buffer (`deque(maxlen=capacity)`): a long-running service keeps the
  recent past, never an ever-growing list; `totals` are running counts that never forget.
* `record(observation)` — keep it, count it, tell each listener (a detector, an exporter).
* `safely(fn, *args)` — user code (a quality metric, a listener) that raises loses nothing: the
  observation is still recorded, the error is counted in `totals["hook_errors"]`.
* `on_lm_start` / `end_lm_call` — each LM call's own usage (`CallUsage`), safe under concurrency.
* `_current` — the ContextVar holding the prediction in flight in *this* thread or asyncio task,
  and `_open` — top-level module call id → its `PredictionState`.
"""

from __future__ import annotations

import inspect
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any

from dspy.utils.callback import BaseCallback

from ._observation import Observation, PredictionState
from ._usage import CallUsage

__all__ = ["CollectorBase", "named_inputs", "reported_confidence"]


def reported_confidence(prediction: Any) -> float | None:
    """The `confidence` a program reported (a number in 0..1), or None when it reports none."""
    value = getattr(prediction, "confidence", None) if prediction is not None else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return min(1.0, max(0.0, number)) if number == number else None


def named_inputs(instance: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """A module call's inputs by name, e.g. `{"question": "…"}`.

    DSPy hands a module's callbacks `inputs = {"args": (…), "kwargs": {…}}`: the positional and
    keyword arguments of the call. `program(question=q)` puts the question in `kwargs`;
    `program(q)` (a custom module whose `forward(self, question)` takes it by position) puts it
    in `args`. This binds both to the names of the module's `forward` parameters.
    """
    if not isinstance(inputs, dict):
        return {}
    args = tuple(inputs.get("args") or ())
    kwargs = dict(inputs.get("kwargs") or {})
    if not args:
        return kwargs
    # The class's function, not `instance.forward`: DSPy warns when a module's bound `forward` is
    # fetched outside its own `__call__`.
    forward = getattr(type(instance), "forward", None)
    try:
        signature = inspect.signature(forward)
        bound = signature.bind_partial(instance, *args, **kwargs)
    except (TypeError, ValueError):  # no forward, or arguments that do not fit it
        return kwargs
    named = dict(bound.arguments)
    named.pop(next(iter(signature.parameters)), None)  # `self`
    return named


class CollectorBase(BaseCallback):
    """A DSPy callback that records one `Observation` per prediction (see the module docstring).

    `quality(inputs, prediction)` scores an answer (e.g. `LabelledQuality()`), `confidence(
    prediction)` reads the confidence the program reported; `listeners` are called with each
    observation.
    """

    def __init__(
        self,
        capacity: int = 1000,
        *,
        quality: Callable[[dict, Any], float | None] | None = None,
        confidence: Callable[[Any], float | None] | None = reported_confidence,
        listeners: Iterable[Callable[[Observation], Any]] = (),
    ) -> None:
        if not (isinstance(capacity, int) and not isinstance(capacity, bool) and capacity > 0):
            raise ValueError(f"capacity is how many observations to keep (> 0), got {capacity!r}")
        self.observations: deque[Observation] = deque(maxlen=capacity)
        self.totals: Counter = Counter()
        self.quality, self.confidence = quality, confidence
        self.listeners = list(listeners)
        self._current: ContextVar[PredictionState | None] = ContextVar(
            f"prediction-{id(self)}", default=None
        )
        self._open: dict[str, PredictionState] = {}
        self._lm_calls: dict[str, CallUsage] = {}
        self._lock = threading.Lock()

    def record(self, observation: Observation) -> None:
        """Keep `observation` (bounded), update the totals, and tell every listener."""
        with self._lock:
            self.observations.append(observation)
            self.totals["predictions"] += 1
            self.totals["errors"] += getattr(observation, "error", None) is not None
            self.totals["cache_hits"] += bool(getattr(observation, "cache_hit", False))
        for listener in self.listeners:
            self.safely(listener, observation)

    def safely(self, fn: Callable[..., Any] | None, *args: Any) -> Any:
        """`fn(*args)`, or None when fn is None or raises: monitoring never breaks a prediction."""
        if fn is None:
            return None
        try:
            return fn(*args)
        except Exception:
            with self._lock:
                self.totals["hook_errors"] += 1
            return None

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """Start capturing this LM call's usage (tokens, cache hit) in its own context."""
        self._lm_calls[call_id] = CallUsage.begin(model=str(getattr(instance, "model", "")))

    def end_lm_call(self, call_id: str, exception: BaseException | None) -> CallUsage | None:
        """The finished usage of LM call `call_id` (None if its start was not seen)."""
        usage = self._lm_calls.pop(call_id, None)
        return usage.end(exception) if usage is not None else None
