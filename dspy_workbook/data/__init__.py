"""The workbook's labelled question set and its metrics (Exercises 4 and 6 use them).

from dspy_workbook.data import labelled_questions, exact_match, answer_match
examples = labelled_questions()             # 40 dspy.Example(question=..., answer=...)
dspy.Evaluate(devset=examples, metric=answer_match)(program)
"""

from ._questions import labelled_questions, questions_file
from .metrics import answer_match, exact_match, matches, normalize_answer

__all__ = [
    "answer_match",
    "exact_match",
    "labelled_questions",
    "matches",
    "normalize_answer",
    "questions_file",
]
