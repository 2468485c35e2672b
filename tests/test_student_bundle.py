"""The student bundle (`make bundle`): installs on its own and carries no answers.

The bundle is unpacked into an empty folder, set up with its own Makefile (a fresh virtualenv from
the pinned requirements) and made to run the start notebook. Separately, every solution block and
hidden test of every master is looked for in every file of the bundle.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from build import masters

pytestmark = pytest.mark.slow

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import bundle  # noqa: E402

BLOCK = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)
MIN_DISTINCTIVE = 25  # shorter lines (`return result`) are too common to mean anything
MIN_LINES, SHARE = 3, 0.6  # a block counts as leaked when a file holds 60 % of its lines (≥ 3)


STRING = re.compile(r"""[rbfuRBFU]{0,2}("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')""")


def _code(text: str) -> str:
    """Python text with string literals emptied: a hint that *quotes* an answer in prose is a
    hint (levels end close to the answer, as learntools' do); the same line as code is a copy."""
    return "\n".join(STRING.sub('""', line) for line in text.splitlines())


def _secret_blocks() -> list[tuple[str, list[str]]]:
    """(where, distinctive lines) of every solution block and hidden test of every master.

    A single shared line is no leak (a self-check and a solution may both `await asyncio.gather`);
    most of a block's lines in one file is a copy of the answer.
    """
    blocks = []
    for master in masters():
        for index, (kind, body) in enumerate(BLOCK.findall(master.read_text())):
            lines = [line.strip() for line in _code(body).splitlines()]
            lines = [x for x in lines if len(x) >= MIN_DISTINCTIVE and not x.startswith("#")]
            if len(lines) >= MIN_LINES:
                blocks.append((f"{master.name} {kind.lower()} block {index}", lines))
    return blocks


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("student")
    archive = bundle.build(folder / "bundle.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "unpacked", filter="data")
    return folder / "unpacked" / bundle.TOP


def test_the_bundle_holds_what_a_student_needs_and_no_instructor_files(unpacked: Path) -> None:
    names = {p.relative_to(unpacked).as_posix() for p in unpacked.rglob("*") if p.is_file()}
    assert {"README.md", "Makefile", "requirements.txt", "notebooks/00_start_here.ipynb"} <= names
    assert any(n.startswith("dspy_workbook/") for n in names)
    forbidden = [
        n
        for n in names
        if n.split("/")[0] in {"source", "solutions", "tests", "tools", "release", "bench", ".ci"}
        or n.endswith("nbgrader_config.py")
        or n.endswith("gradebook.db")
    ]
    assert not forbidden, forbidden


def _leaks(files: list[Path], base: Path) -> list[str]:
    blocks = _secret_blocks()
    assert len(blocks) > 15, "the masters' solution blocks were not found: is BLOCK still right?"
    leaks = []
    for path in files:
        text = path.read_text(errors="replace")
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS"):
            if marker in text:
                leaks.append(f"{path.relative_to(base)}: {marker}")
        if path.suffix == ".py":
            text = _code(text)
        for origin, lines in blocks:
            found = [line for line in lines if line in text]
            if len(found) >= MIN_LINES and len(found) >= SHARE * len(lines):
                leaks.append(
                    f"{path.relative_to(base)} holds {len(found)}/{len(lines)} lines "
                    f"of {origin}, e.g. {found[0][:60]!r}"
                )
    return leaks


def test_no_solution_or_hidden_test_is_in_the_bundle(unpacked: Path) -> None:
    leaks = _leaks(sorted(p for p in unpacked.rglob("*") if p.is_file()), unpacked)
    assert not leaks, "\n".join(leaks)


def test_the_leak_search_finds_a_copied_answer_key(root: Path) -> None:
    """The search itself works: every answer key (all solutions, no markers) is caught."""
    keys = sorted((root / "solutions").glob("exercise*.py"))
    flagged = {line.split(" holds ")[0] for line in _leaks(keys, root)}
    assert flagged == {str(key.relative_to(root)) for key in keys}


def test_the_bundle_installs_and_runs_the_start_notebook(unpacked: Path) -> None:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(Path.home()),
        "PYTHON": _base_python(),
    }
    setup = subprocess.run(
        ["make", "setup"], cwd=unpacked, env=env, capture_output=True, text=True, timeout=900
    )
    assert setup.returncode == 0, setup.stdout[-2000:] + setup.stderr[-3000:]
    run = subprocess.run(
        [
            str(unpacked / ".venv/bin/jupyter"),
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--output",
            "executed.ipynb",
            "notebooks/00_start_here.ipynb",
        ],
        cwd=unpacked,
        env={**env, "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    executed = (unpacked / "notebooks" / "executed.ipynb").read_text()
    assert '"output_type": "error"' not in executed
    assert "Course LM: local" in executed


def _base_python() -> str:
    """The interpreter this test's virtualenv was made from (the bundle makes its own venv)."""
    return str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}")
