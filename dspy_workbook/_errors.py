"""The workbook's exceptions: one base class, each message says what happened and what to do.

* WorkbookError
  + BackendError          - the course LM could not be set up (unknown name, missing key or package)
  + CacheFileError        - a cache file could not be read (callers treat it as a miss)
"""

from __future__ import annotations

__all__ = ["BackendError", "CacheFileError", "WorkbookError"]


class WorkbookError(Exception):
    """Base class for every error the workbook raises on purpose."""


class BackendError(WorkbookError):
    """The course language model could not be set up."""


class CacheFileError(WorkbookError):
    """A cache entry on disk is missing, truncated or corrupt."""
