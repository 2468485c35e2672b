"""nbgrader configuration for the Chapter 7 workbook (course root = this folder).

Grading runs every notebook on the simulated provider (fast, deterministic, no key): the hidden
tests check behaviour, not the text of a model's answer. Set WORKBOOK_GRADING_LM to grade on
another backend. The backend is set only in the environment of the kernels `nbgrader autograde`
starts (`GradingExecute`), never in this process's environment: the nbgrader server extension
loads this file inside a student's JupyterLab too, and their kernels must keep the local model.
"""

from pathlib import Path

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    GetGrades,
    IgnorePattern,
    LimitOutput,
    SaveAutoGrades,
)

from dspy_workbook.grading.execute import GradingExecute
from dspy_workbook.grading.feedback import HideHiddenTests

c = get_config()  # noqa: F821 (provided by nbgrader)

c.CourseDirectory.root = str(Path(__file__).resolve().parent)
c.CourseDirectory.course_id = "dspy-ch07"
# The percent-format masters (*.py) and any cache a notebook writes stay out of the release.
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints",
    "*.pyc",
    "__pycache__",
    "feedback",
    "*.py",
    ".workbook_cache",
]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# A cell may take this long before it is interrupted and recorded as an error, so a submission
# that hangs scores 0 for what it did not finish instead of stalling the whole grading run.
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True
c.Execute.error_on_timeout = {
    "ename": "CellTimeoutError",
    "evalue": "this cell ran for more than 120 s and was stopped: check for an infinite loop or a "
    "call that never returns",
    "traceback": ["CellTimeoutError: cell stopped after 120 s"],
}
c.Execute.execute_retries = 0  # a retried run would hide a flaky test instead of fixing it

# nbgrader 0.9.6's autograde pipeline, with Execute replaced by the grading-backend variant
# (`tests/test_grading_backend.py` checks this list still matches nbgrader's own).
c.Autograde.autograde_preprocessors = [
    GradingExecute,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]

# Feedback pages show hidden tests unless `--HideHiddenTests.enabled=True` (nbgrader's own default
# shows them; `tools/grade_class.py feedback --hide-hidden-tests` sets it).
c.GenerateFeedback.preprocessors = [GetGrades, HideHiddenTests, CSSHTMLHeaderPreprocessor]
