"""Between DSPy's `dspy.lm15` types and llama.cpp: messages in, errors and responses out."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from dspy.lm15 import (
    ContextLengthError,
    InvalidRequestError,
    Message,
    Request,
    Response,
    ServerError,
    StreamDeltaEvent,
    StreamEndEvent,
    StreamStartEvent,
    TextDelta,
    TextPart,
    Usage,
)

from .._request import request_messages

__all__ = ["PROVIDER", "chat_messages", "error_from", "response_from", "stream_event"]

PROVIDER = "local"
# What a generation sends its caller, in order: ("start", None), ("delta", (text, logprobs))…,
# ("end", (finish_reason, usage)), then ("done", None) — or ("error", exception) at any point.
Event = tuple[str, Any]


def chat_messages(request: Request) -> list[dict[str, str]]:
    """`request.system` + `request.messages` as `create_chat_completion`'s role/content dicts."""
    return request_messages(request, text_only_for=PROVIDER)


def error_from(exc: Exception) -> Exception:
    """A llama.cpp failure as the `dspy.lm15` error DSPy can report (and knows whether to retry)."""
    text = str(exc)
    if "context window" in text or ("context" in text and "exceed" in text):
        return ContextLengthError(
            f"the prompt does not fit the local model's context: {text}", provider=PROVIDER
        )
    if isinstance(exc, (ValueError, TypeError)):
        return InvalidRequestError(
            f"the local model refused the request: {text}", provider=PROVIDER
        )
    # llama_decode failures: the context is reset by the engine, so one retry can succeed.
    return ServerError(
        f"llama.cpp failed during generation: {type(exc).__name__}: {text}", provider=PROVIDER
    )


def _new_id() -> str:
    return f"local-{uuid.uuid4().hex[:12]}"


def response_from(request: Request, events: Iterable[Event]) -> Response:
    """Assemble the events of one generation into a `Response`."""
    text: list[str] = []
    logprobs: list[Any] = []
    finish, usage = "stop", Usage()
    for kind, value in events:
        if kind == "delta":
            text.append(value[0])
            logprobs.extend(value[1])
        elif kind == "end":
            finish, usage = value
    wanted = request.config.logprobs is not None
    return Response(
        id=_new_id(),
        model=request.model,
        message=Message.assistant((TextPart("".join(text)),)),
        finish_reason=finish,
        usage=usage,
        logprobs=tuple(logprobs) if wanted else None,
    )


def stream_event(request: Request, item: Event) -> Any:
    """One generation event as the `dspy.lm15` stream event DSPy expects."""
    kind, value = item
    if kind == "start":
        return StreamStartEvent(id=_new_id(), model=request.model)
    if kind == "delta":
        return StreamDeltaEvent(delta=TextDelta(text=value[0], logprobs=tuple(value[1])))
    return StreamEndEvent(finish_reason=value[0], usage=value[1])
