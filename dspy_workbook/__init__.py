"""Support package for the DSPy Chapter 7 workbook.

First cell of every notebook::

    import dspy_workbook as wb
    lm = wb.setup()          # reads WORKBOOK_LM: local (default), sim, or a LiteLLM model id
"""

import os

# LiteLLM (used only for hosted models) fetches a price list from the web at import; offline that
# costs ~10 s of retries. Its bundled copy is enough for the course.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from . import _startup  # noqa: F401 (first: it defers a slow import that `import dspy` makes)
from ._errors import BackendError, CacheFileError, WorkbookError
from ._friendly import install_friendly_errors
from .lm import BACKEND_ENV, course_lm, describe, is_local, local_lm, setup, sim_lm

__all__ = [
    "BACKEND_ENV",
    "BackendError",
    "CacheFileError",
    "WorkbookError",
    "course_lm",
    "describe",
    "is_local",
    "local_lm",
    "setup",
    "sim_lm",
]

install_friendly_errors()
