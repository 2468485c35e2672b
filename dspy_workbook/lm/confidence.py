"""A confidence from the model itself: the token log-probabilities of one output field.

Ask DSPy for log-probabilities — ``dspy.Predict(sig, logprobs=True)``, or per call
``predict(question=..., config={"logprobs": True})``, or ``lm(..., logprobs=True)`` — and the
prediction carries ``prediction.logprobs = {"content": [{"token", "logprob", "bytes",
"top_logprobs"}, ...]}`` for every generated token (DSPy 3.4's format, the same for hosted models).

`answer_confidence` keeps the tokens that wrote one field's value (JSON adapter: the string or
value after ``"answer":``; chat adapter: the text after ``[[ ## answer ## ]]``) and returns their
geometric-mean probability, ``exp(mean(logprob))``: 1.0 when the model was certain of every token
of the answer, lower the more it hesitated. Length-neutral (a mean, not a product), so a long
answer is not less "confident" than a short one for its length alone.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .._errors import WorkbookError

__all__ = ["answer_confidence", "token_logprobs"]

_HOW = (
    "ask for them with dspy.Predict(..., logprobs=True), "
    "predict(..., config={'logprobs': True}) or lm(..., logprobs=True)"
)


def _plain(value: Any) -> Any:
    """A provider's typed object (LiteLLM's pydantic `ChoiceLogprobs`) as plain dicts and lists."""
    dump = getattr(value, "model_dump", None)
    return dump() if callable(dump) else value


def token_logprobs(prediction_or_outputs: Any) -> list[Mapping[str, Any]]:
    """The per-token entries of a prediction, an LM output dict, or a list of LM outputs.

    The local engine gives plain dicts; a hosted model reached through LiteLLM gives LiteLLM's
    typed objects of the same shape — both are read.
    """
    value = prediction_or_outputs
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and value:
        value = value[0]  # `lm(...)` returns one output per generation
    if isinstance(value, Mapping):
        logprobs = value.get("logprobs")
    else:  # a dspy.Prediction: the adapter adds `logprobs` next to the output fields
        logprobs = getattr(value, "logprobs", None)
    logprobs = _plain(logprobs)
    content = logprobs.get("content") if isinstance(logprobs, Mapping) else None
    if not content:
        raise WorkbookError(f"this result carries no token log-probabilities: {_HOW}")
    return [_plain(entry) for entry in content]


def _token_bytes(entry: Mapping[str, Any]) -> bytes:
    raw = entry.get("bytes")
    return bytes(raw) if raw is not None else str(entry.get("token", "")).encode()


def _json_value_span(text: str, field: str | None) -> tuple[int, int] | None:
    """Character span of `field`'s value (the last field if None) in a JSON object's text."""
    decoder, start = json.JSONDecoder(), text.find("{")
    if start < 0:
        return None
    pos, spans = start + 1, {}
    ws = re.compile(r"[\s,]*")
    while pos < len(text):
        pos = ws.match(text, pos).end()
        if pos >= len(text) or text[pos] == "}":
            break
        try:
            key, pos = decoder.raw_decode(text, pos)
            pos = re.compile(r"\s*:\s*").match(text, pos).end()
            begin = pos
            _, pos = decoder.raw_decode(text, pos)
        except (ValueError, AttributeError):
            break
        spans[key] = (begin + 1, pos - 1) if text[begin] == '"' else (begin, pos)
    if not spans:
        return None
    return spans.get(field) if field is not None else list(spans.values())[-1]


def _marker_value_span(text: str, field: str | None) -> tuple[int, int] | None:
    """Span of a field's value in the chat adapter's ``[[ ## name ## ]]`` format."""
    markers = list(re.finditer(r"\[\[ ## (\w+) ## \]\]\s*", text))
    markers = [m for m in markers if m.group(1) != "completed"] + [None]
    for here, after in zip(markers, markers[1:], strict=False):
        if field is None and after is not None:
            continue
        if field is None or here.group(1) == field:
            end = after.start() if after is not None else text.find("[[ ## completed", here.end())
            end = len(text) if end < 0 else end
            return here.end(), len(text[:end].rstrip())
    return None


def answer_confidence(prediction_or_outputs: Any, field: str | None = "answer") -> float:
    """Geometric-mean probability (0..1) of the tokens that wrote `field`'s value.

    `prediction_or_outputs`: a `dspy.Prediction` made with logprobs on, or what
    ``lm(..., logprobs=True)`` returned. `field=None` takes the last output field. Raises
    `WorkbookError` if there are no log-probabilities or the field cannot be found.
    """
    entries = token_logprobs(prediction_or_outputs)
    pieces = [_token_bytes(e) for e in entries]
    raw = b"".join(pieces)
    text = raw.decode("utf-8", "replace")
    span = (_json_value_span if text.lstrip().startswith("{") else _marker_value_span)(text, field)
    if span is None or span[1] <= span[0]:
        raise WorkbookError(f"no value for field {field!r} in the generated text {text[:120]!r}")
    # Character span → byte span, then the tokens that overlap it.
    first = len(text[: span[0]].encode())
    last = len(text[: span[1]].encode())
    chosen, offset = [], 0
    for entry, piece in zip(entries, pieces, strict=True):
        if offset < last and offset + len(piece) > first:
            chosen.append(float(entry["logprob"]))
        offset += len(piece)
    if not chosen:
        raise WorkbookError(f"no tokens cover field {field!r}")
    return math.exp(sum(chosen) / len(chosen))
