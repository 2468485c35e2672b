"""Exercise 5's service with the master's own answers — instructor side, never in the bundle.

The support package students receive (`dspy_workbook/`) holds no answer to a graded task: its
`create_app` takes the three parts a student writes (`ServiceParts`: request model, API-key check,
rate limiter) and has no default for them. Tests, benchmarks, the container image and the Lambda
handler get the reference parts from here, built from the master's solution cells — there is no
second copy to drift:

    from tools.reference_service import parts              # in tests and benchmarks
    create_app(settings, parts=parts())

    WORKBOOK_SERVICE_PARTS=/path/to/tools/reference_service.py:parts \\
        uvicorn --factory dspy_workbook.serving.app:app_from_env   # another process, a worker

    python tools/reference_service.py > service_parts.py  # a plain module (the container image)

`module_source()` is that plain module's text: the import statements of the master that the three
solution cells use, the cells themselves, and a `parts()` that assembles them.
"""

from __future__ import annotations

import ast
import functools
import sys
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MASTER = ROOT / "source" / "ch07" / "05_deployment.py"
# grade id of the solution cell -> the name it defines -> the `ServiceParts` field it fills
PARTS = {
    "request_model": ("question_model", "request_model"),
    "api_key": ("check_api_key", "check_api_key"),
    "rate_limit": ("KeyedTokenBucket", "limiter"),
}
MODULE_NAME = "reference_service_parts"


def _bound_names(node: ast.Import | ast.ImportFrom) -> set[str]:
    return {(alias.asname or alias.name).split(".")[0] for alias in node.names}


def module_source(master: Path = MASTER) -> str:
    """The reference parts as the text of a plain module (see the module docstring)."""
    import jupytext

    cells = [c for c in jupytext.read(master, fmt="py:percent").cells if c.cell_type == "code"]
    solutions: dict[str, str] = {}
    imports: list[ast.Import | ast.ImportFrom] = []
    for cell in cells:
        nbgrader = cell.metadata.get("nbgrader", {})
        if nbgrader.get("solution") and nbgrader.get("grade_id") in PARTS:
            solutions[nbgrader["grade_id"]] = cell.source
        elif not nbgrader.get("grade"):  # the hidden tests' imports are not the answer's
            tree = ast.parse(cell.source)
            imports += [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    if missing := sorted(set(PARTS) - set(solutions)):
        raise LookupError(f"{master.name} has no solution cell {', '.join(missing)}")
    used = {
        node.id
        for source in solutions.values()
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Name)
    }
    needed: list[str] = []
    for node in imports:
        if _bound_names(node) & used and (line := ast.unparse(node)) not in needed:
            needed.append(line)
    fields = ", ".join(f"{field}={name}" for name, field in PARTS.values())
    return "\n".join(
        [
            f'"""The reference parts of the Exercise 5 service, from {master.name} (generated)."""',
            "",
            *needed,
            "from dspy_workbook.serving import ServiceParts as _ServiceParts",
            "",
            *(solutions[grade_id].rstrip() + "\n\n" for grade_id in PARTS),
            "def parts() -> _ServiceParts:",
            '    """The three reference parts, ready for `create_app(settings, parts=parts())`."""',
            f"    return _ServiceParts({fields})",
            "",
        ]
    )


@functools.cache
def reference_module() -> types.ModuleType:
    """`module_source()` executed as the module `reference_service_parts` (once per process)."""
    module = types.ModuleType(MODULE_NAME)
    module.__file__ = f"<{MASTER.name} reference parts>"
    sys.modules[MODULE_NAME] = module  # dataclasses and pickling look their module up by name
    exec(compile(module_source(), module.__file__, "exec"), module.__dict__)
    return module


def parts() -> Any:
    """The reference `ServiceParts` (what `WORKBOOK_SERVICE_PARTS=…/reference_service.py:parts`
    names for a process started from the command line)."""
    return reference_module().parts()


def solution(name: str) -> Any:
    """One reference part by the name the master gives it, e.g. `solution("KeyedTokenBucket")`."""
    return getattr(reference_module(), name)


# What `WORKBOOK_SERVICE_PARTS` should say to get these parts in another process.
ENV_VALUE = f"{Path(__file__).resolve()}:parts"


if __name__ == "__main__":
    sys.stdout.write(module_source())
