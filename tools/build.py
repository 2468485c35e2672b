"""Regenerate everything derived from the masters, or verify (`--check`) that it is up to date.

The only hand-edited notebooks are the percent-format masters `source/ch07/NN_name.py`
(readable diffs, linted like code). From each one this builds, in order:

1. `source/ch07/NN_name.ipynb` — the nbgrader master (full nbgrader cell metadata filled in,
   deterministic cell ids, outputs carried over from the last `--execute` so nbval can compare);
2. `release/ch07/NN_name.ipynb` — the student version, by `nbgrader generate_assignment`;
3. `notebooks/NN_name.ipynb` — what a student opens: a byte copy of the release;
4. `solutions/exerciseN_name.py` — the answer key as a script that runs on its own.

`--check` builds into a temporary folder and compares byte for byte, naming every stale or
orphaned file (a generated file whose master is gone), and exits 1 if there is any.
`--execute` runs each master notebook in a fresh kernel and stores its outputs (nbval's reference).
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import sys
import tempfile
from pathlib import Path

import jupytext
import nbformat

if not __package__:  # run as `python tools/build.py`: the root, for `tools.…` imports
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from dspy_workbook.env import CACHE_DIR
from tools.gradeday.nbgrader_cli import nbgrader, venv_env

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "ch07"
SOURCE = ROOT / "source" / ASSIGNMENT
NBGRADER_DEFAULTS = {
    "grade": False,
    "locked": False,
    "schema_version": 3,
    "solution": False,
    "task": False,
}
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
SOLUTION_MARKERS = (
    "### BEGIN SOLUTION",
    "### END SOLUTION",
    "### BEGIN HIDDEN TESTS",
    "### END HIDDEN TESTS",
)


def masters() -> list[Path]:
    """The hand-edited percent-format masters, in course order."""
    return sorted(SOURCE.glob("[0-9][0-9]_*.py"))


def master_notebooks() -> list[Path]:
    """The nbgrader master notebooks generated from `masters()`, in the same order."""
    return [py_path.with_suffix(".ipynb") for py_path in masters()]


def solution_script_name(stem: str) -> str | None:
    """`01_caching` -> `exercise1_caching.py`; the start notebook (00) has no answer key."""
    number, _, name = stem.partition("_")
    return None if int(number) == 0 else f"exercise{int(number)}_{name}.py"


def _nbgrader_metadata(meta: dict, where: str) -> dict:
    full = {**NBGRADER_DEFAULTS, **meta}
    if "grade_id" not in full:
        raise SystemExit(f"{where}: an nbgrader cell needs a grade_id")
    if full["grade"] and "points" not in full:
        raise SystemExit(f"{where}: a graded cell needs points")
    if full["grade"] and not full["solution"]:
        full["locked"] = True  # autograder tests are always read-only for students
    return dict(sorted(full.items()))


def _code_identity(source: str) -> str:
    """What a code cell does, ignoring layout and comments (so reformatting keeps its outputs)."""
    try:
        return ast.dump(ast.parse(source))
    except SyntaxError:
        return source


def master_notebook(py_path: Path, previous: nbformat.NotebookNode | None) -> nbformat.NotebookNode:
    """The nbgrader master notebook for one percent-format master, keeping matching old outputs."""
    nb = jupytext.read(py_path, fmt="py:percent")
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    old_outputs: dict[str, list] = {}
    for cell in previous.cells if previous else []:
        if cell.cell_type == "code":
            old_outputs.setdefault(_code_identity(cell.source), []).append(cell)
    for index, cell in enumerate(nb.cells):
        meta = dict(cell.metadata)
        nbgrader = meta.pop("nbgrader", None)
        cell.metadata = {}
        if meta.get("tags"):
            cell.metadata["tags"] = list(meta["tags"])
        if nbgrader is not None:
            cell.metadata["nbgrader"] = _nbgrader_metadata(nbgrader, f"{py_path.name} cell {index}")
        cell.id = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell-{index:02d}"
        if cell.cell_type == "code":
            match = old_outputs.get(_code_identity(cell.source))
            old = match.pop(0) if match else None
            cell.outputs = old.outputs if old else []
            cell.execution_count = old.execution_count if old else None
    return nb


def _dump(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb, version=4) + "\n"


def solution_script(py_path: Path, notebook_name: str) -> str:
    """The answer key as a plain script: code cells in order, nbgrader markers removed."""
    nb = jupytext.read(py_path, fmt="py:percent")
    header = (
        f'"""Answer key for {notebook_name} — generated from source/{ASSIGNMENT}/{py_path.name}'
        " by tools/build.py; do not edit.\n\nRun: python solutions/"
        f'{solution_script_name(py_path.stem)}  (backend: $WORKBOOK_LM, default local)\n"""\n\n'
    )
    parts = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            parts.extend(f"# {line}\n" for line in cell.source.splitlines() if line.startswith("#"))
        elif cell.cell_type == "code" and "no-script" not in cell.metadata.get("tags", []):
            lines = [
                line for line in cell.source.splitlines() if line.strip() not in SOLUTION_MARKERS
            ]
            parts.append("\n".join(lines) + "\n\n")
    return header + _wrap_top_level_await("".join(parts))


def _wrap_top_level_await(body: str) -> str:
    """Scripts cannot `await` at top level (notebooks can): run such a key inside `asyncio.run`."""
    try:
        compile(
            body, "<answer key>", "exec"
        )  # ast.parse accepts a top-level await; compile does not
        return body
    except SyntaxError:
        indented = "".join(
            f"    {line}" if line.strip() else line for line in body.splitlines(keepends=True)
        )
        return (
            f"import asyncio\n\n\nasync def _main() -> None:\n{indented}\n\nasyncio.run(_main())\n"
        )


def _release(masters_dir: Path, work: Path) -> dict[str, str]:
    """Run `nbgrader generate_assignment` on copies of the master notebooks; return name -> text."""
    course = work / "course"
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    for nb_path in sorted(masters_dir.glob("*.ipynb")):
        shutil.copy(nb_path, course / "source" / ASSIGNMENT / nb_path.name)
    result = nbgrader(
        course, "generate_assignment", ASSIGNMENT, "--force", "--log-level=WARN", timeout=600
    )
    if result.returncode != 0:
        raise SystemExit(f"nbgrader generate_assignment failed:\n{result.stdout}\n{result.stderr}")
    released = course / "release" / ASSIGNMENT
    return {p.name: p.read_text() for p in sorted(released.glob("*.ipynb"))}


def _chosen(py_path: Path, only: list[str]) -> bool:
    return not only or any(py_path.stem.startswith(prefix) for prefix in only)


def build_all(work: Path, only: list[str] | None = None) -> dict[Path, str]:
    """Every derived file (path relative to the repo root -> its text), built under `work`.

    `only` (master name prefixes such as `04`) limits the build to those masters, so one author's
    unfinished master never blocks another's build.
    """
    outputs: dict[Path, str] = {}
    staged = work / "masters"
    staged.mkdir()
    for py_path in [p for p in masters() if _chosen(p, only or [])]:
        ipynb = py_path.with_suffix(".ipynb")
        previous = nbformat.read(ipynb, as_version=4) if ipynb.exists() else None
        text = _dump(master_notebook(py_path, previous))
        outputs[ipynb.relative_to(ROOT)] = text
        (staged / ipynb.name).write_text(text)
        script = solution_script_name(py_path.stem)
        if script:
            outputs[Path("solutions") / script] = solution_script(py_path, ipynb.name)
    for name, text in _release(staged, work).items():
        outputs[Path("release") / ASSIGNMENT / name] = text
        outputs[Path("notebooks") / name] = text
    return outputs


def derived_files_on_disk() -> set[Path]:
    """What the repo holds in the generated places now (to find orphans)."""
    found = {p for p in SOURCE.glob("*.ipynb")}
    found |= set((ROOT / "release" / ASSIGNMENT).glob("*.ipynb"))
    found |= set((ROOT / "notebooks").glob("*.ipynb"))
    found |= set((ROOT / "solutions").glob("exercise*.py"))
    return {p.relative_to(ROOT) for p in found}


def execute_masters(timeout: int, only: list[str]) -> None:
    """Run master notebooks (all, or those whose stem starts with one of `only`); store outputs."""
    from nbclient import NotebookClient

    # Caches and logs of the run go to a temporary folder, never into source/ (nbgrader ships it).
    scratch = tempfile.mkdtemp(prefix="workbook-execute-")
    os.environ.setdefault(CACHE_DIR, scratch)
    for py_path in [p for p in masters() if _chosen(p, only)]:
        ipynb = py_path.with_suffix(".ipynb")
        nb = nbformat.read(ipynb, as_version=4)
        print(f"executing {ipynb.relative_to(ROOT)} …", flush=True)
        os.environ.update(venv_env({"PYTHONPATH": str(ROOT)}))
        NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            record_timing=False,
            resources={"metadata": {"path": str(ipynb.parent)}},
        ).execute()
        # Re-derive from the text master so only the outputs are new (no run metadata).
        ipynb.write_text(_dump(master_notebook(py_path, nb)))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check", action="store_true", help="verify only; exit 1 if anything is stale"
    )
    parser.add_argument(
        "--execute", action="store_true", help="re-run the masters to refresh outputs"
    )
    parser.add_argument(
        "--only", nargs="*", default=[], help="build (and execute) only these masters, e.g. 04"
    )
    parser.add_argument(
        "--timeout", type=int, default=600, help="per-cell timeout for --execute (s)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="workbook-build-") as tmp:
        outputs = build_all(Path(tmp), args.only)
    stale = sorted(
        p
        for p, text in outputs.items()
        if not (ROOT / p).exists() or (ROOT / p).read_text() != text
    )
    orphans = [] if args.only else sorted(derived_files_on_disk() - set(outputs))
    if args.check:
        for path in stale:
            print(f"{path} is not up to date with its master (run `make build`)")
        for path in orphans:
            print(f"{path} has no master any more (run `make build`)")
        return 1 if stale or orphans else 0
    for path in orphans:
        (ROOT / path).unlink()
        print(f"removed orphan {path}")
    for path in stale:
        (ROOT / path).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / path).write_text(outputs[path])
        print(f"wrote {path}")
    if args.execute:
        # Outputs live only in the masters (nbgrader clears them in the release), so nothing
        # else needs rebuilding afterwards.
        execute_masters(args.timeout, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
