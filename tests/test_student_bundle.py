"""The student bundle (`make bundle`): installs on its own and carries no answers.

The bundle is unpacked into an empty folder, set up with its own Makefile (a fresh virtualenv from
the pinned requirements) and made to run the start notebook. Separately, every solution block and
hidden test of every master is looked for in every file of the bundle.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tools import bundle, leak_search
from tools.build import masters

pytestmark = pytest.mark.slow


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


def test_no_solution_or_hidden_test_is_in_the_bundle(unpacked: Path) -> None:
    blocks = leak_search.secret_blocks()
    assert len(blocks) > 15, "the masters' solution blocks were not found: is BLOCK still right?"
    found = leak_search.leaks(sorted(p for p in unpacked.rglob("*") if p.is_file()), unpacked)
    assert not found, "\n".join(found)


def test_the_leak_search_finds_a_copied_answer_key(root: Path) -> None:
    """The search itself works: every answer key (all solutions, no markers) is caught."""
    keys = sorted((root / "solutions").glob("exercise*.py"))
    flagged = {line.split(" holds ")[0] for line in leak_search.leaks(keys, root)}
    assert flagged == {str(key.relative_to(root)) for key in keys}


def _renamed(code: str) -> str:
    """`code` with every variable name changed (x0, x1, …) and its literals replaced."""
    import io
    import keyword
    import textwrap
    import tokenize

    names: dict[str, str] = {}
    out, previous = [], ""
    for tok in tokenize.generate_tokens(io.StringIO(textwrap.dedent(code)).readline):
        text = tok.string
        if tok.type == tokenize.NAME and not keyword.iskeyword(text) and previous != ".":
            text = names.setdefault(text, f"x{len(names)}")
        elif tok.type == tokenize.NUMBER:
            text = "7"
        out.append((tok.type, text))
        if tok.type not in (tokenize.NL, tokenize.COMMENT):
            previous = tok.string
    return tokenize.untokenize(out)


def test_the_leak_search_finds_a_short_renamed_answer(tmp_path: Path) -> None:
    """Planted in an ordinary module, each master's shortest graded answer — renamed, its numbers
    changed, wrapped in other code — is still found; the module without it is clean."""
    import textwrap

    blocks = leak_search.BLOCK.findall
    planted = 0
    for master in masters():
        bodies = [b for kind, b in blocks(master.read_text()) if kind == "SOLUTION"]
        bodies = [b for b in bodies if len(leak_search.normalise(b)) >= leak_search.MIN_TOKENS]
        if not bodies:
            continue
        shortest = min(bodies, key=lambda b: len(leak_search.normalise(b)))
        clean = tmp_path / f"clean_{master.stem}.py"
        clean.write_text(
            '"""Helpers."""\n\nimport json\n\n\ndef helper(value):\n    return value\n'
        )
        module = tmp_path / f"planted_{master.stem}.py"
        body = textwrap.indent(_renamed(shortest), "    ")
        module.write_text(clean.read_text() + f"\n\ndef planted(a, b, c):\n{body}\n")
        found = leak_search.leaks([module, clean], tmp_path)
        assert any(line.startswith(module.name) for line in found), (master.name, body)
        assert not any(line.startswith(clean.name) for line in found), found
        planted += 1
    assert planted >= 6, planted


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
