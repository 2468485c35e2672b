"""Parse by construction: every constrained answer closes its JSON within the call's token budget.

The rule (for every signature, every `max_tokens`):

1. **Bounds from the budget.** Count the worst case in tokens as one token per character of
   output — a digit run or rare punctuation is exactly that. The grammar's worst-case length ``W``
   is computed from the grammar itself (`worst_case_length`). If ``W`` exceeds the request's
   `max_tokens`, every string bound ``b`` shrinks to ``1 + floor((b-1) * f)``, with ``f`` chosen so
   that ``W <= max_tokens`` (``W`` is linear in the bounds, so one scaling suffices).
2. **The budget from the bounds.** A token is at least one byte, so the grammar's worst case in
   *bytes* bounds the tokens of any generation it admits: a non-ASCII character is up to four
   bytes (and may take four tokens), an escape two, and the JSON structure itself (six field names,
   a number's 50 digits) may not fit a tiny `max_tokens` even with one-character strings. The
   engine therefore generates up to ``max(max_tokens, W_bytes + 1)`` tokens — the `+1` is the
   end-of-turn token. Plain ASCII text never needs more than the request asked for.

3. **The context window.** If that budget does not fit beside the prompt, the engine plans again
   for a quarter of the room left (a character is at most four bytes) before generating, so the
   JSON still closes; only a prompt that leaves no room at all is a `ContextLengthError`.

A grammar without a finite bound (a free-form `dict` or `Any` output) keeps the request's
`max_tokens` and carries no guarantee; such a plan says so (``bounded=False``).

`check_grammar_shape` refuses grammars llama.cpp's parser cannot take (too deeply nested), so a
setting can never reach the null pointer that used to kill the kernel.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dspy.lm15 import UnsupportedFeatureError

from .grammar import bound_schema, json_grammar_text

__all__ = ["GrammarPlan", "check_grammar_shape", "plan_grammar", "worst_case_length"]

PROVIDER = "local"
# llama.cpp's recursive grammar parser failed (returned NULL) at ~1,500 nested groups here.
MAX_NESTING = 400
# In "tokens" mode a string character counts once, whatever its escape or encoding.
_CHAR_RULES = frozenset({"text-char", "lead-char"})

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<lit>"(?:\\.|[^"\\])*")
    | (?P<cls>\[(?:\\.|[^\]\\])*\])
    | (?P<rep>\{\s*\d+\s*(?:,\s*\d*\s*)?\})
    | (?P<name>[A-Za-z0-9_-]+)
    | (?P<op>[()|?*+.])
    )""",
    re.X,
)
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)", re.S)
_SIMPLE = {"n": "\n", "r": "\r", "t": "\t"}


def _code_points(text: str) -> list[int]:
    """Code points of a GBNF literal/class body, escapes decoded."""
    points, pos = [], 0
    for match in _ESCAPE.finditer(text):
        points.extend(ord(c) for c in text[pos : match.start()])
        escape = match.group(1)
        points.append(
            int(escape[1:], 16)
            if escape[0] in "xuU" and len(escape) > 1
            else ord(_SIMPLE.get(escape, escape))
        )
        pos = match.end()
    points.extend(ord(c) for c in text[pos:])
    return points


def _utf8_len(point: int) -> int:
    return 1 if point < 0x80 else 2 if point < 0x800 else 3 if point < 0x10000 else 4


def _rules(text: str) -> dict[str, list[tuple[str, str]]]:
    rules: dict[str, list[tuple[str, str]]] = {}
    for line in text.splitlines():
        if "::=" not in line:
            continue
        name, body = line.split("::=", 1)
        tokens, pos = [], 0
        body = body.strip()
        while pos < len(body):
            match = _TOKEN.match(body, pos)
            if match is None or match.end() == pos:
                where = body[pos : pos + 20]
                raise ValueError(f"cannot read grammar rule {name.strip()!r} at {where!r}")
            tokens.append((match.lastgroup or "", match.group(match.lastgroup or 0)))
            pos = match.end()
            while pos < len(body) and body[pos].isspace():
                pos += 1
        rules[name.strip()] = tokens
    return rules


def worst_case_length(grammar: str, *, unit: str = "bytes", root: str = "root") -> float:
    """The longest text `grammar` admits: in UTF-8 bytes, or in characters with ``unit="tokens"``
    (one per string character, escapes included). ``math.inf`` if it is unbounded."""
    rules = _rules(grammar)
    memo: dict[str, float] = {}
    active: set[str] = set()

    def rule_length(name: str) -> float:
        if name in memo:
            return memo[name]
        if unit == "tokens" and name in _CHAR_RULES:
            return 1.0
        if name in active:  # recursion: a rule that can contain itself is unbounded
            return math.inf
        if name not in rules:
            raise ValueError(f"grammar refers to an undefined rule {name!r}")
        active.add(name)
        length, _ = alternation(rules[name], 0)
        active.discard(name)
        memo[name] = length
        return length

    def primary(tokens: list[tuple[str, str]], i: int) -> tuple[float, int]:
        kind, text = tokens[i]
        if kind == "lit":
            points = _code_points(text[1:-1])
            size = sum(_utf8_len(p) for p in points) if unit == "bytes" else len(points)
            return float(size), i + 1
        if kind == "cls":
            if unit != "bytes":
                return 1.0, i + 1
            body = text[1:-1]
            if body.startswith("^"):
                return 4.0, i + 1
            return float(max((_utf8_len(p) for p in _code_points(body)), default=1)), i + 1
        if kind == "name":
            return rule_length(text), i + 1
        if text == ".":
            return (4.0 if unit == "bytes" else 1.0), i + 1
        if text == "(":
            length, i = alternation(tokens, i + 1)
            if i >= len(tokens) or tokens[i][1] != ")":
                raise ValueError("unbalanced parentheses in grammar")
            return length, i + 1
        raise ValueError(f"unexpected {text!r} in grammar")

    def sequence(tokens: list[tuple[str, str]], i: int) -> tuple[float, int]:
        total = 0.0
        while i < len(tokens) and tokens[i][1] not in ("|", ")"):
            length, i = primary(tokens, i)
            while i < len(tokens) and (tokens[i][0] == "rep" or tokens[i][1] in "?*+"):
                kind, text = tokens[i]
                if kind == "rep":
                    low, _, high = text[1:-1].partition(",")
                    if _ and not high.strip():
                        length = math.inf if length else 0.0
                    else:
                        length *= int(high if _ else low)
                elif text in "*+":
                    length = math.inf if length else 0.0
                i += 1
            total += length
        return total, i

    def alternation(tokens: list[tuple[str, str]], i: int) -> tuple[float, int]:
        best, i = sequence(tokens, i)
        while i < len(tokens) and tokens[i][1] == "|":
            length, i = sequence(tokens, i + 1)
            best = max(best, length)
        return best, i

    return rule_length(root)


def check_grammar_shape(grammar: str) -> None:
    """Refuse a grammar llama.cpp's parser could not take (`UnsupportedFeatureError`)."""
    depth = deepest = 0
    in_literal = in_class = escaped = False
    for char in grammar:
        if escaped:
            escaped = False
        elif char == "\\" and (in_literal or in_class):
            escaped = True
        elif in_literal:
            in_literal = char != '"'
        elif in_class:
            in_class = char != "]"
        elif char == '"':
            in_literal = True
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    if deepest > MAX_NESTING:
        raise UnsupportedFeatureError(
            f"the local model cannot decode this output schema: its grammar nests {deepest} levels "
            f"deep (llama.cpp takes at most {MAX_NESTING}); use fewer list items or fields",
            provider=PROVIDER,
        )


@dataclass(frozen=True)
class GrammarPlan:
    """How one schema is decoded under one `max_tokens`: the grammar and the token budget."""

    grammar: str
    max_tokens: int | None  # what the engine passes to llama.cpp (>= the request's)
    worst_case_tokens: float  # the grammar's longest output, one token per byte
    bounded: bool  # False: a free-form part (dict/Any) has no bound, nothing is guaranteed
    scale: float  # how much the configured string bounds were shrunk (1.0 = not at all)


def plan_grammar(
    schema: Mapping[str, Any] | None,
    *,
    max_tokens: int | None,
    default_max_chars: int,
    field_max_chars: Mapping[str, int],
    max_items: int,
    block_placeholders: bool = True,
) -> GrammarPlan:
    """The grammar and token budget for `schema` under the rule in this module's docstring."""
    if schema is None:  # free JSON (`json_object`): nothing to bound
        grammar = json_grammar_text(None)
        return GrammarPlan(grammar, max_tokens, math.inf, False, 1.0)

    def grammar_at(scale: float) -> str:
        bounded = bound_schema(
            json.loads(json.dumps(schema)),
            default_max_chars=default_max_chars,
            field_max_chars=field_max_chars,
            max_items=max_items,
            scale=scale,
        )
        return json_grammar_text(bounded, block_placeholders=block_placeholders)

    scale, grammar = 1.0, grammar_at(1.0)
    check_grammar_shape(grammar)
    full = worst_case_length(grammar, unit="tokens")
    if max_tokens is not None and math.isfinite(full) and full > max_tokens:
        least = worst_case_length(grammar_at(0.0), unit="tokens")
        scale = max(0.0, (max_tokens - least) / (full - least)) if full > least else 0.0
        grammar = grammar_at(scale)
    worst = worst_case_length(grammar, unit="bytes")
    if not math.isfinite(worst):
        return GrammarPlan(grammar, max_tokens, worst, False, scale)
    needed = int(worst) + 1  # + the end-of-turn token
    budget = needed if max_tokens is None else max(max_tokens, needed)
    return GrammarPlan(grammar, budget, worst, True, scale)
