"""The same calls as OpenTelemetry spans: the vendor-neutral standard teams export traces with.

`OpenTelemetrySpans` is a DSPy callback: every module, LM and adapter call becomes a span, nested
under its caller (DSPy's `ACTIVE_CALL_ID`), with the LM's model and token usage as attributes
named after OpenTelemetry's generative-AI conventions (`gen_ai.*`). It uses its own
`TracerProvider` (never the global one), so a notebook cell can build it again; pass an exporter
(`InMemorySpanExporter` for tests, `ConsoleSpanExporter`, or OTLP to Jaeger/Tempo/Honeycomb).
"""

from __future__ import annotations

from typing import Any

from dspy.utils.callback import BaseCallback
from dspy.utils.callback_context import ACTIVE_CALL_ID
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Status, StatusCode

from ._usage import CallUsage

__all__ = ["OpenTelemetrySpans"]


class OpenTelemetrySpans(BaseCallback):
    """DSPy callbacks → OpenTelemetry spans (module, LM, format, parse), one tree per call."""

    def __init__(
        self, exporter: SpanExporter | None = None, provider: TracerProvider | None = None
    ) -> None:
        self.provider = provider or TracerProvider()
        if exporter is not None:
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("dspy_workbook.monitoring")
        self._open: dict[str, tuple[Any, CallUsage | None]] = {}

    def _start(
        self, call_id: str, kind: str, instance: Any, usage: CallUsage | None = None
    ) -> None:
        parent = self._open.get(ACTIVE_CALL_ID.get() or "")
        context = trace.set_span_in_context(parent[0]) if parent else None
        name = f"{kind} {type(instance).__name__}"
        attributes = {"dspy.kind": kind}
        model = getattr(instance, "model", None)
        if kind == "lm" and isinstance(model, str):
            name, attributes["gen_ai.request.model"] = f"lm {model}", model
        self._open[call_id] = (
            self.tracer.start_span(name, context=context, attributes=attributes),
            usage,
        )

    def _end(self, call_id: str, exception: BaseException | None) -> None:
        entry = self._open.pop(call_id, None)
        if entry is None:
            return
        span, usage = entry
        if usage is not None:
            usage.end(exception)
            span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
            span.set_attribute("dspy.cache_hit", usage.cache_hit)
        if exception is not None:
            span.record_exception(exception)
            span.set_status(Status(StatusCode.ERROR, type(exception).__name__))
        span.end()

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._start(call_id, "module", instance)

    def on_module_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self._end(call_id, exception)

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._start(call_id, "lm", instance, CallUsage.begin())

    def on_lm_end(self, call_id: str, outputs: Any, exception: BaseException | None = None) -> None:
        self._end(call_id, exception)

    def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._start(call_id, "format", instance)

    def on_adapter_format_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self._end(call_id, exception)

    def on_adapter_parse_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._start(call_id, "parse", instance)

    def on_adapter_parse_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self._end(call_id, exception)

    def shutdown(self) -> None:
        """Flush and stop this provider's processors."""
        self.provider.shutdown()
