"""One LM call's token usage and cache hit, captured without racing other calls.

DSPy's LM callbacks see a call's inputs and outputs but not its usage; DSPy hands usage to
`settings.usage_tracker` inside the call. Reading `lm.history[-1]` in `on_lm_end` is racy: under
concurrency the last entry may be another call's. Instead, `CallUsage.begin()` (in `on_lm_start`)
installs a fresh tracker for *this* call with `dspy.context`, which is a context variable, so
concurrent calls (threads, asyncio tasks) each see their own; `end()` (in `on_lm_end`, which DSPy
runs in the same context) removes it. Usage still reaches any tracker the caller had open
(`dspy.track_usage()`), because ours forwards to it.

A cache hit is a call that finished without error and without usage: DSPy records no usage for
an answer its cache served (an engine that reports no usage at all would look like a hit).
"""

from __future__ import annotations

from typing import Any

import dspy
from dspy.utils.usage_tracker import UsageTracker

__all__ = ["CallUsage"]


class _ForwardingTracker(UsageTracker):
    """A tracker for one call that also passes each entry to the tracker that was active before."""

    def __init__(self, parent: UsageTracker | None) -> None:
        super().__init__()
        self.parent = parent

    def add_usage(self, lm: str, usage_entry: dict[str, Any]) -> None:
        super().add_usage(lm, usage_entry)
        if self.parent is not None:
            self.parent.add_usage(lm, usage_entry)


class CallUsage:
    """Usage of one LM call: `begin()` in `on_lm_start`, `end(exception)` in `on_lm_end`."""

    def __init__(self, model: str = "") -> None:
        self._tracker = _ForwardingTracker(dspy.settings.usage_tracker)
        self._scope = dspy.context(usage_tracker=self._tracker)
        self.model = model  # the LM's model id, e.g. "openai/gpt-4o-mini" (for the price)
        self.finished = False
        self.error: BaseException | None = None

    @classmethod
    def begin(cls, model: str = "") -> CallUsage:
        """Start capturing the usage of the LM call that is about to run in this context."""
        usage = cls(model)
        usage._scope.__enter__()
        return usage

    def end(self, exception: BaseException | None = None) -> CallUsage:
        """Stop capturing (call it from the same call's `on_lm_end`); returns self."""
        if not self.finished:
            self.finished = True
            self.error = exception
            try:
                self._scope.__exit__(None, None, None)
            except ValueError:  # ended from another context: the scope is gone with that context
                pass
        return self

    def _total(self, *keys: str) -> int:
        total = 0
        for entries in self._tracker.usage_data.values():
            for entry in entries:
                total += next(
                    (int(entry[k]) for k in keys if isinstance(entry.get(k), int | float)), 0
                )
        return total

    @property
    def input_tokens(self) -> int:
        """Prompt tokens the provider billed for this call (0 on a cache hit)."""
        return self._total("prompt_tokens", "input_tokens")

    @property
    def output_tokens(self) -> int:
        """Completion tokens the provider billed for this call (0 on a cache hit)."""
        return self._total("completion_tokens", "output_tokens")

    @property
    def cache_hit(self) -> bool:
        """True when the call succeeded and no usage was recorded: DSPy's cache answered."""
        return self.finished and self.error is None and not self._tracker.usage_data

    def __repr__(self) -> str:
        state = (
            "hit"
            if self.cache_hit
            else "error"
            if self.error
            else "miss"
            if self.finished
            else "open"
        )
        return f"CallUsage({state}, in={self.input_tokens}, out={self.output_tokens})"
