"""The master's real answers, for tests and benchmarks: no hand-written copies that drift.

    from tools.answer_key import load_solutions  # the root on sys.path: pytest, PYTHONPATH=.

    key = load_solutions("02_async", "run_bounded", "token_bucket")
    await key.run_bounded(program, questions, 4)

`load_solutions` reads the master `source/ch07/<stem>.py` with jupytext and executes, in one fresh
namespace and in this order:

1. every top-level `import` statement of every code cell, in notebook order. That is the whole of
   an import-only cell; from a mixed cell only its imports (from the first cell,
   `import dspy_workbook as wb` but not `lm = wb.setup()`);
2. in notebook order, the solution cells (nbgrader `solution: true`) whose `grade_id` is asked
   for, and the top-level `def`/`class` statements named in `definitions=` (helpers a solution or
   a test needs that the notebook defines in a plain cell, e.g. `DraftAndReview`) — only the
   statement itself, not the demo code around it in its cell.

Nothing else runs: no demo cell, no `wb.setup()`, no LM call, no file written. An unknown grade id
or definition is a `LookupError` naming it and the ones that exist. With `blank=True` each
`### BEGIN SOLUTION … ### END SOLUTION` region becomes the stub nbgrader's release has
(`raise NotImplementedError()`): the student's starting point.
"""

from __future__ import annotations

import ast
import linecache
import re
import subprocess
import types
from collections.abc import Iterable
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]
# The runnable answer keys `build.py` writes, one per exercise.
ANSWER_KEYS = sorted((ROOT / "solutions").glob("exercise*.py"))


def run_answer_key(python: str, script: Path, env: dict[str, str], cwd: Path) -> str | None:
    """Run one answer key as a plain script (10 min at most): None when it ran to the end, else
    the end of what it printed."""
    result = subprocess.run(
        [python, str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    if result.returncode == 0:
        return None
    output = f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return f"{script.name} exited {result.returncode}:\n{output}"


MASTERS = ROOT / "source" / "ch07"
_SOLUTION_REGION = re.compile(
    r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION\n?", re.S | re.M
)
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def blank_solutions(source: str) -> str:
    """What nbgrader's ClearSolutions leaves: each solution region becomes a stub that raises."""
    return _SOLUTION_REGION.sub(
        lambda m: f"{m.group(1)}# YOUR CODE HERE\n{m.group(1)}raise NotImplementedError()\n", source
    )


def _code_cells(master: Path) -> list:
    if not master.is_file():
        raise FileNotFoundError(f"no master notebook at {master}")
    return [c for c in jupytext.read(master, fmt="py:percent").cells if c.cell_type == "code"]


def _parse(source: str, where: str) -> ast.Module:
    try:
        return ast.parse(source, filename=where)
    except SyntaxError as exc:
        raise SyntaxError(f"{where}: {exc.msg} (line {exc.lineno})") from exc


def _execute(nodes: list[ast.stmt], where: str, source: str, namespace: dict) -> None:
    """Run `nodes` (parsed from `source`) under the name `where` (tracebacks, inspect read it)."""
    linecache.cache[where] = (len(source), None, source.splitlines(keepends=True), where)
    exec(compile(ast.Module(body=nodes, type_ignores=[]), where, "exec"), namespace)


def _unknown(kind: str, missing: Iterable[str], known: Iterable[str], master: Path) -> LookupError:
    names = sorted(set(known))
    return LookupError(
        f"{master.name} has no {kind} {', '.join(map(repr, missing))}; "
        f"it has: {', '.join(names) if names else '(none)'}"
    )


def load_solutions(
    master_stem: str,
    *grade_ids: str,
    definitions: Iterable[str] = (),
    blank: bool = False,
    masters_dir: Path = MASTERS,
) -> types.SimpleNamespace:
    """The imports, solution cells `grade_ids` and plain-cell `definitions` of a master, executed.

    `master_stem` names `masters_dir/<master_stem>.py` (e.g. "01_caching"); see the module docstring
    for exactly what runs. Attributes of the result are the names those cells define and import.
    """
    master = Path(masters_dir) / f"{master_stem}.py"
    cells = _code_cells(master)
    wanted_ids, wanted_defs = list(dict.fromkeys(grade_ids)), list(dict.fromkeys(definitions))
    solutions = {
        c.metadata["nbgrader"]["grade_id"]: c
        for c in cells
        if c.metadata.get("nbgrader", {}).get("solution") and "grade_id" in c.metadata["nbgrader"]
    }
    if missing := [g for g in wanted_ids if g not in solutions]:
        raise _unknown("solution cell with grade_id", missing, solutions, master)

    namespace: dict = {"__name__": f"answer_key.{master_stem}"}
    imports: list[ast.stmt] = []
    later: list[tuple[list[ast.stmt], str, str]] = []  # (statements, name for tracebacks, source)
    defined: dict[str, str] = {}  # definitions in plain code cells: name -> cell label
    for index, cell in enumerate(cells):
        nbgrader = cell.metadata.get("nbgrader", {})
        grade_id = nbgrader.get("grade_id")
        label = f"<{master.name} code cell {index}{f': {grade_id}' if grade_id else ''}>"
        tree = _parse(cell.source, label)
        imports += [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        if nbgrader.get("solution") and grade_id in wanted_ids:
            source = blank_solutions(cell.source) if blank else cell.source
            later.append((_parse(source, label).body, label, source))
        elif not nbgrader:
            named = [node for node in tree.body if isinstance(node, _DEFINITIONS)]
            defined.update((node.name, label) for node in named)
            if chosen := [node for node in named if node.name in wanted_defs]:
                later.append((chosen, label, cell.source))
    if missing := [d for d in wanted_defs if d not in defined]:
        raise _unknown(
            "top-level def or class in a plain code cell named", missing, defined, master
        )

    source_of_imports = "\n".join(ast.unparse(node) for node in imports) + "\n"
    _execute(
        _parse(source_of_imports, f"<{master.name} imports>").body,
        f"<{master.name} imports>",
        source_of_imports,
        namespace,
    )
    for nodes, label, source in later:
        _execute(nodes, label, source, namespace)
    namespace.pop("__builtins__", None)
    return types.SimpleNamespace(**namespace)
