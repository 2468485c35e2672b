"""The grammars one engine decodes with: planned once per (schema, max_tokens), checked once."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from dspy.lm15 import UnsupportedFeatureError

from .budget import PROVIDER, GrammarPlan, plan_grammar
from .runtime import Runtime

__all__ = ["GrammarPlanner"]


class GrammarPlanner:
    """Plans (`budget.plan_grammar`) under one engine's bounds, with their llama.cpp grammars.

    Each signature has one schema, so a notebook reuses a handful of plans; building one takes a
    few milliseconds, checking it with llama.cpp's parser a little more: both are cached.
    """

    def __init__(
        self,
        *,
        default_max_chars: int,
        field_max_chars: Mapping[str, int],
        max_items: int,
        block_placeholders: bool,
    ) -> None:
        self.settings = {
            "default_max_chars": default_max_chars,
            "field_max_chars": dict(field_max_chars),
            "max_items": max_items,
            "block_placeholders": block_placeholders,
        }
        self._plans: dict[tuple[str, int | None], tuple[GrammarPlan, Any]] = {}
        self._checked: set[str] = set()  # grammar texts llama.cpp's parser accepted
        self._lock = threading.Lock()

    def plan(self, schema: Mapping[str, Any] | None, max_tokens: int | None) -> GrammarPlan:
        """The grammar and token budget for `schema` under `max_tokens`."""
        return self.planned(schema, max_tokens)[0]

    def planned(
        self, schema: Mapping[str, Any] | None, max_tokens: int | None
    ) -> tuple[GrammarPlan, Any]:
        """The plan and its `LlamaGrammar`; `UnsupportedFeatureError` for an impossible schema."""
        key = (json.dumps(schema, sort_keys=True), max_tokens)
        with self._lock:
            found = self._plans.get(key)
        if found is None:
            from llama_cpp.llama_grammar import LlamaGrammar

            try:
                plan = plan_grammar(schema, max_tokens=max_tokens, **self.settings)
            except UnsupportedFeatureError:
                raise
            except Exception as exc:  # a schema feature the converter does not know
                raise UnsupportedFeatureError(
                    f"the local model cannot decode this JSON schema: {exc}", provider=PROVIDER
                ) from exc
            found = (plan, LlamaGrammar.from_string(plan.grammar, verbose=False))
            with self._lock:
                self._plans[key] = found
        return found

    def check(self, runtime: Runtime, grammar_text: str | None) -> None:
        """Refuse a grammar llama.cpp's parser rejects, before it reaches the sampler (model
        thread only: the check needs the loaded vocabulary)."""
        if grammar_text is None or grammar_text in self._checked:
            return
        if not runtime.grammar_parses(grammar_text):
            raise UnsupportedFeatureError(
                "llama.cpp could not parse the grammar for this output schema; "
                "use smaller bounds (default_max_chars, max_items) or a simpler signature",
                provider=PROVIDER,
            )
        with self._lock:
            self._checked.add(grammar_text)

    def refit(self, runtime: Runtime, schema: Mapping[str, Any] | None, room: int) -> Any | None:
        """A `LlamaGrammar` for `schema` whose worst case fits `room` tokens, or None.

        Bounds planned for `room // 4` tokens at one token a character take at most `room` bytes
        (a character is at most four), so the JSON still closes inside the context window.
        """
        plan, grammar = self.planned(schema, max(1, room // 4))
        if not plan.bounded or plan.max_tokens is None or plan.max_tokens > room:
            return None
        self.check(runtime, plan.grammar)
        return grammar
