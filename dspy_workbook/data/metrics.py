"""Answer metrics for the labelled question set, in DSPy's metric signature.

Both compare after `normalize_answer` (lower case, no punctuation, no articles, number words as
digits), against the gold answer and every alias:

* `exact_match` — the whole normalised prediction equals an accepted answer ("Paris." = "paris").
* `answer_match` — an accepted answer appears as whole words in the prediction ("The capital of
  France is Paris." contains "paris"). A small model answers in sentences, so this is the fairer
  accuracy for it; exact match is the stricter one a grader of short answers would use.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from typing import Any

__all__ = ["answer_match", "exact_match", "matches", "normalize_answer"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NUMBERS = {
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
}
_PUNCTUATION = str.maketrans({c: " " for c in string.punctuation + "°"})


def normalize_answer(text: Any) -> str:
    """Lower case, punctuation and articles removed, number words as digits, spaces collapsed."""
    words = _ARTICLES.sub(" ", str(text).lower().translate(_PUNCTUATION)).split()
    return " ".join(_NUMBERS.get(word, word) for word in words)


def _accepted(example: Any) -> list[str]:
    answers: Iterable[Any] = [example["answer"], *(example.get("aliases") or ())]
    return [n for n in (normalize_answer(a) for a in answers) if n]


def matches(prediction_text: Any, accepted: Iterable[str], *, whole: bool = True) -> bool:
    """Whether `prediction_text` equals (`whole`) or contains as words an accepted answer."""
    got = normalize_answer(prediction_text)
    wanted = [n for n in (normalize_answer(a) for a in accepted) if n]
    if whole:
        return got in wanted
    padded = f" {got} "
    return any(f" {answer} " in padded for answer in wanted)


def _predicted(prediction: Any) -> str:
    return str(prediction["answer"] if isinstance(prediction, dict) else prediction.answer)


def exact_match(example: Any, prediction: Any, trace: Any = None) -> bool:
    """DSPy metric: the normalised answer equals the gold answer or an alias."""
    return matches(_predicted(prediction), _accepted(example), whole=True)


def answer_match(example: Any, prediction: Any, trace: Any = None) -> bool:
    """DSPy metric: the gold answer or an alias appears as whole words in the answer."""
    return matches(_predicted(prediction), _accepted(example), whole=False)
