"""Replay a recorded trace: an LM that answers from the trace and never calls the provider."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dspy
from dspy.lm15 import Message, Request, Response, TextPart, Usage

from .._errors import WorkbookError
from ..lm import request_messages
from ._span import Span

__all__ = ["ReplayMiss", "replay_lm"]


class ReplayMiss(WorkbookError):
    """The replayed program sent a prompt the recorded trace never saw."""


def _key_from_messages(messages: Iterable[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(str(m.get("content") or "") for m in messages)


def _key_from_request(request: Request) -> tuple[str, ...]:
    return tuple(message["content"] for message in request_messages(request))


def _output_text(outputs: Any) -> str | None:
    if isinstance(outputs, list) and outputs:
        first = outputs[0]
        return (
            first
            if isinstance(first, str)
            else (first.get("text") if isinstance(first, dict) else None)
        )
    return None


class ReplayEngine:
    """A DSPy engine that looks each request up in the recorded LM spans."""

    supports_response_schema = True
    supported_params = frozenset(
        {"response_format", "temperature", "max_tokens", "top_p", "seed", "stop"}
    )

    def __init__(self, spans: Iterable[Span]) -> None:
        self.recorded: dict[tuple[str, ...], str] = {}
        for span in spans:
            text = _output_text(span.outputs) if span.kind == "lm" and span.ok else None
            if text is not None and span.inputs.get("messages"):
                self.recorded[_key_from_messages(span.inputs["messages"])] = text
        self.calls = 0

    def complete(self, request: Request) -> Response:
        self.calls += 1
        text = self.recorded.get(_key_from_request(request))
        if text is None:
            raise ReplayMiss(
                "this prompt is not in the recorded trace: the program changed since it "
                "was recorded, or the call failed when it was recorded"
            )
        return Response(
            id=None,
            model="replay/trace",
            message=Message.assistant((TextPart(text),)),
            finish_reason="stop",
            usage=Usage(input_tokens=0, output_tokens=0),
        )

    def close(self) -> None:
        """Nothing to release."""


def replay_lm(spans: Iterable[Span]) -> dspy.LM:
    """A `dspy.LM` answering every prompt with the output recorded in `spans` (no provider call)."""
    engine = ReplayEngine(spans)
    if not engine.recorded:
        raise ReplayMiss("the trace has no successful LM spans to replay — trace a call first")
    # cache=False: a replay must come from the trace, not from DSPy's cache; no retries on a miss.
    return dspy.LM("openai/replay-trace", engine=engine, cache=False, num_retries=0)
