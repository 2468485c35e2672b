"""The one flattening of a DSPy request to text, shared by every engine and tool of the workbook.

A `dspy.lm15.Request` carries the system prompt (a string or text parts) and messages made of
parts. The course engines read text only; the tracer keys recorded calls by the same texts. One
function here, so that they all agree on what "the prompt" of a request is.
"""

from __future__ import annotations

import re
from typing import Any

from dspy.lm15 import Request, UnsupportedFeatureError

__all__ = ["request_inputs", "request_messages", "request_text"]

_FIELD_RE = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\n\nRespond with|\Z)", re.S)
# SmolLM2's (and most) chat templates know system/user/assistant; a developer message instructs.
_ROLES = {"user": "user", "assistant": "assistant", "developer": "system"}


def _parts_text(parts: Any, where: str, provider: str | None) -> str:
    """Concatenate text parts; with `provider` set, refuse any other kind of part."""
    if parts is None or isinstance(parts, str):
        return parts or ""
    texts = []
    for part in parts:
        kind = getattr(part, "type", type(part).__name__)
        if kind == "text":
            texts.append(part.text)
        elif provider is not None and kind != "thinking":  # earlier reasoning: no new instruction
            raise UnsupportedFeatureError(
                f"the {provider} model reads text only; {where} contains a {kind!r} part",
                provider=provider,
            )
    return "".join(texts)


def request_messages(request: Request, *, text_only_for: str | None = None) -> list[dict[str, str]]:
    """The request as chat messages ``[{"role", "content"}, ...]``, the system prompt first.

    This is the shape DSPy records in `lm.history[i]["messages"]`. With ``text_only_for="local"``
    a part that is not text (an image, a tool call) or a tool message raises
    `UnsupportedFeatureError` naming that provider, instead of being skipped.
    """
    messages = []
    system = _parts_text(request.system, "the system prompt", text_only_for)
    if system:
        messages.append({"role": "system", "content": system})
    for index, message in enumerate(request.messages):
        role = _ROLES.get(message.role)
        if role is None and text_only_for is not None:
            raise UnsupportedFeatureError(
                f"the {text_only_for} model has no {message.role!r} messages (no tool calling)",
                provider=text_only_for,
            )
        content = _parts_text(message.parts, f"message {index}", text_only_for)
        messages.append({"role": role or message.role, "content": content})
    return messages


def request_text(request: Request) -> str:
    """The system prompt plus every message, as one string (what a provider would be sent)."""
    system = _parts_text(request.system, "the system prompt", None)
    return system + "\n" + "\n".join(m.text or "" for m in request.messages)


def request_inputs(request: Request) -> dict[str, str]:
    """The input fields DSPy's adapters wrote into the last user message (`[[ ## name ## ]]`)."""
    last = request.messages[-1].text or "" if request.messages else ""
    return {name: value.strip() for name, value in _FIELD_RE.findall(last)}
