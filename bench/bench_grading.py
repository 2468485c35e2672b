"""What grading a class costs: the sandbox per submission, sequential vs parallel grading.

1. Kernel round trip: start a grading kernel, run one cell, stop it; plain vs in the bubblewrap
   sandbox (median of --repeat runs): the sandbox's fixed cost per notebook.
2. A synthetic class of --students submissions of the probe notebook (a third solved, a third
   blank, a third half done; with --masters the real exercises, half solved, half blank), graded
   with `tools/grade_class.py`'s runner: one student at a time and --jobs at a time, each
   without and with the sandbox.

    PYTHONPATH=. .venv/bin/python bench/bench_grading.py [--students 8] [--jobs 2] [--repeat 5]
    PYTHONPATH=. .venv/bin/python bench/bench_grading.py --masters --students 30   # the real class
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from gradeday.autograde import autograde_class  # noqa: E402
from gradeday.nbgrader_cli import nbgrader, nbgrader_env  # noqa: E402
from gradeday.probe import ASSIGNMENT, NOTEBOOK, SOLUTIONS, probe_course, submission  # noqa: E402

from dspy_workbook.grading.execute import GradingExecute  # noqa: E402
from dspy_workbook.grading.sandbox import bwrap_path  # noqa: E402


def kernel_round_trip(folder: Path, sandbox: str) -> float:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    execute = GradingExecute(timeout=60, sandbox=sandbox)
    start = time.perf_counter()
    execute.preprocess(nb, {"metadata": {"path": str(folder)}})
    return time.perf_counter() - start


def class_course(tmp: Path, students: int) -> tuple[Path, list[str]]:
    course = probe_course(tmp, ROOT / "nbgrader_config.py")
    run = nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    if run.returncode != 0:
        raise SystemExit(f"generate_assignment failed:\n{run.stdout}{run.stderr}")
    release = course / "release" / ASSIGNMENT / NOTEBOOK
    variants = [SOLUTIONS, {}, {"double": SOLUTIONS["double"]}]
    names = []
    for n in range(students):
        name = f"student{n:02d}"
        folder = course / "submitted" / name / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / NOTEBOOK).write_text(submission(release, variants[n % 3]))
        names.append(name)
    return course, names


def masters_course(tmp: Path, students: int, only: list[str]) -> tuple[Path, list[str]]:
    """The real exercises (or `only` these), half the class solved, half blank."""
    course = tmp / "course"
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    masters = [
        p
        for p in sorted((ROOT / "source" / ASSIGNMENT).glob("*.ipynb"))
        if not only or p.stem in only
    ]
    for master in masters:
        shutil.copy(master, course / "source" / ASSIGNMENT / master.name)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    run = nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    if run.returncode != 0:
        raise SystemExit(f"generate_assignment failed:\n{run.stdout}{run.stderr}")
    names = []
    for n in range(students):
        name = f"student{n:02d}"
        folder = course / "submitted" / name / ASSIGNMENT
        folder.mkdir(parents=True)
        for master in masters:
            given = master if n % 2 == 0 else course / "release" / ASSIGNMENT / master.name
            shutil.copy(given, folder / master.name)
        names.append(name)
    return course, names


def grade_class(students: int, jobs: int, sandbox: str, masters: list[str] | None) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        if masters is None:
            course, names = class_course(Path(tmp), students)
        else:
            course, names = masters_course(Path(tmp), students, masters)
        env = nbgrader_env({"WORKBOOK_SANDBOX": sandbox})
        start = time.perf_counter()
        runs = autograde_class(course, ASSIGNMENT, names, jobs=jobs, env=env)
        seconds = time.perf_counter() - start
        failed = [r.student for r in runs if r.returncode != 0]
        if failed:
            raise SystemExit(f"grading failed for {failed}:\n{runs[0].log[-2000:]}")
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--masters",
        nargs="*",
        help="grade the real exercises (all, or these stems) instead of the probe notebook",
    )
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if bwrap_path() is None:
        raise SystemExit("bwrap is not installed (apt-get install bubblewrap): nothing to compare")

    with tempfile.TemporaryDirectory(prefix="bench-kernel-") as folder:
        plain = [kernel_round_trip(Path(folder), "off") for _ in range(args.repeat)]
        boxed = [kernel_round_trip(Path(folder), "on") for _ in range(args.repeat)]
    p, b = statistics.median(plain), statistics.median(boxed)
    print(
        f"kernel round trip (median of {args.repeat}): plain {p:.2f} s, sandboxed {b:.2f} s, "
        f"sandbox cost {b - p:+.2f} s per notebook"
    )

    n = args.students
    runs = {}
    # Each figure prints as soon as it is measured: a class of 30 takes a while per line.
    for jobs, sandbox in ((1, "0"), (1, "1"), (args.jobs, "0"), (args.jobs, "1")):
        seconds = grade_class(n, jobs, sandbox, args.masters)
        runs[jobs, sandbox] = seconds
        line = (
            f"{n} students, {jobs} at a time, {'sandboxed' if sandbox == '1' else 'no sandbox'}: "
            f"{seconds:7.1f} s ({seconds / n:.1f} s per student)"
        )
        if jobs > 1:
            line += f", {runs[1, sandbox] / seconds:.2f}x the sequential speed"
        elif sandbox == "1":
            line += f", sandbox {(seconds - runs[1, '0']) / n:+.2f} s per student"
        print(line, flush=True)


if __name__ == "__main__":
    main()
