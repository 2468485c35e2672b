"""Where Exercise 1 keeps its cache folders: under the workbook folder (`dspy_workbook.paths`).

`$WORKBOOK_CACHE_DIR` when set, otherwise `.workbook_cache/` beside the notebook: ignored by git
and nbgrader, and never inside `source/` when the tests or the build run a master.
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

from ..paths import workbook_dir

__all__ = ["fresh_cache_dir"]


def _inside(root: Path, name: str) -> Path:
    """`root/name`, refusing names that climb out and folders on the way that are symlinks."""
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts or "." in parts:
        raise ValueError(f"cache folder name must be relative and stay inside {root}, got {name!r}")
    path = root
    for part in parts:
        path = path / part
        # We are about to delete this folder: a symlink anywhere below the root would make us
        # delete wherever it points instead.
        if path.is_symlink():
            raise ValueError(
                f"{path} is a symbolic link; refusing to empty a cache folder through it "
                "(remove the link, or choose another name)"
            )
    if not path.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"{path} resolves outside the cache root {root}")
    return path


def fresh_cache_dir(name: str, *, root: Path | str | None = None) -> Path:
    """An empty folder `root/name` (deleted and recreated), so a run starts cold every time.

    `root` defaults to the workbook folder (`$WORKBOOK_CACHE_DIR` or `.workbook_cache/`).
    """
    base = workbook_dir() if root is None else Path(root)
    path = _inside(base, name)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
