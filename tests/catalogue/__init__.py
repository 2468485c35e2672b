"""The catalogue of submissions: per exercise, answers a student could hand in, right and wrong.

Each module `exN_<name>.py` beside this file defines `MASTER` (the master's stem, e.g.
"01_caching") and `SUBMISSIONS`, a list of `Submission`s. One entry is the whole solution cell as a
student could leave it: a mistake that breaks exactly one stated behaviour, a correct answer in a
style other than the master's (validators instead of `Field`, a closure instead of a class,
another data structure), or a way of gaming a test. `tests/test_agreement.py` runs every entry
through the task's self-check and its graded cell (visible and hidden tests) with `tests/_kit.py`
and fails on any disagreement: ✅ with hidden points lost, ❌/💥 with hidden points won, or a
verdict other than the entry's `correct`.
"""

from __future__ import annotations

import importlib
import textwrap
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Submission", "catalogues"]


@dataclass(frozen=True)
class Submission:
    """One answer to one task: the source replaces the task's solution cell (`task` is its
    nbgrader grade_id); `correct` says whether it deserves the task's points."""

    task: str
    name: str
    source: str
    correct: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", textwrap.dedent(self.source).strip("\n") + "\n")


def catalogues() -> dict[str, list[Submission]]:
    """Every catalogue module's submissions, by master stem, in course order."""
    found: dict[str, list[Submission]] = {}
    for path in sorted(Path(__file__).parent.glob("ex[0-9]_*.py")):
        module = importlib.import_module(f"tests.catalogue.{path.stem}")
        found[module.MASTER] = list(module.SUBMISSIONS)
    return found
