"""Instructor-side grading: the grading backend, nbgrader's sandboxed Execute, feedback options.

`env` — the one definition of the environment grading runs in (simulated model, fast).
`execute` — nbgrader's Execute for autograde: that environment, in a bubblewrap sandbox.
`sandbox` — the bubblewrap command line and `$WORKBOOK_SANDBOX`.
`feedback` — feedback pages with the hidden tests' source left out, on request.

Not part of the student bundle (`tools/bundle.py`): students never need it.
"""

from .env import GRADING_ENV, grading_env

__all__ = ["GRADING_ENV", "grading_env"]
