"""JSON files for a disk cache: written atomically, read without ever trusting them.

Given code of Exercise 1 (the notebook explains why each step is there); none of it is a graded
task's answer. A write goes to a `.tmp` file in the target's own folder and is swapped in with
`os.replace`, one step that a reader sees whole or not at all. A read turns every damaged file
into `None` (a miss), never an exception.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["ORPHAN_SECONDS", "read_json_entry", "remove_orphans", "write_json_atomic"]

ORPHAN_SECONDS = 60.0  # a .tmp file this old has no live writer: writes take milliseconds


def write_json_atomic(path: Path | str, data: Any) -> None:
    """Write `data` as JSON to `path` atomically: a `.tmp` file beside it, then `os.replace`.

    The temporary file must be in the same folder: `os.replace` is a rename, and a rename across
    file systems fails (`EXDEV`) instead of copying. If anything fails, the temporary file is
    removed and the error raised; the previous file stays as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json_entry(path: Path | str) -> dict | None:
    """The JSON object stored at `path`, or None when it is missing or damaged.

    Missing or unreadable: `OSError`. Truncated JSON or bytes that are not UTF-8: `ValueError`.
    JSON nested thousands of levels deep: `RecursionError`. Valid JSON that is not an object
    (`[1, 2]`): no error at all, so the type is checked.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def remove_orphans(folder: Path | str, older_than: float = ORPHAN_SECONDS) -> int:
    """Delete `*.tmp` files in `folder` older than `older_than` seconds; return how many.

    A writer killed between writing its temporary file and `os.replace` leaves one behind, and
    nothing else would ever remove it. It goes by age: a young `.tmp` file may belong to a writer
    that is still running.
    """
    removed, now = 0, time.time()  # file times are wall-clock times
    for path in Path(folder).glob("*.tmp"):
        try:
            if now - path.lstat().st_mtime > older_than:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # its writer finished after all, or another process removed it
    return removed
