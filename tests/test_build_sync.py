"""Generated files match their masters, and the build refuses malformed masters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tools import build


def test_every_generated_file_is_up_to_date(root: Path, venv_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "tools/build.py", "--check"],
        cwd=root,
        env=venv_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"stale or orphaned files — run `make build`:\n{result.stdout}{result.stderr}"
    )


def test_each_exercise_master_has_its_answer_key_and_student_copy(root: Path) -> None:
    for master in build.masters():
        assert (root / "notebooks" / f"{master.stem}.ipynb").exists()
        assert (root / "release" / "ch07" / f"{master.stem}.ipynb").exists()
        key = build.solution_script_name(master.stem)
        if key:
            assert (root / "solutions" / key).exists()


def test_answer_key_names_follow_the_seed() -> None:
    assert build.solution_script_name("01_caching") == "exercise1_caching.py"
    assert build.solution_script_name("00_start_here") is None


def _master(tmp_path: Path, header: str) -> Path:
    path = tmp_path / "01_demo.py"
    path.write_text(f"# %% {header}\nx = 1\n")
    return path


def test_short_nbgrader_metadata_is_expanded_and_tests_are_locked(tmp_path: Path) -> None:
    nb = build.master_notebook(
        _master(tmp_path, 'nbgrader={"grade": true, "grade_id": "t1", "points": 2}'), None
    )
    meta = nb.cells[0].metadata["nbgrader"]
    assert meta == {
        "grade": True,
        "grade_id": "t1",
        "locked": True,
        "points": 2,
        "schema_version": 3,
        "solution": False,
        "task": False,
    }
    assert nb.cells[0].id == "t1"


@pytest.mark.parametrize(
    "header, problem",
    [
        ('nbgrader={"solution": true}', "grade_id"),
        ('nbgrader={"grade": true, "grade_id": "t"}', "points"),
    ],
)
def test_malformed_nbgrader_metadata_is_refused(tmp_path: Path, header: str, problem: str) -> None:
    with pytest.raises(SystemExit, match=problem):
        build.master_notebook(_master(tmp_path, header), None)


def test_outputs_are_carried_over_only_to_unchanged_cells(tmp_path: Path) -> None:
    previous = build.master_notebook(_master(tmp_path, ""), None)
    previous.cells[0].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    assert build.master_notebook(_master(tmp_path, ""), previous).cells[0].outputs
    (tmp_path / "01_demo.py").write_text("# %%\nx = 2\n")
    assert not build.master_notebook(tmp_path / "01_demo.py", previous).cells[0].outputs


def test_top_level_await_is_wrapped_so_the_key_runs_as_a_script() -> None:
    script = build._wrap_top_level_await(
        "import asyncio\nx = await asyncio.sleep(0, 5)\nprint(x)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "5", result.stderr
