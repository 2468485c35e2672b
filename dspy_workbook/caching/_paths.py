"""Where Exercise 1 keeps its cache folders: `.workbook_cache/` (ignored by git and nbgrader)."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

__all__ = ["WORKBOOK_CACHE", "fresh_cache_dir"]

WORKBOOK_CACHE = Path(".workbook_cache")


def fresh_cache_dir(name: str, *, root: Path | str = WORKBOOK_CACHE) -> Path:
    """An empty folder `root/name` (deleted and recreated), so a run starts cold every time."""
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
        # we delete this folder: never let a name escape the cache root
        raise ValueError(f"cache folder name must be relative and stay inside {root}, got {name!r}")
    path = Path(root).joinpath(*parts)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
