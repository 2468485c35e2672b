"""JSON schema → a bounded llama.cpp grammar (GBNF).

DSPy's `JSONAdapter` sends the JSON schema of a signature's outputs. `bound_schema` gives every
free string a length bound and every array an item bound; `json_grammar_text` turns the result into
GBNF with llama-cpp-python's converter, except for bounded strings, which it writes itself as
``"\\"" lead-char text-char{0,N} "\\""``: the converter's own form nests N optional groups, and
llama.cpp's grammar parser gives up on ~1,500 levels — which llama-cpp-python then dereferenced
as a null pointer (the kernel died with a segfault). A flat repetition parses at any length.

The string characters exclude control characters (JSON requires them escaped) and ``\\uXXXX``
escapes (the model can write the character itself), so one character of a string is at most
two characters of output (``\\n``) and at most four bytes: `budget.py` relies on that.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = [
    "DEFAULT_FIELD_MAX_CHARS",
    "DEFAULT_MAX_CHARS",
    "DEFAULT_MAX_ITEMS",
    "MAX_CHARS_LIMIT",
    "MAX_ITEMS_LIMIT",
    "bound_schema",
    "json_grammar_text",
]

# Character bounds on generated string fields: CoT's reasoning gets more room than an answer.
# They are upper bounds: a call's `max_tokens` lowers them (see budget.py).
DEFAULT_MAX_CHARS = 200
DEFAULT_FIELD_MAX_CHARS: Mapping[str, int] = MappingProxyType({"reasoning": 300})
DEFAULT_MAX_ITEMS = 10
# What a setting may ask for. Strings: no answer of a 135M model needs more, and the worst case
# must fit the context window (4 bytes a character). Items: the converter nests one group per
# optional item, so this also keeps llama.cpp's grammar parser far from its nesting limit.
MAX_CHARS_LIMIT = 4000
MAX_ITEMS_LIMIT = 50

_SHAPED = frozenset({"enum", "const", "pattern", "format"})  # strings the grammar already shapes
# A bounded string's first character may not be `{`, a quote, a backslash, whitespace or a
# control character. Why: DSPy's prompt shows the output format with placeholders
# (`"answer": "{answer}"`) and a 135M model likes to copy them; measured on 8 questions, Predict
# answered `{answer}` 2 times in 8 without this rule and 0 times with it.
_LEAD_CHAR = r'[^"\\{\x00-\x20]'
_TEXT_CHAR = r'[^"\\\x00-\x1F] | "\\" ["\\/bfnrt]'


def _is(node: Mapping[str, Any], kind: str) -> bool:
    declared = node.get("type")
    return declared == kind or (isinstance(declared, list) and kind in declared)


def bound_schema(
    schema: Mapping[str, Any],
    *,
    default_max_chars: int = DEFAULT_MAX_CHARS,
    field_max_chars: Mapping[str, int] | None = None,
    min_chars: int = 1,
    max_items: int = DEFAULT_MAX_ITEMS,
    scale: float = 1.0,
) -> dict[str, Any]:
    """A copy of `schema` whose free strings get `minLength`/`maxLength` and arrays `maxItems`.

    A top-level property named in `field_max_chars` gets that bound, every other string
    `default_max_chars`. `scale` (0..1) shrinks every string bound ``b`` to ``1 + floor((b-1) *
    scale)``, which keeps the grammar's worst-case length linear in `scale` (budget.py uses it).
    """
    per_field = dict(DEFAULT_FIELD_MAX_CHARS if field_max_chars is None else field_max_chars)

    def bound(node: Any, limit: int) -> Any:
        if isinstance(node, list):
            return [bound(item, limit) for item in node]
        if not isinstance(node, dict):
            return node
        out = {key: bound(value, limit) for key, value in node.items() if key != "properties"}
        if isinstance(node.get("properties"), dict):
            out["properties"] = {
                name: bound(sub, limit) for name, sub in node["properties"].items()
            }
        if _is(node, "string") and not _SHAPED & node.keys():
            most = min(int(node.get("maxLength", limit)), limit)
            most = 1 + math.floor((most - 1) * scale) if most >= 1 else most
            out["maxLength"] = most
            if min_chars and most >= min_chars:
                # A non-empty answer: a tiny model otherwise sometimes "answers" with "".
                out["minLength"] = max(int(node.get("minLength", 0)), min_chars)
        if _is(node, "array"):  # a list cannot loop either
            out["maxItems"] = min(int(node.get("maxItems", max_items)), max_items)
        return out

    result = {
        key: bound(value, default_max_chars) for key, value in schema.items() if key != "properties"
    }
    properties = schema.get("properties")
    if isinstance(properties, dict):
        result["properties"] = {
            name: bound(sub, per_field.get(name, default_max_chars))
            for name, sub in properties.items()
        }
    return result


def _converter(block_placeholders: bool) -> Any:
    """llama-cpp-python's schema converter, writing bounded strings as a flat repetition."""
    from llama_cpp import llama_grammar

    class BoundedConverter(llama_grammar.SchemaConverter):
        def visit(self, schema: dict[str, Any], name: str) -> str:
            if (
                isinstance(schema, dict)
                and schema.get("type") == "string"
                and "maxLength" in schema
                and not _SHAPED & schema.keys()
            ):
                rule_name = f"{name}-" if name in llama_grammar.RESERVED_NAMES else name or "root"
                return self._add_rule(rule_name, self._bounded_string(schema))
            return super().visit(schema, name)

        def _bounded_string(self, schema: dict[str, Any]) -> str:
            most = int(schema["maxLength"])
            least = min(int(schema.get("minLength", 0)), most)
            text_char = self._add_rule("text-char", _TEXT_CHAR)
            parts = []
            if block_placeholders and least >= 1:
                parts.append(self._add_rule("lead-char", _LEAD_CHAR))
                least, most = least - 1, most - 1
            if most > 0:
                parts.append(f"{text_char}{{{least},{most}}}")
            return r'"\"" ' + " ".join(parts) + r' "\"" space'

    return BoundedConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)


def json_grammar_text(schema: Mapping[str, Any] | None, *, block_placeholders: bool = True) -> str:
    """GBNF text constraining output to JSON (of `schema`, if given) for llama.cpp's sampler."""
    from llama_cpp import llama_grammar

    if schema is None:
        return llama_grammar.JSON_GBNF
    converter = _converter(block_placeholders)
    resolved = converter.resolve_refs(json.loads(json.dumps(schema)), "stdin")
    converter.visit(resolved, "")
    return converter.format_grammar()
