"""Loading the labelled question set shipped with the workbook (`questions.json`)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import dspy

from .._errors import WorkbookError

__all__ = ["labelled_questions", "questions_file"]


def questions_file() -> Path:
    """Where the question set lives (inside the installed package)."""
    return Path(__file__).with_name("questions.json")


@cache
def _records() -> tuple[dict[str, Any], ...]:
    path = questions_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        records = tuple(
            {
                "question": str(r["question"]),
                "answer": str(r["answer"]),
                "aliases": tuple(str(a) for a in r.get("aliases", ())),
            }
            for r in data["questions"]
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WorkbookError(
            f"the labelled question set {path} is missing or damaged ({exc}); "
            "reinstall the workbook with `make setup`"
        ) from exc
    return records


def labelled_questions(limit: int | None = None) -> list[dspy.Example]:
    """The labelled questions as `dspy.Example`s with `question` as the input.

    Each example has ``question``, ``answer`` (the gold answer) and ``aliases`` (a tuple of other
    accepted spellings). A fresh list each call, so callers may shuffle or slice it freely.
    """
    records = _records()[:limit] if limit is not None else _records()
    return [dspy.Example(**record).with_inputs("question") for record in records]
