"""The instructor's round trip, end to end with the real nbgrader: generate, autograde, feedback.

Two fake students submit every exercise: `solved` hands in the masters (solutions included) and
`blank` hands in the release untouched. Every graded cell must give the first full points and the
second zero: a test cell that passes on a blank notebook is a free point, one that fails on the
solution is an unfair one. Scores are read from the gradebook, never from exit codes
(`nbgrader validate` exits 0 even when tests fail).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tools.build import master_notebooks
from tools.gradeday.nbgrader_cli import nbgrader

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "ch07"


def _graded(nb_path: Path) -> bool:
    cells = json.loads(nb_path.read_text())["cells"]
    return any(c["metadata"].get("nbgrader", {}).get("grade") for c in cells)


EXERCISES = [p.stem for p in master_notebooks() if _graded(p)]


def _nbgrader(course: Path, env: dict[str, str], *args: str, timeout: int = 1200) -> str:
    result = nbgrader(course, *args, env=env, timeout=timeout)
    assert result.returncode == 0, (
        f"nbgrader {args[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout + result.stderr


def _new_course(tmp: Path) -> Path:
    course = tmp / "course"
    shutil.copytree(
        ROOT / "source",
        course / "source",
        ignore=shutil.ignore_patterns("*.py", ".workbook_cache", ".ipynb_checkpoints"),
    )
    shutil.copy(ROOT / "nbgrader_config.py", course)
    return course


def _submit(course: Path, student: str, notebooks: list[Path]) -> None:
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    for nb in notebooks:
        shutil.copy(nb, folder / nb.name)


def _scores(course: Path, student: str) -> dict[str, dict[str, tuple[float, float]]]:
    """notebook -> graded cell -> (auto score, max score), from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission(ASSIGNMENT, student)
        return {
            nb.name: {g.name: (g.auto_score, g.max_score) for g in nb.grades if g.max_score}
            for nb in submission.notebooks
        }


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory: pytest.TempPathFactory, venv_env: dict[str, str]) -> Path:
    course = _new_course(tmp_path_factory.mktemp("grading"))
    _nbgrader(course, venv_env, "generate_assignment", ASSIGNMENT, "--force")
    released = course / "release" / ASSIGNMENT
    _submit(
        course, "solved", [course / "source" / ASSIGNMENT / f"{name}.ipynb" for name in EXERCISES]
    )
    _submit(course, "blank", [released / f"{name}.ipynb" for name in EXERCISES])
    _nbgrader(course, venv_env, "autograde", ASSIGNMENT, "--force")
    _nbgrader(course, venv_env, "generate_feedback", ASSIGNMENT, "--force")
    return course


def test_the_release_we_ship_is_what_nbgrader_generates(graded_course: Path) -> None:
    for name in EXERCISES:
        fresh = (graded_course / "release" / ASSIGNMENT / f"{name}.ipynb").read_text()
        assert fresh == (ROOT / "release" / ASSIGNMENT / f"{name}.ipynb").read_text(), (
            f"{name}: run `make build`"
        )


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_solved_master_scores_full_marks_on_every_graded_cell(
    graded_course: Path, exercise: str
) -> None:
    cells = _scores(graded_course, "solved")[exercise]
    assert cells, f"{exercise} has no graded cells"
    lost = {cell: score for cell, score in cells.items() if score[0] != score[1]}
    assert not lost, f"{exercise}: the solution loses points in {lost}"


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_blank_release_scores_zero_on_every_graded_cell(
    graded_course: Path, exercise: str
) -> None:
    free = {
        cell: score
        for cell, score in _scores(graded_course, "blank")[exercise].items()
        if score[0] != 0
    }
    assert not free, f"{exercise}: free points for a blank notebook in {free}"


def test_feedback_html_shows_each_students_score(graded_course: Path) -> None:
    for student in ("solved", "blank"):
        pages = list((graded_course / "feedback" / student / ASSIGNMENT).glob("*.html"))
        assert {p.stem for p in pages} == set(EXERCISES)
        assert all("Score:" in p.read_text() for p in pages)


def test_a_hanging_submission_is_stopped_and_scored_instead_of_stalling(
    tmp_path: Path, venv_env: dict[str, str]
) -> None:
    exercise = EXERCISES[0]
    course = _new_course(tmp_path)
    _nbgrader(course, venv_env, "generate_assignment", ASSIGNMENT, "--force")
    notebook = json.loads((course / "release" / ASSIGNMENT / f"{exercise}.ipynb").read_text())
    answer = next(c for c in notebook["cells"] if c["metadata"].get("nbgrader", {}).get("solution"))
    answer["source"] = "import time\nwhile True:\n    time.sleep(1)\n"
    hanging = tmp_path / f"{exercise}.ipynb"
    hanging.write_text(json.dumps(notebook))
    _submit(course, "stuck", [hanging])
    # The subprocess bound (600 s) is the "never stalls" part; the cell timeout is 5 s.
    log = _nbgrader(
        course, venv_env, "autograde", ASSIGNMENT, "--force", "--Execute.timeout=5", timeout=600
    )
    assert "Timeout" in log or "timed out" in log.lower() or "CellTimeoutError" in log, log[-2000:]
    scores = _scores(course, "stuck")[exercise]
    assert scores and all(score[0] == 0 for score in scores.values())
