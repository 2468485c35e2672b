"""DSPy's callback hooks, funnelled into two methods a tracer writes: `_start` and `_end`.

`TracerHooks` is the base class of the notebook's `SpanTracer`. It holds what every tracer needs
(`spans`, `_open`, `_lock`, sinks and breakpoints) and does what happens to a finished span
(`_finished`: LM usage, sinks, breakpoints), so the student writes only how a span starts and ends.

Two things DSPy does that a tracer should not have to know about:

* DSPy catches whatever a hook raises and logs it as a warning. For a tracer that is not written
  yet (its `_start` still raises `NotImplementedError`, whose message is empty) that is a wall of
  identical, empty warnings — one per hook per call. `TracerHooks` turns that into one clear
  message per tracer, and reports any other error of a hook once instead of once per call.
* DSPy 3.4 wraps an adapter's `format` and `parse` with its callbacks once per `Adapter`
  subclass (`Adapter.__init_subclass__`). `JSONAdapter` inherits `ChatAdapter.format`, already
  wrapped, and wraps it again: one format step fires the format hooks twice, the second call
  inside the first, with the same adapter — three times for a subclass of `JSONAdapter` (the
  course's own adapter is one), and so on. `TracerHooks` passes such echoes on once (the outer
  call, with its inputs named as `format` names them), so every format step is one span.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Sequence
from typing import Any

from dspy.utils.callback import BaseCallback
from dspy.utils.callback_context import ACTIVE_CALL_ID

from ._span import Span, SpanKind, lm_usage

__all__ = ["TracerHooks", "UNFINISHED_MESSAGE"]

_CLAIM_LOCK = threading.Lock()  # not the tracer's own lock: `_finished` may run while it is held

UNFINISHED_MESSAGE = (
    "💡 {name}: `{method}` still raises NotImplementedError, so this trace stays empty. "
    "Write `_start` and `_end` (Task 1), run that cell, then run this one again."
)


class TracerHooks(BaseCallback):
    """A DSPy callback whose hooks all call `self._start(call_id, kind, instance, inputs)` and
    `self._end(call_id, outputs, exception)`; subclasses write those two.

    Given to them: `spans` (the recorded spans), `_open` (an empty dict, for spans that started
    and have not ended), `_lock` (a re-entrant `threading.RLock`), and `_finished(span)`, to call
    once a span has ended: it fills an LM span's `tokens` and `cache_hit`, feeds the sinks, and
    checks the breakpoints.
    """

    def __init__(
        self,
        sinks: Sequence[Callable[[Span], None]] = (),
        breakpoints: Sequence[Callable[[Span], bool]] = (),
    ) -> None:
        self.spans: list[Span] = []
        self.sinks = list(sinks)
        self.breakpoints = list(breakpoints)
        self.hits: list[dict[str, Any]] = []  # state captured at breakpoints (Task 7)
        self._open: dict[str, Any] = {}
        # Re-entrant, so an `_end` that calls `_finished` while holding it cannot deadlock.
        self._lock = threading.RLock()
        self._claimed: set[str] = set()  # lm.history entries already matched to a span

    def _start(self, call_id: str, kind: SpanKind, instance: Any, inputs: dict[str, Any]) -> None:
        raise NotImplementedError()

    def _end(self, call_id: str, outputs: Any, exception: BaseException | None) -> None:
        raise NotImplementedError()

    def _finished(self, span: Span) -> None:
        """What happens to a span that has ended: usage, sinks, breakpoints."""
        if span.kind == "lm" and span.tokens is None:
            with _CLAIM_LOCK:  # two LM calls must not claim the same history entry
                span.tokens, span.cache_hit = lm_usage(span.instance, span.inputs, self._claimed)
        for sink in self.sinks:
            sink(span)
        for condition in self.breakpoints:
            if condition(span):
                self.hits.append(
                    {
                        "span": span.name,
                        "kind": span.kind,
                        "inputs": dict(span.inputs),
                        "outputs": span.outputs,
                        "error": span.error,
                    }
                )

    def clear(self) -> None:
        """Forget every recorded span (the sinks and breakpoints stay)."""
        with self._lock:
            self.spans.clear()
            self.hits.clear()

    # ---- one report per problem, not one per call ---------------------------------------------
    def _guarded(self, method: str, *args: Any) -> None:
        try:
            getattr(self, method)(*args)
        except NotImplementedError:
            self._report_once(
                ("unfinished",), UNFINISHED_MESSAGE.format(name=type(self).__name__, method=method)
            )
        except Exception as exc:
            self._report_once(
                (method, type(exc).__name__),
                f"⚠️ {type(self).__name__}.{method} raised {type(exc).__name__}: {exc} — the "
                "call itself went on (DSPy ignores errors in callbacks), but its span may be "
                "missing or incomplete. Further errors like this one are not repeated.",
            )

    def _report_once(self, key: tuple[str, ...], message: str) -> None:
        reported = self.__dict__.setdefault("_reported", set())
        if key not in reported:
            reported.add(key)
            print(message)

    # ---- adapter steps: one span per step, inputs by name -------------------------------------
    def _adapter_calls(self) -> dict[str, tuple[SpanKind, int, bool]]:
        """call id -> (kind, id(adapter), is an echo) of the adapter steps running now."""
        return self.__dict__.setdefault("_adapter_state", {})

    def _adapter_start(self, call_id: str, kind: SpanKind, instance: Any, inputs: dict) -> None:
        running = self._adapter_calls()
        step = (kind, id(instance))
        outer = running.get(ACTIVE_CALL_ID.get())
        if outer is not None and outer[:2] == step:
            # The same step again, one wrapper further in. An echo's echo (one more subclass
            # level) finds an echo outside it: still the same step, still no span of its own.
            running[call_id] = (*step, True)
            return
        running[call_id] = (*step, False)
        self._guarded("_start", call_id, kind, instance, _named_inputs(instance, kind, inputs))

    def _adapter_end(self, call_id: str, outputs: Any, exception: BaseException | None) -> None:
        entry = self._adapter_calls().pop(call_id, None)
        if entry is not None and entry[2]:
            return
        self._guarded("_end", call_id, outputs, exception)

    # ---- DSPy's hooks ------------------------------------------------------------------------
    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._guarded("_start", call_id, "module", instance, inputs)

    def on_module_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self._guarded("_end", call_id, outputs, exception)

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._guarded("_start", call_id, "lm", instance, inputs)

    def on_lm_end(self, call_id: str, outputs: Any, exception: BaseException | None = None) -> None:
        self._guarded("_end", call_id, outputs, exception)

    def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._adapter_start(call_id, "format", instance, inputs)

    def on_adapter_format_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self._adapter_end(call_id, outputs, exception)

    def on_adapter_parse_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._adapter_start(call_id, "parse", instance, inputs)

    def on_adapter_parse_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self._adapter_end(call_id, outputs, exception)

    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._guarded("_start", call_id, "tool", instance, inputs)

    def on_tool_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self._guarded("_end", call_id, outputs, exception)


def _named_inputs(instance: Any, kind: SpanKind, inputs: dict[str, Any]) -> dict[str, Any]:
    """An outer, re-wrapped adapter step arrives as `{"args": (...), "kwargs": {...}}` (DSPy reads
    the wrapper's signature): name its arguments the way the adapter's own method does."""
    if not (set(inputs) <= {"args", "kwargs"} and isinstance(inputs.get("args"), tuple)):
        return inputs
    try:
        method = inspect.unwrap(getattr(type(instance), kind))
        args, kwargs = inputs["args"], inputs.get("kwargs") or {}
        bound = inspect.signature(method).bind(instance, *args, **kwargs)
    except (AttributeError, TypeError, ValueError):
        return inputs
    named = dict(bound.arguments)
    named.pop(next(iter(named)), None)  # `self`
    return named
