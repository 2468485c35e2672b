"""Self-checks: one call per task gives a student an immediate, specific verdict.

A check never raises. It returns a `CheckResult` with one of four outcomes (after learntools):
correct, incorrect (an `AssertionError` from the check, whose message names what was produced),
not attempted (the starter still raises `NotImplementedError`, or returns the placeholder), and
error (the student's code raised something else). The hidden tests that grade are separate.
"""

from __future__ import annotations

import functools
import html
import linecache
import re
import sysconfig
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, ParamSpec

from ..threads import BoundExceeded, run_with_timeout

__all__ = [
    "CheckResult",
    "NotAttempted",
    "call_student",
    "check",
    "expect",
    "expect_callable",
    "student_line",
]

Outcome = Literal["correct", "incorrect", "not attempted", "error"]
P = ParamSpec("P")

_ICONS = {"correct": "✅", "incorrect": "❌", "not attempted": "💡", "error": "💥"}
_COLOURS = {
    "correct": "#1b5e20",
    "incorrect": "#b71c1c",
    "not attempted": "#0d47a1",
    "error": "#e65100",
}


class NotAttempted(Exception):
    """The task's starter code has not been replaced yet."""


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one self-check; truthy only when correct."""

    task: str
    outcome: Outcome
    message: str

    def __bool__(self) -> bool:
        return self.outcome == "correct"

    def __repr__(self) -> str:
        return f"{_ICONS[self.outcome]} {self.task}: {self.outcome} — {self.message}"

    def _repr_html_(self) -> str:
        colour = _COLOURS[self.outcome]
        return (
            f'<div style="border-left:4px solid {colour};padding:4px 8px">'
            f"{_ICONS[self.outcome]} <b>{html.escape(self.task)}</b>: "
            f'<span style="color:{colour}">{self.outcome}</span> — '
            f"{_inline_code(self.message)}</div>"
        )


def _inline_code(text: str) -> str:
    """Escape `text` for HTML and render its Markdown `backticks` as code, as prose does."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def expect(condition: Any, message: str) -> None:
    """Fail the check with `message` (say what the student's code produced) unless `condition`."""
    if not condition:
        raise AssertionError(message)


def call_student(
    what: str, fn: Callable[..., Any], *args: Any, hint: str = "", **kwargs: Any
) -> Any:
    """Call the student's code; an unexpected exception becomes a specific 'incorrect' verdict
    ("`what` raised KeyError: … (your line 12: `…`) — hint") instead of a generic error."""
    try:
        return fn(*args, **kwargs)
    except (NotImplementedError, AssertionError, NotAttempted):
        raise
    except Exception as exc:
        where = student_line(exc)
        suffix = f" — {hint}" if hint else ""
        raise AssertionError(
            f"{what} raised {type(exc).__name__}: {exc}{f' ({where})' if where else ''}{suffix}"
        ) from exc


def expect_callable(obj: Any, name: str) -> None:
    """A task's answer that is not a function or class yet (None, `...`, a string) counts as
    not attempted, the same in every exercise: the student has not written it, they did not get
    it wrong."""
    if not callable(obj):
        raise NotAttempted(
            f"`{name}` is {type(obj).__name__}, not a function or class yet — define it in the "
            "task's cell, run that cell, then this check again."
        )


# Frames in these folders are library code (the standard library, installed packages, this
# package): the student's own line is the last frame outside them, e.g. a notebook cell.
_LIBRARY_DIRS = tuple(
    str(Path(p).resolve())
    for p in {
        sysconfig.get_paths()["stdlib"],
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
        str(Path(__file__).resolve().parents[1]),
    }
)


def _is_library(filename: str) -> bool:
    if filename.startswith("<frozen"):
        return True
    try:
        resolved = str(Path(filename).resolve())
    except (OSError, ValueError):
        return False
    return resolved.startswith(_LIBRARY_DIRS) or "site-packages" in resolved


def student_line(exc: BaseException) -> str:
    """'your line N: `code`' for the last traceback frame in the student's own code (a notebook
    cell), or '' when the exception never passed through it."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not _is_library(f.filename)]
    if not frames:
        return ""
    frame = frames[-1]
    code = (frame.line or linecache.getline(frame.filename, frame.lineno or 0)).strip()
    if len(code) > 80:
        code = code[:77] + "…"
    return f"your line {frame.lineno}: `{code}`" if code else f"your line {frame.lineno}"


def check(
    task: str,
    *,
    seconds: float | None = None,
) -> Callable[[Callable[P, str | None]], Callable[P, CheckResult]]:
    """Turn a function of asserts into a self-check for `task` that returns a `CheckResult`.

    With `seconds`, the check runs in a helper thread (same `dspy.context`) and reports code that
    does not finish in time, instead of hanging the notebook.
    """

    def decorate(body: Callable[P, str | None]) -> Callable[P, CheckResult]:
        @functools.wraps(body)
        def run(*args: P.args, **kwargs: P.kwargs) -> CheckResult:
            try:
                if seconds is None:
                    praise = body(*args, **kwargs)
                else:
                    try:
                        praise = run_with_timeout(
                            body, *args, timeout=seconds, name=f"self-check {task}", **kwargs
                        )
                    except BoundExceeded:
                        return CheckResult(
                            task,
                            "error",
                            f"your code did not finish in {seconds:g} s: look for a "
                            "loop that never ends or a call that never returns.",
                        )
            except NotAttempted as exc:
                return CheckResult(task, "not attempted", str(exc))
            except NotImplementedError:
                return CheckResult(
                    task,
                    "not attempted",
                    "your code still raises `NotImplementedError` — replace it with "
                    "your solution, run that cell, then run this check again.",
                )
            except AssertionError as exc:
                return CheckResult(task, "incorrect", str(exc) or "an assertion failed")
            except Exception as exc:  # the student's code failed: say how and where, no traceback
                where = student_line(exc)
                return CheckResult(
                    task,
                    "error",
                    f"your code raised {type(exc).__name__}: {exc}"
                    + (f" ({where})" if where else ""),
                )
            return CheckResult(task, "correct", praise or "well done.")

        return run

    return decorate
