"""A realistic query stream: a few questions asked often, many asked rarely (Zipf-like)."""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = ["COURSE_QUESTIONS", "zipf_stream"]

COURSE_QUESTIONS: tuple[str, ...] = (
    "What is DSPy?",
    "How do I optimize a DSPy program?",
    "What is a signature?",
    "What does dspy.Predict do?",
    "How do I cache LM calls?",
    "What is ChainOfThought?",
    "How do I evaluate a program?",
    "What is a few-shot demo?",
    "How do I save a compiled program?",
    "What is an adapter in DSPy?",
    "How do I stream an answer?",
    "What is a retriever?",
)


def zipf_stream(
    questions: Sequence[str] = COURSE_QUESTIONS, n: int = 30, *, s: float = 1.1, seed: int = 0
) -> list[str]:
    """`n` questions drawn with weight 1/rank**s (seeded): popular ones repeat, like traffic."""
    if not questions:
        raise ValueError("zipf_stream needs at least one question")
    if n < 0 or s < 0:
        raise ValueError(f"n and s must be >= 0, got n={n}, s={s}")
    weights = [1.0 / (rank**s) for rank in range(1, len(questions) + 1)]
    return random.Random(seed).choices(list(questions), weights=weights, k=n)
