"""DSPy's callback hooks, funnelled into two methods a tracer writes: `_start` and `_end`.

DSPy calls `on_module_start`, `on_lm_end`, `on_adapter_parse_start`, … around every call, and
catches whatever a hook raises, logging it as a warning. For a tracer that is not written yet
(its `_start` still raises `NotImplementedError`, whose message is empty) that is a wall of
identical, empty warnings — one per hook per call. `TracerHooks` turns that into one clear
message per tracer, and reports any other error of a hook once (with its type and message)
instead of once per call.
"""

from __future__ import annotations

from typing import Any

from dspy.utils.callback import BaseCallback

__all__ = ["TracerHooks", "UNFINISHED_MESSAGE"]

UNFINISHED_MESSAGE = (
    "💡 {name}: `{method}` still raises NotImplementedError, so this trace stays empty. "
    "Write `_start` and `_end` (Task 1), run that cell, then run this one again."
)


class TracerHooks(BaseCallback):
    """A DSPy callback whose hooks all call `self._start(call_id, kind, instance, inputs)` and
    `self._end(call_id, outputs, exception)`; subclasses write those two."""

    def _start(self, call_id: str, kind: str, instance: Any, inputs: dict[str, Any]) -> None:
        raise NotImplementedError()

    def _end(self, call_id: str, outputs: Any, exception: BaseException | None) -> None:
        raise NotImplementedError()

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
        self._guarded("_start", call_id, "format", instance, inputs)

    def on_adapter_format_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self._guarded("_end", call_id, outputs, exception)

    def on_adapter_parse_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._guarded("_start", call_id, "parse", instance, inputs)

    def on_adapter_parse_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self._guarded("_end", call_id, outputs, exception)

    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._guarded("_start", call_id, "tool", instance, inputs)

    def on_tool_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self._guarded("_end", call_id, outputs, exception)
