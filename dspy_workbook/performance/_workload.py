"""The exercise's workload: a fixed question set with repeats, and one measured pass over it.

`run_workload` runs a program over the questions once and returns its answers, the wall time,
and what the LM was asked to do. LM calls and tokens are read from the LM's history, which every
`dspy.LM` keeps on every backend: an entry with empty `usage` was served by DSPy's cache and cost
no tokens, and a call a program answered itself never reaches the LM at all.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dspy

from ..caching import COURSE_QUESTIONS
from ..progress import track as progress

__all__ = ["LMUsage", "WorkloadRun", "agreement", "lm_usage_since", "run_workload", "workload"]


def workload(
    distinct: int = 6,
    repeats: int = 4,
    *,
    seed: int = 0,
    questions: Sequence[str] = COURSE_QUESTIONS,
) -> list[str]:
    """`distinct` questions, each asked `repeats` times, in a fixed shuffled order (seeded).

    Real traffic repeats itself; this is the smallest honest version of that.
    """
    if not 1 <= distinct <= len(questions):
        raise ValueError(f"distinct must be between 1 and {len(questions)}, got {distinct}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    asked = list(questions[:distinct]) * repeats
    random.Random(seed).shuffle(asked)
    return asked


@dataclass(frozen=True)
class LMUsage:
    """What an LM was asked to do since a mark: calls that reached it and the tokens they cost."""

    calls: int
    cached: int  # calls DSPy's own cache answered (no tokens)
    tokens: int


def lm_usage_since(lm: dspy.LM, mark: int) -> LMUsage:
    """LM calls and tokens in `lm.history[mark:]` (`mark = len(lm.history)` taken before)."""
    entries = lm.history[mark:]
    calls = [e for e in entries if e.get("usage")]
    tokens = sum(int(e["usage"].get("total_tokens") or 0) for e in calls)
    return LMUsage(calls=len(calls), cached=len(entries) - len(calls), tokens=tokens)


@dataclass(frozen=True)
class WorkloadRun:
    """One pass of a program over the workload."""

    label: str
    answers: tuple[str, ...]
    seconds: float
    usage: LMUsage

    @property
    def per_question(self) -> float:
        """Mean seconds per question of the workload."""
        return self.seconds / max(1, len(self.answers))


def _answer_of(prediction: Any, field: str) -> str:
    value = getattr(prediction, field, None)
    if value is None:
        raise TypeError(
            f"the program returned {type(prediction).__name__} without an `{field}` "
            "field: return the `dspy.Prediction` of your predictor"
        )
    return str(value)


def run_workload(
    program: Callable[..., Any],
    questions: Sequence[str],
    *,
    label: str = "",
    lm: dspy.LM | None = None,
    field: str = "answer",
    show_progress: bool = True,
    record_errors: bool = False,
) -> WorkloadRun:
    """Call `program(question=q)` for each question, in order; answers, time, LM calls/tokens.

    `record_errors=True` turns a call that raises into the answer "⚠ <error name>" instead of
    stopping the run: a technique that breaks some answers then shows up as changed answers.
    """
    lm = lm or dspy.settings.lm
    if lm is None:
        raise RuntimeError("no LM is configured: run `lm = wb.setup()` first")
    mark = len(lm.history)
    items = progress(questions, desc=label or "workload") if show_progress else questions
    answers = []
    start = time.perf_counter()
    for question in items:
        try:
            answers.append(_answer_of(program(question=question), field))
        except Exception as exc:
            if not record_errors:
                raise
            answers.append(f"⚠ {type(exc).__name__}")
    seconds = time.perf_counter() - start
    return WorkloadRun(label, tuple(answers), seconds, lm_usage_since(lm, mark))


def agreement(reference: Sequence[str], answers: Sequence[str]) -> float:
    """The share of positions where `answers` equals `reference` exactly (1.0 = identical)."""
    if len(reference) != len(answers):
        raise ValueError(f"cannot compare {len(answers)} answers with {len(reference)}")
    if not reference:
        return 1.0
    return sum(a == b for a, b in zip(reference, answers, strict=True)) / len(reference)
