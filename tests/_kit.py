"""Grade one task of a master the way a student's kernel and the autograder would, in seconds.

`grade_catalogue(stem, submissions)` walks the master `source/ch07/<stem>.py` cell by cell in one
process on the grading model (`dspy_workbook.grading.GRADING_ENV`: the simulated provider), as a
fresh kernel would run it. At each graded task's solution cell it forks: in the child, a
submission's source replaces the solution cell, then every cell up to the task's graded cell runs
(the self-check among them), then the graded cell itself, hidden tests included. The child reports
the self-check's verdict (the `CheckResult` its cell shows) and whether the graded cell passed,
then exits; the parent goes on with the master's own solution. So every submission starts from
exactly the state a student has when they reach the task, and the notebook's set-up runs once.

Besides the catalogue's entries, every graded task is also run with two implicit submissions: the
master's solution (`reference`: must be ✅ and pass) and nbgrader's stub (`blank`: must be 💡 and
fail). Cells of earlier tasks' graded tests are not run on the way (the master's solutions pass
them; `tests/test_grading_roundtrip.py` proves it with nbgrader itself).

    python -m tests._kit 01_caching [--task cache_key] [--json]

prints one row per submission: the self-check's verdict, the graded cell's result, and whether
they agree with each other and with the entry's `correct`.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import io
import json
import linecache
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jupytext

from tests.catalogue import Submission, catalogues
from tools.answer_key import blank_solutions
from tools.course_length import core_end

ROOT = Path(__file__).resolve().parents[1]
MASTERS = ROOT / "source" / "ch07"

# A submission's cells together may run this long (the autograder allows 120 s per cell).
SUBMISSION_SECONDS = 90.0
# Verdicts a CheckResult can carry, as the notebook shows them.
ICONS = {"correct": "✅", "incorrect": "❌", "not attempted": "💡", "error": "💥"}


@dataclass
class Outcome:
    """What one submission got from the task's self-check and from its graded cell."""

    task: str
    name: str
    correct: bool
    verdict: str = "none"  # the CheckResult's outcome, or "none" when no self-check answered
    message: str = ""
    passed: bool = False  # the graded cell ran without an exception (nbgrader: full points)
    failure: str = ""  # the graded cell's exception, one line
    notes: list[str] = field(default_factory=list)  # e.g. the solution cell itself raised
    seconds: float = 0.0

    @property
    def agrees(self) -> bool:
        """✅ exactly when the hidden tests pass, and both say what the entry deserves; the
        untouched stub says 💡 (it fails at its self-check, not before it)."""
        if self.name == "blank" and self.verdict != "not attempted":
            return False
        return (self.verdict == "correct") == self.passed == self.correct

    def row(self) -> str:
        icon = ICONS.get(self.verdict, "∅")
        grade = "pass" if self.passed else "FAIL"
        mark = "ok " if self.agrees else "DISAGREE"
        want = "right" if self.correct else "wrong"
        line = f"{mark:8} {self.task:16} {want:5} {icon} {grade}  {self.name}"
        if not self.agrees:
            line += f"\n           self-check: {self.message[:300]}"
            line += f"\n           graded cell: {self.failure[:300] or 'passed'}"
            line += "".join(f"\n           note: {n[:300]}" for n in self.notes)
        return line


class CellTimeout(BaseException):
    """A BaseException, so a student's `except Exception` cannot swallow the bound."""


@dataclass(frozen=True)
class Cell:
    index: int
    source: str
    nbgrader: dict

    @property
    def grade_id(self) -> str | None:
        return self.nbgrader.get("grade_id")

    @property
    def is_solution(self) -> bool:
        return bool(self.nbgrader.get("solution"))

    @property
    def is_graded(self) -> bool:
        return bool(self.nbgrader.get("grade")) and bool(self.nbgrader.get("points"))


def code_cells(stem: str, masters: Path = MASTERS) -> list[Cell]:
    notebook = jupytext.read(masters / f"{stem}.py", fmt="py:percent")
    return [
        Cell(i, c.source, dict(c.metadata.get("nbgrader", {})))
        for i, c in enumerate(notebook.cells)
        if c.cell_type == "code"
    ]


def graded_tasks(cells: list[Cell]) -> dict[str, tuple[Cell, list[Cell], Cell]]:
    """For each graded task: its solution cell, the cells between, and its graded cell."""
    tasks: dict[str, tuple[Cell, list[Cell], Cell]] = {}
    for pos, cell in enumerate(cells):
        if not cell.is_solution or not cell.grade_id:
            continue
        between: list[Cell] = []
        for later in cells[pos + 1 :]:
            if later.is_graded:
                tasks[cell.grade_id] = (cell, between, later)
                break
            if later.is_solution:
                break  # an ungraded (optional) solution cell: no graded cell of its own
            between.append(later)
    return tasks


# -- running cells like a kernel --------------------------------------------------------------
def _compile(source: str, label: str) -> tuple[types.CodeType | None, types.CodeType | None]:
    """The cell's statements, and its last expression apart (its value is what a cell shows)."""
    linecache.cache[label] = (len(source), None, source.splitlines(keepends=True), label)
    tree = ast.parse(source, filename=label)
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(
            ast.Expression(tree.body.pop().value), label, "eval", flags=flags, dont_inherit=True
        )
    # dont_inherit: a kernel's cell does not inherit this module's `from __future__` imports.
    body = compile(tree, label, "exec", flags=flags, dont_inherit=True)
    return body, last


def _run_code(code: types.CodeType, namespace: dict, loop: asyncio.AbstractEventLoop):
    result = eval(code, namespace)
    if asyncio.iscoroutine(result):
        result = loop.run_until_complete(result)
    return result


def run_cell(source: str, label: str, namespace: dict, loop: asyncio.AbstractEventLoop):
    """Run one cell in `namespace`; return its last expression's value (None if it has none)."""
    body, last = _compile(source, label)
    _run_code(body, namespace, loop)
    return _run_code(last, namespace, loop) if last is not None else None


@contextlib.contextmanager
def time_bound(seconds: float):
    def expire(signum, frame):
        raise CellTimeout(f"did not finish in {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _one_line(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] or [None]
    where = f" at {last[0].filename}:{last[0].lineno}" if last[0] else ""
    return f"{type(exc).__name__}: {exc}{where}".replace("\n", " ")


def _grade_in_child(
    stem: str,
    submission: Submission,
    solution: Cell,
    between: list[Cell],
    graded: Cell,
    namespace: dict,
    loop: asyncio.AbstractEventLoop,
) -> Outcome:
    from dspy_workbook.checks._core import CheckResult

    outcome = Outcome(submission.task, submission.name, submission.correct)
    # A loop of the child's own: the parent's shares its selector with this process after fork.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    started = time.perf_counter()
    try:
        with time_bound(SUBMISSION_SECONDS):
            try:
                run_cell(
                    submission.source, f"<{stem} solution {solution.grade_id}>", namespace, loop
                )
            except Exception as exc:  # the student's cell raised: the kernel goes on
                outcome.notes.append(f"the solution cell raised {_one_line(exc)}")
            for cell in between:
                try:
                    shown = run_cell(cell.source, f"<{stem} cell {cell.index}>", namespace, loop)
                except Exception as exc:
                    outcome.notes.append(f"cell {cell.index} raised {_one_line(exc)}")
                    continue
                if isinstance(shown, CheckResult):
                    outcome.verdict, outcome.message = shown.outcome, shown.message
            try:
                run_cell(graded.source, f"<{stem} graded {graded.grade_id}>", namespace, loop)
                outcome.passed = True
            except Exception as exc:
                outcome.failure = _one_line(exc)
    except CellTimeout as exc:
        outcome.failure = outcome.failure or f"CellTimeout: {exc}"
    outcome.seconds = time.perf_counter() - started
    return outcome


def _fork_and_grade(run, deadline: float, log: Path) -> dict:
    """Run `run()` in a forked child (a pristine copy of the notebook's state); its Outcome comes
    back as JSON through a pipe. A child that neither answers nor exits by `deadline` is killed."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        code = 0
        try:
            with open(log, "a") as sink:
                os.dup2(sink.fileno(), 1)
                os.dup2(sink.fileno(), 2)
            payload = json.dumps(asdict(run())).encode()
        except BaseException as exc:  # noqa: BLE001 — the child must always answer
            payload = json.dumps({"error": _one_line(exc)}).encode()
            code = 1
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(payload)
        os._exit(code)
    os.close(write_fd)
    chunks: list[bytes] = []
    os.set_blocking(read_fd, False)
    while True:
        try:
            chunk = os.read(read_fd, 65536)
        except BlockingIOError:
            chunk = None
        if chunk:
            chunks.append(chunk)
            continue
        done, _ = os.waitpid(pid, os.WNOHANG)
        if chunk == b"" or done:
            with contextlib.suppress(BlockingIOError):
                while data := os.read(read_fd, 65536):
                    chunks.append(data)
            if not done:
                os.waitpid(pid, 0)
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_fd)
            return {"error": "the child did not answer in time (killed)"}
        time.sleep(0.02)
    os.close(read_fd)
    try:
        return json.loads(b"".join(chunks) or b"{}")
    except json.JSONDecodeError:
        return {"error": "the child's answer was not JSON"}


def grade_catalogue(
    stem: str,
    submissions: Iterable[Submission],
    *,
    only_task: str | None = None,
    masters: Path = MASTERS,
) -> list[Outcome]:
    """Every submission (plus each task's `reference` and `blank`) through its task; see above."""
    from dspy_workbook.grading import GRADING_ENV

    cells = code_cells(stem, masters)
    tasks = graded_tasks(cells)
    by_task: dict[str, list[Submission]] = {}
    for entry in submissions:
        if entry.task not in tasks:
            raise LookupError(
                f"{stem}: no graded task with solution grade_id {entry.task!r} "
                f"(entry {entry.name!r}); the graded tasks are {', '.join(tasks)}"
            )
        by_task.setdefault(entry.task, []).append(entry)
    for grade_id, (solution, _, _) in tasks.items():
        by_task.setdefault(grade_id, []).extend(
            [
                Submission(grade_id, "reference", solution.source, True),
                Submission(grade_id, "blank", blank_solutions(solution.source), False),
            ]
        )

    os.environ.update(GRADING_ENV)
    os.environ.setdefault("MPLBACKEND", "Agg")
    work = Path(tempfile.mkdtemp(prefix=f"kit-{stem}-"))
    os.environ.setdefault("WORKBOOK_CACHE_DIR", str(work / "cache"))
    os.chdir(work)  # a student's folder: the notebook writes only here
    log = work / "children.log"

    main = types.ModuleType("__main__")  # `check_all()` reads the notebook's names from here
    sys.modules["__main__"] = main
    namespace = main.__dict__
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    outcomes: list[Outcome] = []
    last_graded = max((g.index for _, _, g in tasks.values()), default=-1)
    with contextlib.redirect_stdout(io.StringIO()):
        for cell in cells:
            if cell.index > last_graded:
                break
            if cell.is_solution and cell.grade_id in tasks:
                if only_task in (None, cell.grade_id):
                    _, between, graded = tasks[cell.grade_id]
                    for entry in by_task.get(cell.grade_id, []):
                        deadline = time.monotonic() + SUBMISSION_SECONDS + 30

                        def run(entry=entry, between=between, graded=graded, cell=cell):
                            return _grade_in_child(
                                stem, entry, cell, between, graded, namespace, loop
                            )

                        answer = _fork_and_grade(run, deadline, log)
                        if "error" in answer:
                            outcome = Outcome(entry.task, entry.name, entry.correct)
                            outcome.notes.append(answer["error"])
                        else:
                            outcome = Outcome(**answer)
                        outcomes.append(outcome)
            if cell.is_graded:
                continue  # earlier tasks' tests: the master passes them (round trip proves it)
            run_cell(cell.source, f"<{stem} cell {cell.index}>", namespace, loop)
    return outcomes


@dataclass
class RunAll:
    """What *Run All* did to a notebook: where it stopped (None: it ran to the end), why, and
    what the cells before the stop wrote to stderr (warnings a student has to wade through)."""

    stopped_at: int | None = None
    stopped_cell: str = ""
    error: str = ""
    stderr_before_stop: str = ""
    ran: int = 0


def optional_start(stem: str, masters: Path = MASTERS) -> int:
    """The index (among all cells) of the first heading that opens the optional part."""
    return core_end(jupytext.read(masters / f"{stem}.py", fmt="py:percent").cells)


def run_all(stem: str, blank: str, masters: Path = MASTERS) -> RunAll:
    """*Run All* of the master in this process on the grading model, with solution regions
    blanked: `blank="all"` (the release as a student gets it) or `"optional"` (core solved,
    going-further tasks left undone). Stops at the first cell that raises, as Jupyter does."""
    first_optional = optional_start(stem, masters)
    undone = {
        cell.grade_id
        for cell in code_cells(stem, masters)
        if cell.is_solution and cell.grade_id and (blank == "all" or cell.index > first_optional)
    }
    with kernel(stem, blank=undone, stop_at_error=True, masters=masters) as notebook:
        stopped = notebook.stopped
        report = RunAll(
            ran=len(notebook.runs) - (stopped is not None),
            stderr_before_stop=notebook.errors.getvalue(),
        )
        if stopped is not None:
            report.stopped_at, report.stopped_cell = stopped.cell.index, stopped.cell.grade_id or ""
            report.error = _one_line(stopped.error)
    return report


# -- a kernel partway through a master: for tests that need more than a verdict --------------
@dataclass
class CellRun:
    """One cell as the kernel ran it: the source that ran (the master's, its stub or a
    submission), what its last expression showed, what it raised, how long it took."""

    cell: Cell
    source: str
    shown: object = None
    error: BaseException | None = None
    seconds: float = 0.0


@dataclass
class Kernel:
    """A fresh kernel on the grading model that has run a master's cells (see `kernel`)."""

    stem: str
    cells: list[Cell]
    namespace: dict
    loop: asyncio.AbstractEventLoop
    runs: list[CellRun] = field(default_factory=list)
    stopped: CellRun | None = None  # with stop_at_error: the cell Run All stopped at
    output: io.StringIO = field(default_factory=io.StringIO)  # stdout, stderr, log records
    errors: io.StringIO = field(default_factory=io.StringIO)  # stderr and log records alone

    @property
    def printed(self) -> str:
        """Everything the cells printed, to stdout or stderr, or logged, in order."""
        return self.output.getvalue()

    def cell(self, grade_id: str) -> Cell:
        """The master's cell with this grade_id (a solution or a graded cell)."""
        for cell in self.cells:
            if cell.grade_id == grade_id:
                return cell
        known = ", ".join(c.grade_id for c in self.cells if c.grade_id)
        raise LookupError(f"{self.stem} has no cell {grade_id!r}; it has {known}")

    def ran(self, grade_id: str) -> CellRun:
        """The last run of the cell `grade_id`; for a graded cell, what nbgrader scores."""
        for run in reversed(self.runs):
            if run.cell.grade_id == grade_id:
                return run
        raise LookupError(f"{self.stem}: cell {grade_id!r} did not run (stopped before it?)")

    def run(self, source: str, label: str = "<test>"):
        """Run more code in the notebook's namespace, as one more cell (it may `await`): its
        last expression's value; it raises what the code raises."""
        with self.captured():
            return run_cell(source, label, self.namespace, self.loop)

    def stderr(self) -> _Both:
        """Where the kernel's stderr and log records go: `output` and `errors` both."""
        return _Both(self.output, self.errors)

    @contextlib.contextmanager
    def captured(self) -> Iterator[None]:
        """stdout into `output`; stderr into `output` and `errors` (see `stderr`)."""
        with contextlib.redirect_stdout(self.output), contextlib.redirect_stderr(self.stderr()):
            yield


class _Both(io.TextIOBase):
    """A text stream that writes to each of `streams`."""

    def __init__(self, *streams: io.StringIO) -> None:
        self.streams = streams

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)


def _logging_state() -> Callable[[], None]:
    """Every logger's level, handlers, propagation and on/off now; call the result to put them
    back. A notebook configures logging for its kernel (Exercise 5 quietens the service's logger,
    Exercise 3 adds handlers): run in this process, that must not outlast the notebook."""
    loggers = [logging.getLogger()]
    loggers += [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    saved = [(lg, lg.level, lg.handlers[:], lg.propagate, lg.disabled) for lg in loggers]

    def restore() -> None:
        for lg, level, handlers, propagate, disabled in saved:
            lg.setLevel(level)
            lg.handlers[:] = handlers
            lg.propagate, lg.disabled = propagate, disabled

    return restore


def _bounded(seconds: float):
    """`time_bound` where a signal can deliver it (the main thread), else nothing."""
    if threading.current_thread() is threading.main_thread():
        return time_bound(seconds)
    return contextlib.nullcontext()


@contextlib.contextmanager
def kernel(
    stem: str,
    *,
    blank: Iterable[str] = (),
    replace: Mapping[str, str] | None = None,
    until: str | None = None,
    through: str | None = None,
    stop_at_error: bool = False,
    masters: Path = MASTERS,
) -> Iterator[Kernel]:
    """Run the master `stem` cell by cell in this process, as a fresh kernel on the grading model
    runs a student's notebook, and yield that kernel (to look at, or to run more code in).

    The solution cells whose grade_id is in `blank` run as the release's stubs, those in
    `replace` (grade_id -> source) as that submission, the rest as the master has them. The walk
    stops before the cell whose grade_id is `until`, after the one that is `through`, or at the
    end. Like nbgrader's autograder, a cell that raises is recorded (`Kernel.runs`: a graded
    cell that raised has lost its points) and the next cell runs; `stop_at_error=True` stops
    there instead, as *Run All* does (`Kernel.stopped`). A cell may take SUBMISSION_SECONDS.

    The grading model, a temporary working folder, a `__main__` of its own and an event loop of
    its own last until the `with` block ends; then the environment, the folder, `__main__` and
    the event loop are as they were, and so is logging (DSPy's settings: `tests/conftest.py`'s
    autouse fixture).
    """
    from dspy_workbook.grading import GRADING_ENV

    cells = code_cells(stem, masters)
    blank, replace = set(blank), dict(replace or {})
    named = {c.grade_id for c in cells if c.grade_id}
    solutions = {c.grade_id for c in cells if c.is_solution and c.grade_id}
    unknown = sorted((blank | set(replace)) - solutions) + sorted({until, through} - named - {None})
    if unknown:
        raise LookupError(
            f"{stem} has no cell {', '.join(map(repr, unknown))}; "
            f"its solution cells are {', '.join(sorted(solutions))}"
        )

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_main = sys.modules.get("__main__")
    restore_logging = _logging_state()
    work = Path(tempfile.mkdtemp(prefix=f"kernel-{stem}-"))
    os.environ.update(GRADING_ENV)
    os.environ["MPLBACKEND"] = "Agg"
    os.environ["WORKBOOK_CACHE_DIR"] = str(work / "cache")
    os.chdir(work)  # a student's folder: the notebook writes only here
    main = types.ModuleType("__main__")  # `check_all()` reads the notebook's names from here
    sys.modules["__main__"] = main
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    state = Kernel(stem, cells, main.__dict__, loop)
    logging.getLogger().addHandler(logging.StreamHandler(state.stderr()))
    try:
        with state.captured():
            for cell in cells:
                if until is not None and cell.grade_id == until:
                    break
                source = cell.source
                if cell.is_solution and cell.grade_id in replace:
                    source = replace[cell.grade_id]
                elif cell.is_solution and cell.grade_id in blank:
                    source = blank_solutions(source)
                run = CellRun(cell, source)
                started = time.perf_counter()
                try:
                    with _bounded(SUBMISSION_SECONDS):
                        run.shown = run_cell(
                            source, f"<{stem} cell {cell.index}>", main.__dict__, loop
                        )
                except (Exception, SystemExit, CellTimeout) as exc:  # a kernel records these
                    run.error = exc
                run.seconds = time.perf_counter() - started
                state.runs.append(run)
                if run.error is not None and stop_at_error:
                    state.stopped = run
                    break
                if through is not None and cell.grade_id == through:
                    break
        yield state
    finally:
        restore_logging()  # also takes off the log handler added above
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")
        loop.close()
        asyncio.set_event_loop(None)
        if saved_main is not None:
            sys.modules["__main__"] = saved_main
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        shutil.rmtree(work, ignore_errors=True)


def submit(namespace: dict, entry: Submission) -> dict:
    """Run a catalogue entry's source in `namespace` (e.g. an answer key from
    `tools.answer_key.load_solutions`) as a notebook cell runs; returns the namespace."""
    exec(
        compile(entry.source, f"<{entry.task}: {entry.name}>", "exec", dont_inherit=True), namespace
    )
    return namespace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("master", help="a master's stem, e.g. 01_caching")
    parser.add_argument("--task", help="only this task (its solution cell's grade_id)")
    parser.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    parser.add_argument(
        "--run-all",
        choices=("all", "optional"),
        help="instead: Run All with these solutions blanked (the release, or only going further)",
    )
    args = parser.parse_args(argv)
    if args.run_all:
        report = run_all(args.master, args.run_all)
        print(json.dumps(asdict(report)) if args.json else report)
        return 0
    entries = catalogues().get(args.master, [])
    outcomes = grade_catalogue(args.master, entries, only_task=args.task)
    if args.json:
        print(json.dumps([asdict(o) for o in outcomes]))
    else:
        for outcome in outcomes:
            print(outcome.row())
        bad = sum(not o.agrees for o in outcomes)
        print(f"{len(outcomes)} submissions, {bad} disagree")
    return 0 if all(o.agrees for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
