"""A confidence in [0, 1] that comes from the model, never a hard-coded 0.95.

Two measurements, in order of preference:

1. **Token log-probabilities** (`logprob_confidence`). Ask DSPy for them with
   `program.acall(..., config={"logprobs": True})`; the prediction then carries
   `prediction.logprobs == {"content": [{"token": ..., "logprob": ...}, ...]}` (OpenAI's shape,
   which DSPy 3.4 produces for every engine that returns `Response.logprobs`). The confidence is
   the geometric mean of the probabilities of the tokens that wrote the answer,
   `exp(mean(logprob))` (`dspy_workbook.lm.answer_confidence`): 1.0 when the model was certain
   of every token, lower as it hesitated. One call, no extra cost.
2. **Agreement across samples** (`agreement_confidence`), for models that give no log-probabilities:
   ask the same question `n` times at temperature 1.0 (a distinct `rollout_id` each, so DSPy's
   cache does not hand back the same answer) and report the share of answers that agree with the
   one served. A model that knows the answer repeats it; one that guesses does not. It costs
   `n - 1` extra calls (run concurrently), and a deterministic backend always agrees (1.0).

Neither is a calibrated probability of being *right* — a model can be confidently wrong — but
both vary with how sure the model was, which is what a client needs to route doubtful answers to
a human.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .._errors import WorkbookError
from ..lm import answer_confidence

__all__ = ["agreement_confidence", "logprob_confidence", "normalise_answer"]


def _logprobs_of(result: Any) -> Any:
    if isinstance(result, Mapping):
        logprobs = result.get("logprobs", result if "content" in result else None)
    else:
        logprobs = getattr(result, "logprobs", None)
    dump = getattr(logprobs, "model_dump", None)  # a hosted model's (LiteLLM's) typed object
    return dump() if callable(dump) else logprobs


def logprob_confidence(result: Any, field: str = "answer") -> float | None:
    """Confidence of `field` from log-probabilities, in [0, 1]; None when there are none.

    `result` is a prediction made with `config={"logprobs": True}` (or DSPy's
    `{"content": [...]}` logprobs dict). The tokens that wrote `field`'s value are scored by
    `dspy_workbook.lm.answer_confidence`; if that value cannot be located in the generated text,
    every generated token counts.
    """
    logprobs = _logprobs_of(result)
    content = logprobs.get("content") if isinstance(logprobs, Mapping) else None
    values = [
        float(e["logprob"])
        for e in content or ()
        if isinstance(e, Mapping)
        and isinstance(e.get("logprob"), int | float)
        and math.isfinite(e["logprob"])
    ]
    if not values:
        return None
    try:
        score = answer_confidence({"logprobs": logprobs}, field)
    except WorkbookError:  # the field's value could not be found in the text: use all tokens
        score = math.exp(sum(values) / len(values))
    return float(min(1.0, max(0.0, score)))


def normalise_answer(text: str) -> str:
    """Compare answers by meaning-ish: case, spacing and trailing punctuation do not count."""
    return " ".join(str(text).split()).casefold().rstrip(".!?;:,")


def agreement_confidence(served: str, samples: Sequence[str]) -> float:
    """Share of `[served, *samples]` that agree with `served`, in [0, 1] (1/(n+1) at worst)."""
    answers = [served, *samples]
    target = normalise_answer(served)
    return sum(normalise_answer(a) == target for a in answers) / len(answers)
