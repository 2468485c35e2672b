"""What one generation does at each token besides choosing it: log-probabilities, the repetition
guard and the string closer.

`before_sample` sees the model's raw logits for the next position (llama.cpp's own buffer) just
before the sampler chooses; `accept` sees the token chosen. Log-probabilities are those of the
model's full distribution at temperature 1 — before the grammar, the guard and the closer narrow
the choice — which is what a hosted provider reports too. The guard runs before the closer, so a
blocked repeat whose runner-up is "the end" closes the string.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dspy.lm15 import TokenLogprob, TopLogprob

from .closer import StringCloser
from .repetition import RepetitionGuard

__all__ = ["TokenHooks"]


class TokenHooks:
    """Per-call token hooks: `logprobs` (None = off, n = also the top-n alternatives), `guard`,
    `closer`."""

    def __init__(
        self,
        piece: Callable[[int], bytes],
        *,
        logprobs: int | None = None,
        guard: RepetitionGuard | None = None,
        closer: StringCloser | None = None,
    ) -> None:
        self._piece = piece
        self.logprobs, self.guard, self.closer = logprobs, guard, closer
        self.records: list[TokenLogprob] = []
        self._scores: Any = None  # log-softmax of the last position, while logprobs are on

    @property
    def active(self) -> bool:
        return self.logprobs is not None or self.guard is not None or self.closer is not None

    def before_sample(self, logits: Any) -> None:
        """Look at (and edit in place) the logits of the next position."""
        if self.logprobs is not None:
            import numpy as np

            shifted = logits.astype(np.float64) - float(logits.max())
            self._scores = shifted - np.log(np.exp(shifted).sum())
        if self.guard is not None:
            self.guard.block(logits)
        if self.closer is not None:
            self.closer.steer(logits)

    def _entry(self, token: int, logprob: float) -> dict[str, Any]:
        piece = self._piece(token)
        return {
            "token": piece.decode("utf-8", "replace"),
            "logprob": logprob,
            "bytes": piece,
            "token_id": token,
        }

    def accept(self, token: int, *, end_of_turn: bool) -> None:
        """The token chosen (the end-of-turn token is not text: no log-probability is kept)."""
        if not end_of_turn:
            if self.guard is not None:
                self.guard.accept(token)
            if self.closer is not None:
                self.closer.accept(token)
        if self.logprobs is None or end_of_turn or self._scores is None:
            return
        import numpy as np

        scores, top = self._scores, ()
        if self.logprobs > 0:
            best = np.argpartition(scores, -self.logprobs)[-self.logprobs :]
            best = best[np.argsort(-scores[best], kind="stable")]
            top = tuple(TopLogprob(**self._entry(int(t), float(scores[t]))) for t in best)
        self.records.append(TokenLogprob(**self._entry(token, float(scores[token])), top=top))
        self._scores = None

    def take(self) -> tuple[TokenLogprob, ...]:
        """The log-probabilities recorded since the last call."""
        taken, self.records = tuple(self.records), []
        return taken
