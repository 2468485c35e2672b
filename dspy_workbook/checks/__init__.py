"""Self-checks for the workbook's tasks: `from dspy_workbook.checks import ex1; ex1.check_…(…)`."""

from ._core import CheckResult, NotAttempted, check, expect
from ._exercise import Exercise, Hint, Summary, Task

__all__ = ["CheckResult", "Exercise", "Hint", "NotAttempted", "Summary", "Task", "check", "expect"]
