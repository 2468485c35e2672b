"""Put submissions into `submitted/<student>/<assignment>/`: from an LMS zip or a folder.

An LMS download (Canvas, Moodle, Blackboard…) is one zip whose files are named after the student:
nbgrader's own `zip_collect` extracts it and sorts the files with a regular expression. A folder
holds one sub-folder per student (`inbox/ada/01_caching.ipynb`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .nbgrader_cli import nbgrader

__all__ = ["LMS_PATTERN", "CollectError", "collect_folder", "collect_zip"]

# Canvas: `ada_123_456_01_caching.ipynb`, late ones `ada_LATE_123_456_…`, a resubmission `…-1`.
# Matched against the extracted file's full path.
LMS_PATTERN = (
    r".*/(?P<student_id>[A-Za-z0-9.\-]+)_(?:LATE_)?\d+_\d+_"
    r"(?P<file_id>.+?)(?:-\d+)?\.ipynb$"
)


class CollectError(RuntimeError):
    """The submissions could not be collected (a clear message for the instructor)."""


def collect_zip(
    course: Path, assignment: str, archive: Path, pattern: str = LMS_PATTERN
) -> list[str]:
    """Collect an LMS zip with `nbgrader zip_collect`; return the students collected."""
    if not archive.is_file():
        raise CollectError(f"no such zip file: {archive}")
    inbox = course / "downloaded" / assignment / "archive"
    inbox.mkdir(parents=True, exist_ok=True)
    shutil.copy(archive, inbox / archive.name)
    before = _students(course, assignment)
    run = nbgrader(
        course,
        "zip_collect",
        assignment,
        "--force",
        "--strict",
        f"--FileNameCollectorPlugin.named_regexp={pattern}",
    )
    if run.returncode != 0:
        raise CollectError(
            f"nbgrader zip_collect failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}"
        )
    collected = sorted(_students(course, assignment) - before) or sorted(
        _students(course, assignment)
    )
    if not collected:
        raise CollectError(f"no file in {archive.name} matched the LMS naming pattern {pattern!r}")
    return collected


def collect_folder(course: Path, assignment: str, folder: Path) -> list[str]:
    """Copy `folder/<student>/*.ipynb` to `submitted/<student>/<assignment>/`."""
    if not folder.is_dir():
        raise CollectError(f"no such folder: {folder}")
    students = []
    for student_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        notebooks = sorted(student_dir.glob("*.ipynb"))
        if not notebooks:
            continue
        dest = course / "submitted" / student_dir.name / assignment
        dest.mkdir(parents=True, exist_ok=True)
        for nb in notebooks:
            shutil.copy(nb, dest / nb.name)
        students.append(student_dir.name)
    if not students:
        raise CollectError(f"{folder} has no <student>/*.ipynb sub-folders")
    return students


def _students(course: Path, assignment: str) -> set[str]:
    submitted = course / "submitted"
    if not submitted.is_dir():
        return set()
    return {p.name for p in submitted.iterdir() if (p / assignment).is_dir()}
