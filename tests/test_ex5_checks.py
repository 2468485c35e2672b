"""Exercise 5: the master's graded cells and self-checks tell right from wrong, on sim.

The solutions come from the master itself (`load_solutions`); the blank namespace is what
nbgrader's release gives a student. Typical wrong answers must get a specific "incorrect".
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import time
from typing import Any

import dspy
import jupytext
import pytest
from answer_key import MASTERS, load_solutions  # tools/ is on sys.path: see conftest
from fastapi import HTTPException
from pydantic import BaseModel, Field

import dspy_workbook as wb
from dspy_workbook.checks import ex5
from dspy_workbook.serving import RateDecision

MASTER = MASTERS / "05_deployment.py"
SOLUTIONS = ("request_model", "api_key", "rate_limit", "errors")


def _cells() -> list:
    return jupytext.read(MASTER, fmt="py:percent").cells


def _nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


GRADED = [(_nbgrader(c)["grade_id"], c.source) for c in _cells() if _nbgrader(c).get("grade")]


def _namespace(blank: bool) -> dict[str, Any]:
    if not blank:
        return vars(load_solutions(MASTER.stem, *SOLUTIONS))
    # A blank class body raises at definition (nbgrader's stub is `raise NotImplementedError()`),
    # so the release's Task 1 cell leaves `QuestionRequest` undefined: load the tasks one by one.
    namespace: dict[str, Any] = {}
    for grade_id in SOLUTIONS:
        try:
            namespace.update(vars(load_solutions(MASTER.stem, grade_id, blank=True)))
        except NotImplementedError:
            pass
    return namespace


@pytest.fixture(scope="module")
def solved() -> dict[str, Any]:
    return _namespace(blank=False)


@pytest.fixture(scope="module")
def blank() -> dict[str, Any]:
    return _namespace(blank=True)


def run_cell(source: str, namespace: dict[str, Any]) -> None:
    """Run a notebook cell (top-level `await` allowed) as the kernel would."""
    code = compile(source, "<graded cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if inspect.iscoroutine(result):
        asyncio.run(asyncio.wait_for(result, 60))


def test_master_has_the_planned_graded_cells() -> None:
    assert [g for g, _ in GRADED] == [
        "test_request_model",
        "test_api_key",
        "test_rate_limit",
        "test_errors",
    ]


@pytest.mark.parametrize("grade_id, source", GRADED, ids=[g for g, _ in GRADED])
def test_graded_cell_passes_on_solution(grade_id: str, source: str, solved: dict) -> None:
    started = time.monotonic()
    run_cell(source, dict(solved))
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("grade_id, source", GRADED, ids=[g for g, _ in GRADED])
def test_graded_cell_fails_on_blank(grade_id: str, source: str, blank: dict) -> None:
    with pytest.raises((NotImplementedError, NameError)):  # NameError: the blank class is undefined
        run_cell(source, dict(blank))


@pytest.mark.parametrize("grade_id, source", GRADED, ids=[g for g, _ in GRADED])
def test_one_blank_task_does_not_cost_another(
    grade_id: str, source: str, solved: dict, blank: dict
) -> None:
    """Each graded cell only needs its own task: blank every other task and it still passes."""
    own = {
        "test_request_model": "QuestionRequest",
        "test_api_key": "check_api_key",
        "test_rate_limit": "KeyedTokenBucket",
        "test_errors": "classify_error",
    }[grade_id]
    mixed = {**{k: v for k, v in blank.items() if k in solved}, own: solved[own]}
    if own == "QuestionRequest":
        mixed["MAX_QUESTION_CHARS"] = solved["MAX_QUESTION_CHARS"]
    run_cell(source, mixed)


CHECKS = {
    "check_request_model": "QuestionRequest",
    "check_api_key_task": "check_api_key",
    "check_rate_limiter": "KeyedTokenBucket",
    "check_error_mapping": "classify_error",
}


@pytest.mark.parametrize("name", CHECKS)
def test_check_is_correct_on_solution(name: str, solved: dict) -> None:
    result = getattr(ex5, name)(solved[CHECKS[name]])
    assert result.outcome == "correct", result


@pytest.mark.parametrize("name", CHECKS)
def test_check_is_not_attempted_on_stub(name: str, blank: dict) -> None:
    summary = ex5.check_all(blank)
    by_title = {task.key: result for task, result in summary.rows}
    assert all(r.outcome == "not attempted" for r in by_title.values()), summary
    if CHECKS[name] in blank:
        result = getattr(ex5, name)(blank[CHECKS[name]])
        assert result.outcome == "not attempted", result


def test_check_all_and_hints(solved: dict) -> None:
    summary = ex5.check_all(solved)
    assert [task.key for task, _ in summary.rows] == [
        "request_model",
        "api_key",
        "rate_limit",
        "errors",
    ]
    assert bool(summary), summary
    assert [ex5.hint("api_key").level for _ in range(4)] == [1, 2, 3, 3]


# -- typical wrong answers -----------------------------------------------------------------------
def _incorrect(result, *phrases: str) -> None:
    assert result.outcome == "incorrect", result
    for phrase in phrases:
        assert phrase in result.message, result.message


def test_model_that_accepts_unknown_fields_or_blanks_is_incorrect() -> None:
    class Lenient(BaseModel):
        question: str = Field(min_length=1, max_length=2000)

    _incorrect(ex5.check_request_model(Lenient), "strip the whitespace")

    class Extra(BaseModel):
        model_config = {"str_strip_whitespace": True}
        question: str = Field(min_length=1, max_length=2000)

    _incorrect(ex5.check_request_model(Extra), "an unknown field got 200")

    class NoLimit(BaseModel):
        model_config = {"extra": "forbid", "str_strip_whitespace": True}
        question: str = Field(min_length=1)

    _incorrect(ex5.check_request_model(NoLimit), "2001 characters")


def test_key_check_that_echoes_or_accepts_prefixes_is_incorrect() -> None:
    def echoes(presented, keys):
        for name, key in keys.items():
            if presented == key:
                return name
        raise HTTPException(401, f"unknown key {presented}")

    _incorrect(ex5.check_api_key_task(echoes), "repeats the key")

    def prefix(presented, keys):
        for name, key in keys.items():
            if presented and key.startswith(presented):
                return name
        raise HTTPException(401, "no")

    _incorrect(ex5.check_api_key_task(prefix), "one character short")


def test_bucket_that_never_refills_or_is_shared_is_incorrect() -> None:
    class NoRefill:
        def __init__(self, rate, burst):
            self.rate, self.burst, self.left = rate, burst, {}

        async def acquire(self, key):
            left = self.left.get(key, self.burst)
            ok = left >= 1
            self.left[key] = left - ok
            return RateDecision(ok, self.burst, self.left[key], 0.0 if ok else 1 / self.rate, 1.0)

    _incorrect(ex5.check_rate_limiter(NoRefill), "no token came back")

    class Shared:
        def __init__(self, rate, burst):
            self.rate, self.burst, self.tokens, self.at = (
                rate,
                burst,
                float(burst),
                time.monotonic(),
            )

        async def acquire(self, key):
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
            ok = self.tokens >= 1
            self.tokens -= ok
            wait = 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate
            return RateDecision(ok, self.burst, int(self.tokens), wait, 1.0)

    result = ex5.check_rate_limiter(Shared)
    assert result.outcome == "incorrect" and "key" in result.message, result


def test_error_mapping_that_checks_dspy_errors_first_is_incorrect() -> None:
    def wrong_order(exc):
        if isinstance(exc, dspy.DSPyError):
            return 503, "lm_unavailable"
        if isinstance(exc, TimeoutError):
            return 504, "lm_timeout"
        return 500, "internal_error"

    _incorrect(ex5.check_error_mapping(wrong_order), "LMTimeoutError")

    def everything_500(exc):
        return 500, "internal_error"

    _incorrect(ex5.check_error_mapping(everything_500), "TimeoutError")


def test_checks_do_not_touch_the_notebook_lm() -> None:
    notebook_lm = wb.sim_lm(latency=0.0)
    with dspy.context(lm=notebook_lm):
        ex5.check_error_mapping(_namespace(blank=False)["classify_error"])
    assert notebook_lm.engine.stats.calls == 0
