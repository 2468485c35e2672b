"""The course JupyterHub (hub/) on loopback: a whole nbgrader round through the real exchange.

One instructor and three students log in with their passwords and get a server each from the
hub, all reached through configurable-http-proxy with each user's own token. The instructor uses
Formgrader's buttons (its REST API, on their server): generate and release the real Exercise 1,
later collect, autograde, generate and release feedback. The students use the Assignments tab's
calls (nbgrader's assignment_list handlers, on their own servers): fetch, save their work through
the contents API (one solved, one blank, one partial), submit, fetch feedback. Scores are read
from the gradebook in the instructor's course folder. Validate, pressed on a student's server,
brings the grader's verdict while that server keeps answering.

The hub runs in trial mode (hub/jupyterhub_config.py): shared passwords, and every server runs as
this test's Unix user (SimpleLocalProcessSpawner). Production mode gives each user their own Unix
account (PAM, LocalProcessSpawner), which needs the workbook's Python readable by those accounts;
where the interpreter lives in root's home (a pyenv under /root) it is not. The nbgrader
side is the same in both modes except the name a submission carries (see
hub/jupyter/student/nbgrader_config.py), which this test checks.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import _hub
import pytest
from _hub import running_hub
from _hub import start_servers as _start_servers
from _lab_server import polling_status

from dspy_workbook.grading.validate_extension import VALIDATE_SECONDS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
COURSE_ID = "dspy-ch07"
ASSIGNMENT = "ch07"
EXERCISE = "01_caching"  # a real exercise, graded with the repository's nbgrader_config.py
INSTRUCTOR = "grace"
STUDENTS = {"ada": "solved", "bo": "blank", "cy": "partial"}
GRADING_SECONDS = 300


class Hub(_hub.Hub):
    @property
    def course(self) -> Path:
        return self.state / "home" / INSTRUCTOR / COURSE_ID


def _course(home: Path) -> None:
    """The instructor's course folder: one master and the repository's grading configuration."""
    course = home / COURSE_ID
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    master = ROOT / "source" / ASSIGNMENT / f"{EXERCISE}.ipynb"
    (course / "source" / ASSIGNMENT / master.name).write_text(master.read_text())
    (course / "nbgrader_config.py").write_text((ROOT / "nbgrader_config.py").read_text())


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, venv_env: dict[str, str], hub_proxy_binary: Path
) -> Iterator[Hub]:
    state = tmp_path_factory.mktemp("hub")
    _course(state / "home" / INSTRUCTOR)
    with running_hub(
        state, venv_env, instructors=[INSTRUCTOR], students=list(STUDENTS), hub_class=Hub
    ) as hub:
        yield hub


def _formgrader(hub: Hub, action: str) -> dict:
    """A Formgrader button on the instructor's server (`assignment/ch07/...` etc.)."""
    response = hub.call(
        INSTRUCTOR,
        "POST",
        f"/user/{INSTRUCTOR}/formgrader/api/{action}",
        timeout=GRADING_SECONDS,
    )
    assert response.status_code == 200, f"{action}: {response.status_code}\n{hub.log_tail()}"
    result = response.json()
    assert result.get("success"), f"{action} failed:\n{result.get('error') or result.get('log')}"
    return result


def _assignments(hub: Hub, student: str, action: str | None = None) -> list[dict]:
    """The Assignments tab: list, or fetch / submit / fetch_feedback, on the student's server."""
    base = f"/user/{student}/assignments"
    if action is None:
        response = hub.call(student, "GET", base, params={"course_id": COURSE_ID})
    else:
        form = {"course_id": COURSE_ID, "assignment_id": ASSIGNMENT}
        response = hub.call(student, "POST", f"{base}/{action}", data=form)
    assert response.status_code == 200, f"{student} {action}: {response.text[:2000]}"
    result = response.json()
    assert result["success"], f"{student} {action}: {result['value']}"
    return result["value"]


def _sources(notebook: dict) -> list[str]:
    """Each cell's source as one string (a file may store it as a list of lines)."""
    return ["".join(cell["source"]) for cell in notebook["cells"]]


def _answers(release: dict, kind: str) -> dict:
    """The fetched notebook with the masters' solutions in all, none or half of the tasks."""
    master = json.loads((ROOT / "source" / ASSIGNMENT / f"{EXERCISE}.ipynb").read_text())
    solutions = {
        cell["metadata"]["nbgrader"]["grade_id"]: cell["source"]
        for cell in master["cells"]
        if cell["metadata"].get("nbgrader", {}).get("solution")
    }
    tasks = list(solutions)
    chosen = {"solved": tasks, "blank": [], "partial": tasks[: len(tasks) // 2]}[kind]
    notebook = copy.deepcopy(release)
    for cell in notebook["cells"]:
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if grade_id in chosen:
            cell["source"] = solutions[grade_id]
    return notebook


@dataclass
class Round:
    fetched: dict[str, dict]  # student -> the notebook they fetched
    scores: dict[str, tuple[float, float]]  # student -> (score, max) from the gradebook
    feedback: dict[str, str]  # student -> the feedback page they fetched


@pytest.fixture(scope="module")
def class_round(hub: Hub) -> Round:
    for student in STUDENTS:
        response = hub.login(student, hub.passwords["student"])
        assert response.status_code == 201, f"{student}: {response.text}\n{hub.log_tail()}"
        hub.tokens[student] = response.json()["token"]
    response = hub.login(INSTRUCTOR, hub.passwords["instructor"])
    assert response.status_code == 201, f"{INSTRUCTOR}: {response.text}\n{hub.log_tail()}"
    hub.tokens[INSTRUCTOR] = response.json()["token"]
    _start_servers(hub, [INSTRUCTOR, *STUDENTS])

    _formgrader(hub, f"assignment/{ASSIGNMENT}/assign")
    _formgrader(hub, f"assignment/{ASSIGNMENT}/release")

    fetched: dict[str, dict] = {}
    for student, kind in STUDENTS.items():
        released = [a for a in _assignments(hub, student) if a["assignment_id"] == ASSIGNMENT]
        assert [a["status"] for a in released] == ["released"], released
        _assignments(hub, student, "fetch")
        path = f"/user/{student}/api/contents/{COURSE_ID}/{ASSIGNMENT}/{EXERCISE}.ipynb"
        fetched[student] = hub.call(student, "GET", path).json()["content"]
        if kind != "blank":  # the blank student submits what they fetched, untouched
            model = {
                "type": "notebook",
                "format": "json",
                "content": _answers(fetched[student], kind),
            }
            saved = hub.call(student, "PUT", path, json=model)
            assert saved.status_code == 200, f"{student} save: {saved.text[:2000]}"
        _assignments(hub, student, "submit")

    _formgrader(hub, f"assignment/{ASSIGNMENT}/collect")
    for student in STUDENTS:
        _formgrader(hub, f"submission/{ASSIGNMENT}/{student}/autograde")
        hub.track()
    _formgrader(hub, f"assignment/{ASSIGNMENT}/generate_feedback")
    _formgrader(hub, f"assignment/{ASSIGNMENT}/release_feedback")

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{hub.course / 'gradebook.db'}") as gradebook:
        scores = {
            s.student.id: (s.score, s.max_score)
            for s in gradebook.assignment_submissions(ASSIGNMENT)
        }

    feedback: dict[str, str] = {}
    for student in STUDENTS:
        listing = _assignments(hub, student, "fetch_feedback")
        submitted = [a for a in listing if a["status"] == "submitted"]
        assert len(submitted) == 1 and len(submitted[0]["submissions"]) == 1, listing
        entry = submitted[0]["submissions"][0]
        assert entry["has_local_feedback"], f"{student} has no feedback: {entry}"
        page = f"{entry['local_feedback_path']}/{EXERCISE}.html"
        response = hub.call(student, "GET", f"/user/{student}/api/contents/{page}")
        assert response.status_code == 200, f"{student}: {page} {response.status_code}"
        feedback[student] = response.json()["content"]
    return Round(fetched, scores, feedback)


def test_only_the_right_password_logs_in(hub: Hub) -> None:
    student = next(iter(STUDENTS))
    assert hub.login(student, "not-the-password").status_code == 403
    assert hub.login("mallory", hub.passwords["student"]).status_code == 403  # not on a roster
    # An instructor is a hub admin: the students' password does not log them in.
    assert hub.login(INSTRUCTOR, hub.passwords["student"]).status_code == 403


def test_every_student_fetches_the_release_without_solutions_or_hidden_tests(
    class_round: Round, hub: Hub
) -> None:
    release = json.loads((hub.course / "release" / ASSIGNMENT / f"{EXERCISE}.ipynb").read_text())
    for student, notebook in class_round.fetched.items():
        text = json.dumps(notebook)
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text, student
        assert _sources(notebook) == _sources(release), student


def test_a_student_cannot_reach_another_students_server(class_round: Round, hub: Hub) -> None:
    """A token opens its own user's server only (the proxy routes, the server asks the hub)."""
    ada, bo = "ada", "bo"
    response = hub.call(bo, "GET", f"/user/{ada}/api/contents/{COURSE_ID}")
    assert response.status_code == 403, response.status_code


def test_students_get_the_assignments_tab_but_not_formgrader(class_round: Round, hub: Hub) -> None:
    student = next(iter(STUDENTS))
    assert hub.call(student, "GET", f"/user/{student}/formgrader/api/status").status_code == 404
    status = hub.call(INSTRUCTOR, "GET", f"/user/{INSTRUCTOR}/formgrader/api/status")
    assert status.status_code == 200 and status.json() == {"status": True}


def test_the_gradebook_has_each_students_score_under_their_hub_name(class_round: Round) -> None:
    scores = class_round.scores
    assert set(scores) == set(STUDENTS), scores
    by_kind = {kind: scores[student] for student, kind in STUDENTS.items()}
    full = by_kind["solved"][1]
    assert full > 0 and all(maximum == full for _, maximum in scores.values()), scores
    assert by_kind["solved"][0] == full, scores
    assert by_kind["blank"][0] == 0, scores
    assert 0 < by_kind["partial"][0] < full, scores


def test_each_student_gets_their_own_feedback(class_round: Round) -> None:
    for student, page in class_round.feedback.items():
        score, maximum = class_round.scores[student]
        assert f"{EXERCISE} (Score: {round(score, 2)} / {round(maximum, 2)})" in page, student


def test_validate_on_a_students_server_gives_the_graders_verdict_while_it_answers(
    class_round: Round, hub: Hub
) -> None:
    """The Validate button's call on a student's server (the hub's student settings): the
    solved notebook passes, the blank one fails on every graded cell, and the server answers
    `/api/status` all along (nbgrader's own handler blocks it, jupyter/nbgrader#1232)."""
    path = f"{COURSE_ID}/{ASSIGNMENT}/{EXERCISE}.ipynb"
    graded = sum(
        1
        for cell in class_round.fetched["bo"]["cells"]
        if cell["metadata"].get("nbgrader", {}).get("grade")
    )
    for student, kind in (("ada", "solved"), ("bo", "blank")):
        status = f"{hub.url}/user/{student}/api/status"
        headers = {"Authorization": f"token {hub.tokens[student]}"}
        with polling_status(status, headers) as polls:
            response = hub.call(
                student,
                "POST",
                f"/user/{student}/assignments/validate",
                params={"path": path},
                timeout=VALIDATE_SECONDS + 30,
            )
        assert response.status_code == 200, f"{student}: {response.text[:2000]}"
        reply = response.json()
        assert reply["success"], f"{student}: {reply['value']}"
        assert polls.latencies and polls.unanswered == 0, f"{student}: {polls.summary()}"
        failed = reply["value"].get("failed", [])
        if kind == "solved":
            assert reply["value"] == {}, f"the solved notebook failed: {reply['value']}"
        else:
            assert len(failed) == graded, f"{len(failed)} of {graded} graded cells failed"
