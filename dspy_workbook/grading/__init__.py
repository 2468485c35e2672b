"""Grading: the grading backend and limits, nbgrader's sandboxed Execute, Validate, feedback.

`env` — the one definition of the environment grading runs in (simulated model, fast).
`limits` — the cell and per-student time limits autograde and Validate share.
`execute` — nbgrader's Execute for grading: that environment, graded cells only, in a bubblewrap
sandbox.
`sandbox` — the bubblewrap command line and `$WORKBOOK_SANDBOX`.
`validate` — Validate as autograde grades (`python -m dspy_workbook.grading.validate NB`).
`validate_extension` — the Validate button's server handler, off JupyterLab's event loop.
`feedback` — feedback pages with the hidden tests' source left out, on request.

The student bundle (`tools/bundle.py`) ships all but `feedback`: the student's Validate runs here.
"""

from .env import GRADING_ENV, grading_env

__all__ = ["GRADING_ENV", "grading_env"]
