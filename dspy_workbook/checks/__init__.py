"""Self-checks for the workbook's tasks: `from dspy_workbook.checks import ex1; ex1.check_…(…)`."""

from ._core import CheckResult, NotAttempted, check, expect

__all__ = ["CheckResult", "NotAttempted", "check", "expect"]
