"""What a cached DSPy module needs besides its cache: the program's description for the key, and
its outputs as JSON and back with their own types (Exercise 1, given code).

A key computed from the inputs *before* DSPy builds a prompt must name everything else the prompt
and the parsed answer depend on: the signature's instructions and every field's type and
description, the few-shot demos and the adapter. Outputs are stored as JSON with pydantic, the way
DSPy itself parses them, and come back as the fields' own types (a `date` as a `date`).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import dspy
from pydantic import TypeAdapter

from .._errors import BackendError

__all__ = ["decode_outputs", "describe_program", "encode_outputs", "lm_in_use"]


@functools.lru_cache(maxsize=256)
def _adapter(annotation: Any) -> TypeAdapter:
    return TypeAdapter(annotation)  # building one costs ~100 µs: once per type


@functools.lru_cache(maxsize=128)
def _describe_signature(signature: type[dspy.Signature]) -> str:
    fields = []
    for name, field in signature.fields.items():
        extra = field.json_schema_extra or {}
        try:
            schema = _adapter(field.annotation).json_schema()  # the structure of a nested type
        except Exception:  # a type pydantic cannot describe: its name has to do
            schema = None
        fields.append(
            {
                "name": name,
                "role": extra.get("__dspy_field_type"),
                "type": repr(field.annotation),
                "schema": schema,
                "desc": extra.get("desc"),
                "prefix": extra.get("prefix"),
            }
        )
    return json.dumps(
        {"instructions": signature.instructions, "fields": fields}, sort_keys=True, default=str
    )


def describe_program(predict: dspy.Predict) -> str:
    """All that shapes `predict`'s prompt and parsing except the inputs and the LM, as JSON text:
    instructions, fields (role, type, description, prefix), few-shot demos and the adapter."""
    adapter = dspy.settings.adapter
    demos = [demo.toDict() if hasattr(demo, "toDict") else dict(demo) for demo in predict.demos]
    return json.dumps(
        {
            "signature": _describe_signature(predict.signature),
            "demos": demos,
            "adapter": type(adapter).__name__ if adapter else "ChatAdapter",
        },
        sort_keys=True,
        default=str,
    )


def lm_in_use(predict: dspy.Predict) -> dspy.LM:
    """The LM that will answer `predict` now: its own, else the one in `dspy.context`/settings."""
    lm = predict.lm or dspy.settings.lm
    if lm is None:
        raise BackendError(
            "No LM is configured: run `lm = wb.setup()` first, or use dspy.context(lm=...)."
        )
    return lm


def encode_outputs(signature: type[dspy.Signature], prediction: dspy.Prediction) -> dict:
    """The output fields of `prediction` as JSON-ready values (a `date` becomes "1969-07-20").

    Raises TypeError naming the field when a value cannot be stored as JSON.
    """
    encoded = {}
    for name, field in signature.output_fields.items():
        try:
            encoded[name] = _adapter(field.annotation).dump_python(prediction[name], mode="json")
        except Exception as exc:
            raise TypeError(f"output field {name!r} cannot be stored as JSON: {exc}") from exc
    return encoded


def decode_outputs(signature: type[dspy.Signature], stored: Any) -> dspy.Prediction | None:
    """A prediction with the output fields' own types, or None when `stored` does not fit them
    (None itself, another signature's entry, or an entry edited by hand)."""
    fields = signature.output_fields
    if not isinstance(stored, dict) or set(stored) != set(fields):
        return None
    try:
        return dspy.Prediction(
            **{
                name: _adapter(field.annotation).validate_python(stored[name])
                for name, field in fields.items()
            }
        )
    except Exception:
        return None
