"""The workbook's one folder for caches, logs, profiles and generated models.

`$WORKBOOK_CACHE_DIR` when set (the tests point it at a temporary folder, so nothing is written
into `source/`), otherwise `.workbook_cache/` beside the notebook — ignored by git and nbgrader.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import env

__all__ = ["CACHE_DIR_ENV", "workbook_dir"]

CACHE_DIR_ENV = env.CACHE_DIR
_DEFAULT = ".workbook_cache"


def workbook_dir(*parts: str, create: bool = True) -> Path:
    """`<cache root>/<parts…>`, created when `create`; a part may not climb out of the root."""
    root = Path(os.environ.get(CACHE_DIR_ENV) or _DEFAULT)
    for part in parts:
        pieces = Path(part).parts
        if Path(part).is_absolute() or ".." in pieces or not pieces:
            raise ValueError(
                f"a workbook folder name must be relative and stay inside {root}, got {part!r}"
            )
    path = root.joinpath(*parts)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
