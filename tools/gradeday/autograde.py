"""Autograde a class: one `nbgrader autograde --student=ID` process per student, several at once.

nbgrader grades one student's notebooks in one kernel at a time; separate processes for separate
students share the course's sqlite gradebook. Each process writes to it in short transactions
(create the student and the submission, then one per notebook's grades), so the gradebook is
switched to write-ahead logging (readers never wait, a writer waits for the other writer for up to
sqlite's busy timeout) and a student whose run still hit "database is locked" is graded again on
its own. A student's whole run is bounded in time: past it, its process group is killed (the
sandboxed kernels die with it) and the log says so.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .nbgrader_cli import config_dir, nbgrader_command, venv_env

__all__ = ["StudentRun", "autograde_class", "use_wal"]


@dataclass
class StudentRun:
    student: str
    seconds: float
    returncode: int
    log: str
    timed_out: bool = False

    @property
    def locked(self) -> bool:
        return "database is locked" in self.log


def use_wal(gradebook: Path) -> None:
    """Switch the gradebook to write-ahead logging (persistent; harmless for nbgrader)."""
    with sqlite3.connect(gradebook) as db:
        db.execute("PRAGMA journal_mode=WAL")


def _autograde_one(
    course: Path,
    assignment: str,
    student: str,
    args: Sequence[str],
    env: dict[str, str],
    student_timeout: float,
) -> StudentRun:
    command = nbgrader_command(
        "autograde",
        assignment,
        f"--student={student}",
        "--force",
        f"--CourseDirectory.root={course}",
        *args,
    )
    start = time.monotonic()
    # The kernels' socket folders go in a temporary folder of this run's own, removed even when
    # the run is killed (a short path: unix socket paths are limited to 107 bytes).
    with tempfile.TemporaryDirectory(prefix="grade-") as scratch:
        # Its own process group, so a run past its bound is killed with every kernel it started.
        process = subprocess.Popen(
            command,
            cwd=config_dir(course),
            env={**env, "TMPDIR": scratch},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            log, _ = process.communicate(timeout=student_timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            log, _ = process.communicate()
            timed_out = True
    return StudentRun(student, time.monotonic() - start, process.returncode, log or "", timed_out)


def autograde_class(
    course: Path,
    assignment: str,
    students: Sequence[str],
    *,
    jobs: int = 2,
    args: Sequence[str] = (),
    student_timeout: float = 480,
    env: dict[str, str] | None = None,
    on_done: Callable[[StudentRun], None] | None = None,
) -> list[StudentRun]:
    """Grade `students` with up to `jobs` nbgrader processes at once; one `StudentRun` each."""
    env = env or venv_env()
    gradebook = course / "gradebook.db"
    if jobs > 1 and gradebook.exists():
        use_wal(gradebook)

    def run(student: str) -> StudentRun:
        result = _autograde_one(course, assignment, student, args, env, student_timeout)
        if on_done and not result.locked:
            on_done(result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        runs = list(pool.map(run, students))
    # The rare student whose gradebook write lost the race is graded again, alone.
    for i, result in enumerate(runs):
        if result.locked:
            runs[i] = _autograde_one(course, assignment, result.student, args, env, student_timeout)
            if on_done:
                on_done(runs[i])
    return runs
