"""How long each notebook's core path takes a careful student, counted on the masters.

The chapter budgets 3–4 hours for all six exercises, reading included. This counts, on every cell
before the first heading that says "Going further" (or "optional"):

* **words** — Markdown words, plus the comment words of given code cells (read at 200 words/min);
* **given lines** — lines of given code to read: code cells without comments, blank lines,
  solution regions and hidden tests (read at 20 lines/min);
* **tasks** — graded cells with points (4 min each: re-read, self-check, one fix);
* **lines to write** — logical lines inside solution regions (1 min each).

The sum is deliberately pessimistic: students tried on the notebooks took about half of it. The
limits it is held to (`tests/test_course_length.py`): each exercise ≤ 55 minutes by this method,
the six together ≤ 5 hours. The start notebook (`00_`) is reported but is its own ~10 minutes.

    python tools/course_length.py          # the table, one row per master
"""

from __future__ import annotations

import io
import re
import sys
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jupytext

ROOT = Path(__file__).resolve().parents[1]
MASTERS = ROOT / "source" / "ch07"

WORDS_PER_MIN = 200
LINES_PER_MIN = 20
MIN_PER_TASK = 4
MIN_PER_LINE_WRITTEN = 1
LIMIT_PER_NOTEBOOK = 55  # minutes by this method
LIMIT_ALL = 300  # minutes by this method, the six exercises together

# The heading that opens a notebook's optional part: "Going further", or any that says "optional".
OPTIONAL_HEADING = re.compile(r"^#+ .*(going further|optional)", re.I | re.M)
_REGION = re.compile(
    r"^[ \t]*### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)^[ \t]*### END \1\n?", re.S | re.M
)
_WORD = re.compile(r"[\w'’-]+")


@dataclass(frozen=True)
class Length:
    """One master's core path, counted."""

    name: str
    words: int
    given_lines: int
    tasks: int
    points: int
    lines_to_write: int

    @property
    def minutes(self) -> float:
        return (
            self.words / WORDS_PER_MIN
            + self.given_lines / LINES_PER_MIN
            + self.tasks * MIN_PER_TASK
            + self.lines_to_write * MIN_PER_LINE_WRITTEN
        )


def _logical_lines(code: str) -> int:
    """Statements a student writes: logical lines (a call over three lines counts once)."""
    import textwrap

    code = textwrap.dedent(code)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code + "\n").readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return sum(1 for line in code.splitlines() if line.strip() and not _is_comment(line))
    return sum(1 for tok in tokens if tok.type == tokenize.NEWLINE)


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _comment_words(code: str) -> int:
    """Words in comments (full-line and trailing) and docstrings are prose too."""
    words = 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code + "\n").readline):
            if tok.type == tokenize.COMMENT:
                words += len(_WORD.findall(tok.string.lstrip("#")))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        words += sum(len(_WORD.findall(ln)) for ln in code.splitlines() if _is_comment(ln))
    return words


def _code_lines(code: str) -> int:
    """Physical lines of code: neither blank nor a comment."""
    return sum(1 for line in code.splitlines() if line.strip() and not _is_comment(line))


def core_end(cells: Sequence[Any]) -> int:
    """The index of the first cell that opens the optional part (a markdown cell with an
    `OPTIONAL_HEADING`), or `len(cells)`: the core path is `cells[:core_end(cells)]`. Takes the
    cells of a notebook as jupytext or nbformat reads it."""
    return next(
        (
            i
            for i, cell in enumerate(cells)
            if cell.cell_type == "markdown" and OPTIONAL_HEADING.search(cell.source)
        ),
        len(cells),
    )


def measure(master: Path) -> Length:
    """Count `master`'s core path (see the module docstring)."""
    words = given = tasks = points = written = 0
    cells = jupytext.read(master, fmt="py:percent").cells
    for cell in cells[: core_end(cells)]:
        if cell.cell_type == "markdown":
            words += len(_WORD.findall(cell.source))
            continue
        if cell.cell_type != "code":
            continue
        nbgrader = cell.metadata.get("nbgrader", {})
        if nbgrader.get("grade") and nbgrader.get("points"):
            tasks += 1
            points += int(nbgrader["points"])
        outside = _REGION.sub("", cell.source)
        for kind, body in _REGION.findall(cell.source):
            if kind == "SOLUTION":
                written += _logical_lines(body)
        given += _code_lines(outside)
        words += _comment_words(outside)
    return Length(master.stem, words, given, tasks, points, written)


def measure_all(masters_dir: Path = MASTERS) -> list[Length]:
    return [measure(p) for p in sorted(masters_dir.glob("[0-9][0-9]_*.py"))]


def exercises(lengths: list[Length]) -> list[Length]:
    """The six exercises (the start notebook `00_` is not in the chapter's budget)."""
    return [n for n in lengths if not n.name.startswith("00_")]


def report(lengths: list[Length]) -> str:
    header = (
        f"{'notebook':<18} {'words':>6} {'given':>6} {'tasks':>6} {'points':>6} "
        f"{'write':>6} {'minutes':>8}"
    )
    lines = [
        "Core path by the pessimistic method (words/200 + given lines/20 + 4/task + "
        "1/line written)",
        header,
    ]
    for n in lengths:
        flag = "  OVER" if not n.name.startswith("00_") and n.minutes > LIMIT_PER_NOTEBOOK else ""
        lines.append(
            f"{n.name:<18} {n.words:>6} {n.given_lines:>6} {n.tasks:>6} {n.points:>6} "
            f"{n.lines_to_write:>6} {n.minutes:>8.1f}{flag}"
        )
    total = sum(n.minutes for n in exercises(lengths))
    over = "  OVER" if total > LIMIT_ALL else ""
    lines.append(
        f"{'six exercises':<18} {'':>6} {'':>6} {'':>6} {'':>6} {'':>6} {total:>8.1f}"
        f"{over}  (limits: {LIMIT_PER_NOTEBOOK} min each, {LIMIT_ALL} min together)"
    )
    return "\n".join(lines)


def main() -> int:
    lengths = measure_all()
    print(report(lengths))
    ex = exercises(lengths)
    ok = (
        all(n.minutes <= LIMIT_PER_NOTEBOOK for n in ex) and sum(n.minutes for n in ex) <= LIMIT_ALL
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
