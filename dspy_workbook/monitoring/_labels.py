"""Quality against labels: the workbook's labelled question set, looked up per prediction.

Quality needs a right answer to compare with. Live traffic has none, so production systems score
a *labelled sample*: known questions mixed into the traffic (canaries) or a reviewed subset. Here
the workload's questions come from the workbook's labelled set (`dspy_workbook.data`), so each
prediction gets a score from its metric (`answer_match`: the gold answer or an alias appears as
whole words in the answer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import dspy

from ..data import answer_match, labelled_questions, normalize_answer

__all__ = ["LabelledQuality", "labelled_pairs"]


def labelled_pairs() -> list[tuple[str, str]]:
    """(question, gold answer) for every labelled question, in the set's order."""
    return [(ex.question, ex.answer) for ex in labelled_questions()]


def _example(item: Any) -> dspy.Example:
    if isinstance(item, dspy.Example):
        return item
    question, answer = item
    return dspy.Example(question=question, answer=answer, aliases=()).with_inputs("question")


class LabelledQuality:
    """`quality(inputs, prediction)`: the metric against the question's label, None if unlabelled.

    `labelled` is `dspy.Example`s (default: the workbook's set) or (question, answer) pairs;
    `metric(example, prediction)` is any DSPy metric (default `answer_match`).
    """

    def __init__(
        self,
        labelled: Iterable[Any] | None = None,
        metric: Callable[[Any, Any], Any] = answer_match,
    ) -> None:
        examples = [
            _example(item) for item in (labelled if labelled is not None else labelled_questions())
        ]
        self.examples = {normalize_answer(ex.question): ex for ex in examples}
        self.metric = metric

    def example_for(self, question: str) -> dspy.Example | None:
        """The labelled example for `question` (matched after normalising), or None."""
        return self.examples.get(normalize_answer(question))

    def __call__(self, inputs: dict[str, Any], prediction: Any) -> float | None:
        example = self.example_for(str(inputs.get("question", "")))
        if example is None or prediction is None or getattr(prediction, "answer", None) is None:
            return None
        return float(self.metric(example, prediction))
