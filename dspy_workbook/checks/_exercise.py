"""One exercise's tasks: self-checks, hints on demand and `check_all()` (after learntools/otter).

Each exercise's check module declares its tasks once::

    ex = Exercise("Exercise 4 · performance")

    @ex.task("timing", "Task 1 · trustworthy timing", points=2, needs=("time_call",),
             hints=["Warm up first: …", "`timeit.Timer(fn).repeat(repeat=…, number=1)` …"])
    def check_timing(time_call) -> str:
        ...                       # asserts via `expect`; return a line of praise

    hint, check_all = ex.hint, ex.check_all

In the notebook: `ex4.check_timing(time_call)` after the task, `ex4.hint("timing")` for the next
hint (levels, the last one close to the answer), and `ex4.check_all()` at the end: every task's
verdict, re-run on the names the student defined, with its points, core and optional apart.

A self-check runs the student's code under a short time bound of its own, so a hanging solution
costs seconds here and the grader's cell timeout only once.
"""

from __future__ import annotations

import functools
import html
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._core import CheckResult, check

__all__ = ["Exercise", "Hint", "Summary", "Task"]

DEFAULT_CHECK_SECONDS = 30.0


@dataclass
class Task:
    """One graded task: how it is checked, what it is worth, and its hints."""

    key: str
    title: str
    points: int
    core: bool
    needs: tuple[str, ...]
    hints: tuple[str, ...]
    run: Callable[..., CheckResult]
    hints_shown: int = 0


@dataclass(frozen=True)
class Hint:
    """A hint as the notebook shows it (Markdown in JupyterLab, one line in a log)."""

    title: str
    level: int
    levels: int
    text: str

    def __repr__(self) -> str:
        if self.level == 0:  # not a hint: a key or level that names none
            return f"💡 {self.title}: {self.text}"
        more = " (more: call again)" if self.level < self.levels else " (last hint)"
        return f"💡 {self.title} — hint {self.level}/{self.levels}{more}: {self.text}"

    def _repr_markdown_(self) -> str:
        if self.level == 0:
            return f"💡 **{self.title}**: {self.text}"
        more = "call `hint` again for the next one" if self.level < self.levels else "last hint"
        return f"💡 **{self.title}** — hint {self.level} of {self.levels} ({more})\n\n{self.text}"


@dataclass
class Summary:
    """`check_all()`'s answer: one row per task; truthy when every core task is correct."""

    title: str
    rows: list[tuple[Task, CheckResult]] = field(default_factory=list)

    def _points(self, core: bool) -> tuple[int, int]:
        chosen = [(task, result) for task, result in self.rows if task.core == core]
        return sum(t.points for t, r in chosen if r), sum(t.points for t, _ in chosen)

    def _optional(self) -> str:
        """The optional tasks' line of the summary (they may carry no points)."""
        chosen = [result for task, result in self.rows if not task.core]
        if not chosen:
            return ""
        got, total = self._points(False)
        extra = f", {got}/{total} extra-credit points" if total else ""
        return (
            f"going further (optional): {sum(map(bool, chosen))} of {len(chosen)} self-checks "
            f"pass{extra}"
        )

    def __bool__(self) -> bool:
        return all(result for task, result in self.rows if task.core)

    def __repr__(self) -> str:
        lines = [self.title]
        for task, result in self.rows:
            kind = "core" if task.core else "optional"
            lines.append(f"  {result!r}  [{task.points} pt, {kind}]")
        got, total = self._points(True)
        lines.append(f"  core: {got}/{total} points look right by the self-checks")
        if self._optional():
            lines.append(f"  {self._optional()}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><td>{'core' if task.core else 'optional'}</td><td>{task.points}</td>"
            f"<td>{result._repr_html_()}</td></tr>"
            for task, result in self.rows
        )
        got, total = self._points(True)
        optional = f"; {self._optional()}" if self._optional() else ""
        return (
            f"<b>{html.escape(self.title)}</b><table><tr><th>part</th><th>points</th>"
            f"<th>self-check</th></tr>{body}</table>"
            f"<p>Core: {got}/{total} points look right by the self-checks{optional}. "
            "The grade comes from the hidden tests, which check the same behaviours.</p>"
        )


class Exercise:
    """The registry of one exercise's tasks (see the module docstring)."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.tasks: dict[str, Task] = {}

    def task(
        self,
        key: str,
        title: str,
        *,
        points: int,
        core: bool = True,
        needs: Sequence[str] = (),
        hints: Sequence[str] = (),
        seconds: float | None = DEFAULT_CHECK_SECONDS,
    ) -> Callable[[Callable[..., str | None]], Callable[..., CheckResult]]:
        """Register a self-check. `needs` names the notebook globals `check_all` passes to it."""
        if key in self.tasks:
            raise ValueError(f"task {key!r} is declared twice in {self.title}")

        def decorate(body: Callable[..., str | None]) -> Callable[..., CheckResult]:
            run = check(title, seconds=seconds)(body)
            self.tasks[key] = Task(key, title, points, core, tuple(needs), tuple(hints), run)

            @functools.wraps(body)
            def self_check(*args: Any, **kwargs: Any) -> CheckResult:
                return run(*args, **kwargs)

            return self_check

        return decorate

    def find(self, key: object) -> Task | None:
        """The task `key` names: its key ("cache_key"), "Task 2", "task 2", 2, or its title."""
        if isinstance(key, int) and not isinstance(key, bool):
            key = f"task {key}"
        if not isinstance(key, str):
            return None
        wanted = " ".join(key.lower().replace("·", " ").split())
        for task in self.tasks.values():
            number = " ".join(task.title.lower().split("·")[0].split())  # "task 2"
            title = " ".join(task.title.lower().replace("·", " ").split())
            if wanted in (task.key.lower(), number, title):
                return task
        return None

    def hint(self, key: object = None, level: int | None = None) -> Hint:
        """The next hint for a task (or hint number `level`); each call reveals one more.

        `key` is what the notebook names beside the task: its key, "Task 2", 2, or its title. A key
        that names no task answers with one line listing the ones that do, never a traceback.
        """
        task = self.find(key)
        if task is None:
            known = ", ".join(
                f'"{t.key}" ({t.title.split("·")[0].strip()})' for t in self.tasks.values()
            )
            return Hint(self.title, 0, 0, f"no task {key!r} here; ask for one of: {known}.")
        if not task.hints:
            return Hint(task.title, 1, 1, "no hints for this task: re-read its instructions.")
        if level is None:
            task.hints_shown = min(task.hints_shown + 1, len(task.hints))
            level = task.hints_shown
        if not 1 <= level <= len(task.hints):
            return Hint(
                task.title,
                0,
                len(task.hints),
                f"hints go from 1 to {len(task.hints)}, not {level}.",
            )
        return Hint(task.title, level, len(task.hints), task.hints[level - 1])

    def check_all(self, namespace: Mapping[str, Any] | None = None) -> Summary:
        """Re-run every task's self-check on the notebook's current definitions."""
        names = namespace if namespace is not None else vars(sys.modules["__main__"])
        summary = Summary(self.title)
        for task in self.tasks.values():
            missing = [name for name in task.needs if name not in names]
            if missing:
                result = CheckResult(
                    task.title,
                    "not attempted",
                    f"`{missing[0]}` is not defined: run the task's cell first.",
                )
            else:
                result = task.run(*(names[name] for name in task.needs))
            summary.rows.append((task, result))
        return summary
