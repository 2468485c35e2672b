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
from dspy_workbook.grading.limits import CELL_SECONDS, STUDENT_SECONDS

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

# Grading's time limits (`dspy_workbook/grading/limits.py`, shared with Validate): a cell still
# running after CELL_SECONDS is interrupted and recorded as an error (GradingExecute says which
# limit stopped it), and one student's notebooks
# together get STUDENT_SECONDS of execution, so a submission that hangs scores 0 for what it did
# not finish instead of stalling the whole grading run.
c.Execute.timeout = CELL_SECONDS
c.Execute.interrupt_on_timeout = True
c.GradingExecute.student_seconds = STUDENT_SECONDS
c.Execute.execute_retries = 0  # a retried run would hide a flaky test instead of fixing it

# nbgrader 0.9.6's autograde pipeline, with Execute replaced by the grading-backend variant
# (`tests/test_grading_config.py` checks this list still matches nbgrader's own).
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
