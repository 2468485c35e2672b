"""Every notebook runs to its end: Run All of the release stops once, at the first unfinished core
task's graded cell, without a flood of warnings before it; with only the going-further parts left
undone it reaches `check_all()` and the end of the notebook."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests._kit import MASTERS, ROOT, code_cells, graded_tasks, optional_start

STEMS = [p.stem for p in sorted(MASTERS.glob("0[1-9]_*.py"))]


def run_all(stem: str, blank: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "tests._kit", stem, "--run-all", blank, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.stdout.strip(), f"Run All of {stem} failed:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("stem", STEMS)
def test_release_stops_once_at_the_first_core_task(stem: str) -> None:
    cells = code_cells(stem)
    core = [g for _, _, g in graded_tasks(cells).values() if g.index < optional_start(stem)]
    first = min(core, key=lambda g: g.index)
    report = run_all(stem, "all")
    assert report["stopped_at"] == first.index, (
        f"{stem}: the release's Run All should stop at the first task's graded cell "
        f"({first.grade_id}, cell {first.index}); it stopped at cell {report['stopped_at']} "
        f"({report['stopped_cell'] or 'not graded'}): {report['error']}"
    )
    noise = [ln for ln in report["stderr_before_stop"].splitlines() if ln.strip()]
    assert len(noise) <= 3, f"{stem}: {len(noise)} lines on stderr before the stop:\n" + "\n".join(
        noise[:10]
    )


@pytest.mark.parametrize("stem", STEMS)
def test_optional_parts_undone_still_run_to_the_end(stem: str) -> None:
    report = run_all(stem, "optional")
    assert report["stopped_at"] is None, (
        f"{stem}: with only the going-further parts undone, Run All stopped at cell "
        f"{report['stopped_at']} ({report['stopped_cell'] or 'not graded'}): {report['error']}"
    )
