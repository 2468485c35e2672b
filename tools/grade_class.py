"""The instructor's grading day from a plain shell: collect, grade, feedback, export.

    .venv/bin/python tools/grade_class.py collect --zip ~/Downloads/submissions.zip
    .venv/bin/python tools/grade_class.py grade --jobs 2
    .venv/bin/python tools/grade_class.py feedback --hide-hidden-tests
    .venv/bin/python tools/grade_class.py export grades.csv

`--course DIR` works on another course folder (default: this repository); `--assignment` defaults
to ch07. `grade` prints one line per student (score, and what went wrong: a cell that timed out,
a student whose grading time ran out, a kernel that died, an import error, an edited read-only
cell, a notebook that is not JSON) and keeps each student's full nbgrader log in
`grading_logs/<assignment>/<student>.log`. Grading kernels run in the bubblewrap sandbox when
`bwrap` is installed (`--sandbox`, see README). Time limits: `dspy_workbook/grading/limits.py`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if not __package__:  # run as `python tools/grade_class.py`: the root, for `tools.…` imports
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from dspy_workbook.env import SANDBOX
from dspy_workbook.grading.limits import CELL_SECONDS, STUDENT_SECONDS
from tools.gradeday.autograde import StudentRun, autograde_class
from tools.gradeday.collect import LMS_PATTERN, CollectError, collect_folder, collect_zip
from tools.gradeday.nbgrader_cli import nbgrader, venv_env
from tools.gradeday.precheck import precheck
from tools.gradeday.report import student_report

ROOT = Path(__file__).resolve().parents[1]


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _sandbox_banner(mode: str) -> str:
    from dspy_workbook.grading.sandbox import INSTALL_HINT, bwrap_path, bwrap_problem

    if mode == "off":
        return "sandbox: OFF (--sandbox off): student code runs with your rights"
    bwrap = bwrap_path()
    problem = INSTALL_HINT if bwrap is None else bwrap_problem(bwrap)
    if problem is None:
        return "sandbox: on (bubblewrap: read-only system, no network, only the student's folder)"
    if mode == "on":
        raise SystemExit(_fail(f"--sandbox on, but there is no sandbox here: {problem}"))
    return f"sandbox: NOT AVAILABLE, student code runs with your rights: {problem}"


def _has_assignment(course: Path, assignment: str) -> bool:
    from nbgrader.api import Gradebook, MissingEntry

    if not (course / "gradebook.db").exists():
        return False
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        try:
            gradebook.find_assignment(assignment)
        except MissingEntry:
            return False
    return True


def cmd_collect(args: argparse.Namespace) -> int:
    try:
        if args.zip:
            students = collect_zip(args.course, args.assignment, Path(args.zip), args.pattern)
        else:
            students = collect_folder(args.course, args.assignment, Path(args.folder))
    except CollectError as exc:
        return _fail(str(exc))
    print(f"collected {len(students)} students into submitted/: {', '.join(students)}")
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    course, assignment = args.course, args.assignment
    submitted = sorted(
        p.parent.name for p in (course / "submitted").glob(f"*/{assignment}") if p.is_dir()
    )
    if args.student:
        submitted = [s for s in submitted if s in args.student]
    if not submitted:
        return _fail(
            f"no submissions in {course / 'submitted'}/<student>/{assignment}/: "
            "run `grade_class.py collect` first"
        )
    print(_sandbox_banner(args.sandbox))
    env = venv_env({SANDBOX: {"on": "1", "off": "0"}.get(args.sandbox, "auto")})
    if not _has_assignment(course, assignment):
        run = nbgrader(course, "generate_assignment", assignment, "--force", env=env)
        if run.returncode != 0:
            return _fail(
                f"nbgrader generate_assignment failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}"
            )
    release = course / "release" / assignment
    notes = {s: precheck(course / "submitted" / s / assignment, release) for s in submitted}
    # A student with no readable notebook at all is recorded (score 0) but not run.
    empty = [
        s for s in submitted if not any((course / "submitted" / s / assignment).glob("*.ipynb"))
    ]
    for student in empty:
        nbgrader(course, "db", "student", "add", student, env=env)
    logs = course / "grading_logs" / assignment
    logs.mkdir(parents=True, exist_ok=True)

    nbgrader_args = [
        f"--Execute.timeout={args.timeout}",
        f"--GradingExecute.student_seconds={args.student_seconds}",
        f"--GradingExecute.sandbox_memory_mb={args.memory_mb}",
    ]

    def done(run: StudentRun) -> None:
        (logs / f"{run.student}.log").write_text(run.log)
        extra = []
        if run.timed_out:
            extra.append(f"STOPPED: the nbgrader run passed {args.student_timeout:.0f} s")
        elif run.returncode != 0:
            extra.append(
                f"nbgrader reported an error: {logs.relative_to(course)}/{run.student}.log"
            )
        report = student_report(course, assignment, run.student, notes[run.student] + extra)
        report.seconds = run.seconds
        print(report.line(), flush=True)

    start = time.monotonic()
    print(
        f"grading {len(submitted)} students, {args.jobs} at a time "
        f"(a cell may run {args.timeout} s, a student's notebooks {args.student_seconds:g} s) …",
        flush=True,
    )
    for student in empty:
        print(student_report(course, assignment, student, notes[student]).line())
    runs = autograde_class(
        course,
        assignment,
        [s for s in submitted if s not in empty],
        jobs=args.jobs,
        args=nbgrader_args,
        env=env,
        student_timeout=args.student_timeout,
        on_done=done,
    )
    failed = [r.student for r in runs if r.timed_out]
    summary = [student_report(course, assignment, s, notes[s]).line() for s in submitted]
    (logs / "summary.txt").write_text("\n".join(summary) + "\n")
    print(
        f"graded {len(runs)} students in {time.monotonic() - start:.0f} s; summary in "
        f"{(logs / 'summary.txt').relative_to(course)}"
    )
    return 1 if failed else 0


def cmd_feedback(args: argparse.Namespace) -> int:
    flags = ["--HideHiddenTests.enabled=True"] if args.hide_hidden_tests else []
    run = nbgrader(args.course, "generate_feedback", args.assignment, "--force", *flags)
    if run.returncode != 0:
        return _fail(
            f"nbgrader generate_feedback failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}"
        )
    pages = sorted((args.course / "feedback").glob(f"*/{args.assignment}/*.html"))
    shown = (
        "hidden tests left out"
        if args.hide_hidden_tests
        else ("hidden tests SHOWN (nbgrader's default; --hide-hidden-tests leaves them out)")
    )
    print(f"{len(pages)} feedback pages in feedback/<student>/{args.assignment}/ ({shown})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    target = Path(args.to).resolve()
    run = nbgrader(args.course, "export", f"--to={target}")
    if run.returncode != 0:
        return _fail(f"nbgrader export failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
    print(f"grades written to {target}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--course", type=Path, default=ROOT, help="course folder (default: here)")
    parser.add_argument("--assignment", default="ch07")
    sub = parser.add_subparsers(dest="command", required=True)

    collect = sub.add_parser("collect", help="submissions from an LMS zip or a folder")
    source = collect.add_mutually_exclusive_group(required=True)
    source.add_argument("--zip", help="the LMS download (files named <student>_<n>_<n>_<nb>)")
    source.add_argument("--folder", help="a folder with one <student>/ sub-folder each")
    collect.add_argument(
        "--pattern",
        default=LMS_PATTERN,
        help="regular expression naming student_id and file_id (zip only)",
    )

    grade = sub.add_parser("grade", help="autograde every submission, several at once")
    grade.add_argument("--jobs", type=int, default=2, help="students graded at once (default 2)")
    grade.add_argument(
        "--timeout",
        type=int,
        default=CELL_SECONDS,
        help=f"seconds a cell may run (default {CELL_SECONDS})",
    )
    grade.add_argument(
        "--student-seconds",
        type=float,
        default=STUDENT_SECONDS,
        help="seconds of execution one student's notebooks get in all; cells left when they "
        f"run out score zero (default {STUDENT_SECONDS})",
    )
    grade.add_argument(
        "--student-timeout",
        type=float,
        default=2 * STUDENT_SECONDS,
        help="last resort: a student's nbgrader run still going after this many seconds is "
        f"killed and records nothing (default {2 * STUDENT_SECONDS})",
    )
    grade.add_argument(
        "--memory-mb",
        type=int,
        default=4096,
        help="memory bound of a sandboxed kernel (default 4096)",
    )
    grade.add_argument("--sandbox", choices=("auto", "on", "off"), default="auto")
    grade.add_argument("--student", action="append", help="only these students (repeatable)")

    feedback = sub.add_parser("feedback", help="one HTML page per student and notebook")
    feedback.add_argument(
        "--hide-hidden-tests",
        action="store_true",
        help="leave hidden tests (and tracebacks quoting them) out",
    )

    export = sub.add_parser("export", help="the gradebook's scores as CSV")
    export.add_argument("to", nargs="?", default="grades.csv")

    args = parser.parse_args(argv)
    args.course = args.course.resolve()
    if not (args.course / "source" / args.assignment).is_dir():
        return _fail(f"{args.course} is not a course folder (no source/{args.assignment}/)")
    commands = {
        "collect": cmd_collect,
        "grade": cmd_grade,
        "feedback": cmd_feedback,
        "export": cmd_export,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
