"""What grading costs, and where the time goes: one student, a class, a hanging student, Validate.

1. kernel: start a grading kernel, run one cell, stop it; plain vs in the bubblewrap sandbox
   (median of --repeat runs): the sandbox's fixed cost per notebook.
2. one: one student's six notebooks graded by the real `nbgrader autograde` (the runner of
   `tools/grade_class.py`): the solved masters, then the blank release. Goal: ≤ 30 s each.
3. breakdown: where each second of the solved student of (2) went, per notebook and cell type
   (kernel start, given code, solutions, self-checks, graded tests; cells not run because they
   carry no points), as the grading preprocessor recorded it during that run
   (`--GradingExecute.timings_file`); the rest is nbgrader itself (start-up, copies, gradebook).
4. hang: a student whose code hangs everywhere (every solution cell loops forever), graded with
   the default limits. Goal: ≤ 5 min in all.
5. class: --students submissions (half solved, half blank), --jobs at a time, as `make grade`
   runs them. Goal: 30 students ≤ 8 min with two at a time.
6. validate: what the Validate button runs (`dspy_workbook.grading.validate_extension`), on the
   solved Exercise 4 and the released (unfinished) Exercise 5. Goal: ≤ 30 s each.

The goals are for a quiet 2-core machine: every figure prints with the load average (1 min) at its
end, and grading runs with the CPU seconds they used (sampled from every process they started),
which do not grow with other load: on idle cores a run takes about its CPU seconds per busy core.
Scores are checked as the figures are taken (solved = full marks, blank and hanging = 0).

    PYTHONPATH=. .venv/bin/python bench/bench_grading.py                  # everything (~15 min)
    PYTHONPATH=. .venv/bin/python bench/bench_grading.py --only one,breakdown,validate
    PYTHONPATH=. .venv/bin/python bench/bench_grading.py --only class --students 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import nbformat
import psutil
from nbformat import NotebookNode
from nbgrader.api import Gradebook

from dspy_workbook.grading.execute import GradingExecute, last_graded_cell
from dspy_workbook.grading.limits import CELL_SECONDS
from dspy_workbook.grading.sandbox import bwrap_path
from dspy_workbook.grading.validate_extension import run_validation
from tools.gradeday.autograde import autograde_class
from tools.gradeday.nbgrader_cli import nbgrader, venv_env

ROOT = Path(__file__).resolve().parents[1]

ASSIGNMENT = "ch07"
SECTIONS = ("kernel", "one", "breakdown", "hang", "class", "validate")
HANG = "import time\nwhile True:\n    time.sleep(0.1)\n"
SELF_CHECK = re.compile(r"\bex\d+\.check_(?!all\b)\w+\(")
CATEGORIES = (
    "kernel start",
    "given code",
    "solutions",
    "self-checks",
    "graded tests",
    "stop, other",
)


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


# ---- the course ------------------------------------------------------------------------------


def course_with_masters(tmp: Path) -> Path:
    """A course of the real exercises, released with `nbgrader generate_assignment`."""
    course = tmp / "course"
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    for master in sorted((ROOT / "source" / ASSIGNMENT).glob("*.ipynb")):
        shutil.copy(master, course / "source" / ASSIGNMENT / master.name)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    run = nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    if run.returncode != 0:
        raise SystemExit(f"generate_assignment failed:\n{run.stdout}{run.stderr}")
    return course


def submit(course: Path, student: str, kind: str) -> None:
    """`solved` (the masters), `blank` (the release) or `hang` (every solution cell hangs)."""
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    for released in sorted((course / "release" / ASSIGNMENT).glob("*.ipynb")):
        if kind == "solved":
            shutil.copy(course / "source" / ASSIGNMENT / released.name, folder / released.name)
            continue
        nb = nbformat.read(released, as_version=4)
        if kind == "hang":
            for cell in nb.cells:
                if cell.metadata.get("nbgrader", {}).get("solution") and cell.cell_type == "code":
                    cell.source = HANG
        nbformat.write(nb, folder / released.name)


def scores(course: Path, students: list[str]) -> dict[str, tuple[float, float]]:
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        found = {}
        for student in students:
            submission = gradebook.find_submission(ASSIGNMENT, student)
            found[student] = (submission.score, submission.max_score)
        return found


class DescendantCpu:
    """CPU seconds this process's descendants (nbgrader, bwrap, kernels) use while the block runs,
    sampled every 0.1 s. Unlike wall time it does not grow with the machine's other load: on
    idle cores, grading takes about this long per core busy (plus the model's simulated waits)."""

    def __enter__(self) -> DescendantCpu:
        self._seen: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="cpu-sampler", daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            for child in me.children(recursive=True):
                try:
                    with child.oneshot():
                        used = child.cpu_times()
                        self._seen[child.pid, child.create_time()] = used.user + used.system
                except psutil.Error:
                    continue
            self._stop.wait(0.1)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def seconds(self) -> float:
        return sum(self._seen.values())


def grade(
    course: Path, students: list[str], jobs: int = 1, timings: Path | None = None
) -> tuple[float, float]:
    """Grade as `make grade` does (the default limits; the sandbox when bwrap is installed):
    (wall seconds, CPU seconds)."""
    args = [f"--Execute.timeout={CELL_SECONDS}"]
    if timings is not None:
        args.append(f"--GradingExecute.timings_file={timings}")
    start = time.perf_counter()
    with DescendantCpu() as cpu:
        runs = autograde_class(course, ASSIGNMENT, students, jobs=jobs, args=args, env=venv_env())
    seconds = time.perf_counter() - start
    failed = [r for r in runs if r.timed_out]
    if failed:
        raise SystemExit(f"{failed[0].student}'s run was killed:\n{failed[0].log[-2000:]}")
    return seconds, cpu.seconds


def verdict(found: tuple[float, float], kind: str) -> str:
    score, maximum = found
    expected = maximum if kind == "solved" else 0.0
    ok = "as expected" if score == expected else f"EXPECTED {expected:g}"
    return f"{score:g} / {maximum:g} points, {ok}"


# ---- 1. kernel round trip ---------------------------------------------------------------------


def kernel_round_trip(folder: Path, sandbox: str) -> float:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    # A graded cell: the preprocessor runs nothing in a notebook without one.
    nb.cells[0].metadata["nbgrader"] = {"grade": True, "grade_id": "one", "points": 1}
    execute = GradingExecute(timeout=60, sandbox=sandbox)
    start = time.perf_counter()
    execute.preprocess(nb, {"metadata": {"path": str(folder)}})
    return time.perf_counter() - start


def bench_kernel(repeat: int) -> None:
    if bwrap_path() is None:
        print("kernel round trip: bwrap is not installed (apt-get install bubblewrap): skipped")
        return
    with tempfile.TemporaryDirectory(prefix="bench-kernel-") as folder:
        plain = [kernel_round_trip(Path(folder), "off") for _ in range(repeat)]
        boxed = [kernel_round_trip(Path(folder), "on") for _ in range(repeat)]
    p, b = statistics.median(plain), statistics.median(boxed)
    print(
        f"kernel round trip (median of {repeat}): plain {p:.2f} s, sandboxed {b:.2f} s, "
        f"sandbox cost {b - p:+.2f} s per notebook  [{load()}]",
        flush=True,
    )


# ---- 3. where the time goes -------------------------------------------------------------------


def category(cell: NotebookNode) -> str:
    meta = cell.metadata.get("nbgrader", {})
    if meta.get("grade"):
        return "graded tests"
    if meta.get("solution"):
        return "solutions"
    if SELF_CHECK.search(cell.source):
        return "self-checks"
    return "given code"


def bench_breakdown(course: Path, student: str, timings: Path, graded_seconds: float) -> None:
    """Each notebook's kernel start and cell times, recorded by the grading preprocessor during
    the real autograde of `student` (`--GradingExecute.timings_file`), summed per cell type."""
    records = [json.loads(line) for line in timings.read_text().splitlines()]
    folder = course / "submitted" / student / ASSIGNMENT
    print(f"where {student}'s {graded_seconds:.1f} s went (seconds):")
    header = "".join(f"{name:>13}" for name in CATEGORIES)
    print(f"  {'notebook':<18}{'total':>7}{header}{'not run':>9}")
    sums: dict[str, float] = defaultdict(float)
    for record in records:
        nb = nbformat.read(folder / f"{record['notebook']}.ipynb", as_version=4)
        spent: dict[str, float] = defaultdict(float)
        spent["kernel start"] = record["kernel"]
        for index, seconds in record["cells"].items():
            spent[category(nb.cells[int(index)])] += seconds
        spent["stop, other"] = record["total"] - sum(spent.values())
        last = last_graded_cell(nb)
        skipped = sum(1 for i, c in enumerate(nb.cells) if c.cell_type == "code" and i > last)
        for name in CATEGORIES:
            sums[name] += spent[name]
        sums["total"] += record["total"]
        row = "".join(f"{spent[name]:13.1f}" for name in CATEGORIES)
        print(f"  {record['notebook']:<18}{record['total']:7.1f}{row}{skipped:9d}")
        slowest = sorted(record["cells"].items(), key=lambda pair: -pair[1])[:3]
        named = [
            f"cell {i} ({category(nb.cells[int(i)])}) {s:.1f} s" for i, s in slowest if s >= 0.5
        ]
        if named:
            print(f"  {'':<18}slowest: {', '.join(named)}")
    row = "".join(f"{sums[name]:13.1f}" for name in CATEGORIES)
    print(f"  {'notebooks':<18}{sums['total']:7.1f}{row}")
    print(
        f"  {'nbgrader itself':<18}{graded_seconds - sums['total']:7.1f}  (start-up, copies, "
        f"gradebook)  [{load()}]",
        flush=True,
    )


# ---- 6. Validate ------------------------------------------------------------------------------


def bench_validate(course: Path) -> None:
    cases = {
        "the solved Exercise 4": course / "source" / ASSIGNMENT / "04_optimization.ipynb",
        "the released Exercise 5": course / "release" / ASSIGNMENT / "05_deployment.ipynb",
    }
    for name, notebook in cases.items():
        with tempfile.TemporaryDirectory(prefix="bench-validate-") as folder:
            copy = Path(folder) / notebook.name
            shutil.copy(notebook, copy)
            start = time.perf_counter()
            reply = asyncio.run(run_validation(copy))
            seconds = time.perf_counter() - start
        value = reply.get("value")
        if not reply.get("success"):
            said = f"an error: {str(value)[:200]}"
        elif not value:
            said = "Success! (every test passes)"
        else:
            said = f"{len(value.get('failed', []))} failed cell(s)" if "failed" in value else value
        print(f"Validate of {name}: {seconds:.1f} s, {said}  [{load()}]", flush=True)


# ---- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=30, help="class size (default 30)")
    parser.add_argument("--jobs", type=int, default=2, help="students at once (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="kernel round trips (default 3)")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"some of {','.join(SECTIONS)} (default all)"
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    if only - set(SECTIONS):
        raise SystemExit(f"--only takes {','.join(SECTIONS)}, not {','.join(only - set(SECTIONS))}")
    sandbox = "sandboxed" if bwrap_path() else "NOT sandboxed (bwrap missing)"
    print(f"{os.cpu_count()} cores, {load()}; grading kernels {sandbox}", flush=True)
    if "kernel" in only:
        bench_kernel(args.repeat)
    if not only & {"one", "breakdown", "hang", "class", "validate"}:
        return
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        start = time.perf_counter()
        course = course_with_masters(Path(tmp))
        print(f"course released in {time.perf_counter() - start:.1f} s  [{load()}]", flush=True)
        graded: dict[str, float] = {}

        def one() -> None:
            for kind in ("solved", "blank"):
                submit(course, kind, kind)
                seconds, cpu = grade(course, [kind], timings=Path(tmp) / f"{kind}.jsonl")
                graded[kind] = seconds
                print(
                    f"one student, all six notebooks, {kind}: {seconds:.1f} s, {cpu:.1f} s of CPU "
                    f"({verdict(scores(course, [kind])[kind], kind)})  [{load()}]",
                    flush=True,
                )

        def hang() -> None:
            submit(course, "hangs", "hang")
            seconds, cpu = grade(course, ["hangs"])
            found = scores(course, ["hangs"])["hangs"]
            print(
                f"a student whose code hangs everywhere: {seconds:.1f} s, {cpu:.1f} s of CPU "
                f"({verdict(found, 'hang')})  [{load()}]",
                flush=True,
            )

        def a_class() -> None:
            kinds = {f"class{n:02d}": ("solved", "blank")[n % 2] for n in range(args.students)}
            for student, kind in kinds.items():
                submit(course, student, kind)
            seconds, cpu = grade(course, list(kinds), jobs=args.jobs)
            found = scores(course, list(kinds))
            wrong = [s for s, kind in kinds.items() if "EXPECTED" in verdict(found[s], kind)]
            cores = os.cpu_count() or 1
            print(
                f"{args.students} students ({args.students - args.students // 2} solved, "
                f"{args.students // 2} blank), {args.jobs} at a time: {seconds:.1f} s = "
                f"{seconds / 60:.1f} min ({seconds / args.students:.1f} s per student); "
                f"{cpu:.0f} s of CPU = {cpu / min(cores, args.jobs) / 60:.1f} min on "
                f"{min(cores, args.jobs)} idle cores; scores "
                f"{'as expected' if not wrong else 'NOT as expected for ' + ', '.join(wrong)}"
                f"  [{load()}]",
                flush=True,
            )

        if "one" in only:
            one()
        if "breakdown" in only:
            if "one" not in only:
                submit(course, "solved", "solved")
                timings = Path(tmp) / "solved.jsonl"
                graded["solved"], _ = grade(course, ["solved"], timings=timings)
            bench_breakdown(course, "solved", Path(tmp) / "solved.jsonl", graded["solved"])
        if "validate" in only:
            bench_validate(course)
        if "hang" in only:
            hang()
        if "class" in only:
            a_class()


if __name__ == "__main__":
    main()
