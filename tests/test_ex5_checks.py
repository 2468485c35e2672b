"""Exercise 5: the master's graded cells and self-checks, and what students receive.

The solutions come from the master itself (`load_solutions`); the blank namespace is what
nbgrader's release gives a student. Right and wrong answers in other styles are the catalogue's
(`tests/catalogue/ex5_deployment.py`, run by `tests/test_agreement.py`). Here: the graded cells
pass quickly on the answers and fail on the stubs (run by `tests/_kit.py` as the autograder runs
the notebook), each stub fails at its self-check (💡) and not before, and the support package holds
no answer. That no graded cell needs another task's answer is `tests/test_graded_cells.py`'s.
"""

from __future__ import annotations

import time
from typing import Any

import dspy
import pytest

import dspy_workbook as wb
from dspy_workbook import serving
from dspy_workbook.checks import ex5
from tests._kit import MASTERS, code_cells, kernel
from tools.answer_key import load_solutions

MASTER = MASTERS / "05_deployment.py"
SOLUTIONS = ("request_model", "api_key", "rate_limit")
OWN = {  # graded cell -> the name its task defines
    "test_request_model": "question_model",
    "test_api_key": "check_api_key",
    "test_rate_limit": "KeyedTokenBucket",
}
CHECKS = {
    "check_request_model": "question_model",
    "check_api_key_task": "check_api_key",
    "check_rate_limiter": "KeyedTokenBucket",
}


@pytest.fixture(scope="module")
def solved() -> dict[str, Any]:
    return vars(load_solutions(MASTER.stem, *SOLUTIONS))


@pytest.fixture(scope="module")
def blank() -> dict[str, Any]:
    # Every stub raises only when called, so the release's cells all define their names.
    return vars(load_solutions(MASTER.stem, *SOLUTIONS, blank=True))


def test_master_has_the_planned_graded_cells() -> None:
    graded = [c for c in code_cells(MASTER.stem) if c.is_graded]
    assert [c.grade_id for c in graded] == list(OWN)
    assert [c.nbgrader["points"] for c in graded] == [2, 3, 3]


@pytest.mark.sim
def test_graded_cell_passes_on_solution_quickly() -> None:
    with kernel(MASTER.stem, through=list(OWN)[-1]) as notebook:
        for grade_id in OWN:
            run = notebook.ran(grade_id)
            assert run.error is None, f"{grade_id}: {run.error!r}"
            assert run.seconds < 10, grade_id  # grading runs every cell for every student


@pytest.mark.sim
def test_graded_cell_fails_on_blank() -> None:
    with kernel(MASTER.stem, blank=SOLUTIONS, through=list(OWN)[-1]) as notebook:
        for grade_id in OWN:
            error = notebook.ran(grade_id).error
            assert isinstance(error, NotImplementedError), f"{grade_id}: {error!r}"


@pytest.mark.parametrize("name", CHECKS)
def test_check_is_correct_on_solution(name: str, solved: dict) -> None:
    result = getattr(ex5, name)(solved[CHECKS[name]])
    assert result.outcome == "correct", result


@pytest.mark.parametrize("name", CHECKS)
def test_each_stub_fails_at_its_self_check(name: str, blank: dict) -> None:
    """The release's stubs are defined (no class body raises): the self-check shows 💡."""
    result = getattr(ex5, name)(blank[CHECKS[name]])
    assert result.outcome == "not attempted", result


def test_check_all_and_hints(solved: dict, blank: dict) -> None:
    summary = ex5.check_all(solved)
    assert [task.key for task, _ in summary.rows] == list(SOLUTIONS)
    assert bool(summary), summary
    assert all(r.outcome == "not attempted" for _, r in ex5.check_all(blank).rows)
    assert [ex5.hint("api_key").level for _ in range(4)] == [1, 2, 3, 3]
    for key in ("Task 3", "task 3", 3, "rate_limit"):
        assert ex5.hint(key, level=1).title == "Task 3 · per-key rate limiter"


def test_self_checks_are_quick(solved: dict) -> None:
    started = time.monotonic()
    ex5.check_all(solved)
    assert time.monotonic() - started < 15  # on sim, fake clocks: no sleeping


def test_checks_do_not_touch_the_notebook_lm(solved: dict) -> None:
    notebook_lm = wb.sim_lm(latency=0.0)
    with dspy.context(lm=notebook_lm):
        for name, needs in CHECKS.items():
            getattr(ex5, name)(solved[needs])
    assert notebook_lm.engine.stats.calls == 0


# -- what students receive -----------------------------------------------------------------------
def test_the_support_package_has_no_answer_and_no_default_for_the_parts(monkeypatch) -> None:
    for name in ("check_api_key", "question_model", "MemoryRateLimiter", "KeyedTokenBucket"):
        assert not hasattr(serving, name), f"dspy_workbook.serving.{name} is an answer"
    monkeypatch.delenv(serving.PARTS_VARIABLE, raising=False)
    with pytest.raises(ValueError, match="the service needs its parts"):
        serving.create_app(serving.Settings(), lm=wb.sim_lm(latency=0.0))
    with pytest.raises(TypeError, match="request_model"):
        serving.ServiceParts()  # no defaults for the graded parts


def test_the_stand_ins_are_not_answers(solved: dict) -> None:
    """Each stand-in gets ❌ from the self-check of the task it stands in for."""
    from dspy_workbook.serving import standins

    assert ex5.check_request_model(standins.any_question).outcome == "incorrect"
    assert ex5.check_api_key_task(standins.key_lookup).outcome == "incorrect"
    assert ex5.check_rate_limiter(standins.Unlimited).outcome == "error"  # no clock= at all
