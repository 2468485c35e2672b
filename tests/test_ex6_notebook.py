"""Exercise 6 (monitoring): the master's graded cells and self-checks, solved and blank, and what
Run All of the release does.

Each graded cell must pass on the master's solution, quickly, and fail on the release's stub
with one clear line (the notebook run as the autograder runs it, by `tests/_kit.py`); each
self-check must say ✅ on the solution and 💡 on the stub. Wrong answers in other styles live in
the catalogue (`tests/catalogue/ex6_monitoring.py`, run by `tests/test_agreement.py`); the few
here pin what a check *says*, which the agreement test does not look at.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import dspy
import matplotlib
import pytest

matplotlib.use("Agg")

from dspy_workbook import WorkbookError  # noqa: E402
from dspy_workbook import monitoring as wbm  # noqa: E402
from dspy_workbook.checks import ex6  # noqa: E402
from tests._kit import MASTERS, code_cells, kernel  # noqa: E402
from tools.answer_key import load_solutions  # noqa: E402

MASTER = MASTERS / "06_monitoring.py"
SOLUTIONS = ("collector", "detector")


CELLS = code_cells(MASTER.stem)
GRADED = [c.grade_id for c in CELLS if c.is_graded]


@pytest.fixture(scope="module")
def solved() -> dict[str, Any]:
    return vars(load_solutions(MASTER.stem, *SOLUTIONS))


@pytest.fixture(scope="module")
def blank() -> dict[str, Any]:
    return vars(load_solutions(MASTER.stem, *SOLUTIONS, blank=True))


@pytest.fixture(autouse=True)
def _course_setup(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKBOOK_CACHE_DIR", str(tmp_path / "workbook"))
    with dspy.context(adapter=dspy.JSONAdapter()):
        yield


# Graded cells: ✅ and full marks for the master's solution, 💡 and 0 for the stub, and what each
# catalogue entry deserves: tests/test_agreement.py; each task graded with the other blank (Task 2
# with the collector blank), the stub failing with NotImplementedError: tests/test_graded_cells.py.
@pytest.mark.sim
def test_graded_cell_passes_on_solution() -> None:
    with kernel(MASTER.stem, through=GRADED[-1]) as notebook:
        for grade_id in GRADED:
            run = notebook.ran(grade_id)
            assert run.error is None, f"{grade_id}: {run.error!r}"
            # A bound far above what the cell needs (about a second): the grader allows 120 s.
            assert run.seconds < 30, f"{grade_id} must stay well under 120 s"


@pytest.mark.sim
def test_graded_cell_stops_on_blank_with_one_clear_line() -> None:
    with kernel(MASTER.stem, blank=SOLUTIONS, through=GRADED[-1]) as notebook:
        for grade_id in GRADED:
            error = notebook.ran(grade_id).error
            assert isinstance(error, ex6.TaskNotDone), f"{grade_id}: {error!r}"
            message = str(error)
            assert isinstance(error, WorkbookError) and isinstance(error, NotImplementedError), (
                "shown as one line by the workbook's error display, still 'not done' for "
                "everyone else"
            )
            assert "\n" not in message and "not done yet" in message and "Task" in message, message


@pytest.mark.sim
def test_graded_cells_pass_twice_in_one_kernel() -> None:
    """Re-running a test cell (DSPy's cache now warm) must not turn its misses into hits."""
    with kernel(MASTER.stem, through="test_collector") as notebook:
        assert notebook.ran("test_collector").error is None
        notebook.run(notebook.cell("test_collector").source, "<test_collector again>")


def test_master_has_one_graded_cell_per_task_and_the_course_furniture() -> None:
    assert GRADED == [f"test_{s}" for s in SOLUTIONS]
    assert [c.grade_id for c in CELLS if c.is_solution] == list(SOLUTIONS)
    text = MASTER.read_text()
    for needle in (
        'ex6.hint("collector")',
        'ex6.hint("detector")',
        "ex6.check_all()",
        "Objectives",
        "Prerequisites",
        "Questionnaire",
        "Further research",
        "## How to submit",
        "upload the saved `06_monitoring.ipynb`",
        "Going further (optional, ungraded)",
        "made up",
        "never defined",
        "Quality on SmolLM2-135M is **low**",
        # the facts the tasks need are in their text (issue 18)
        '`{"args": (…), "kwargs": {…}}`',
        "z is 0 for a value equal to the mean",
        # facts checked against the packages (issue 17)
        "4 × 10 ms = 40 ms",
        "*since the process started*",
    ):
        assert needle in text, needle
    for task in ex6.ex.tasks.values():
        assert len(task.hints) >= 2, task.key


def test_the_core_needs_no_graded_answer_from_the_support_package() -> None:
    """The given parts the core uses live in `wbm`; the two graded answers live only here."""
    text = MASTER.read_text()
    for name in ("AlertManager", "BatchMeans", "metric_stats", "business_metrics"):
        assert f"wbm.{name}" in text, name
    assert not hasattr(wbm.CollectorBase, "on_module_start") or (
        wbm.CollectorBase.on_module_start is dspy.utils.callback.BaseCallback.on_module_start
    ), "the collector's graded hooks must not ship in the package"


# -- self-checks ---------------------------------------------------------------------------------
@pytest.mark.parametrize("key", list(ex6.ex.tasks))
def test_check_is_correct_on_solution(key: str, solved: dict) -> None:
    task = ex6.ex.tasks[key]
    result = task.run(*(solved[name] for name in task.needs))
    assert result.outcome == "correct", result


@pytest.mark.parametrize("key", list(ex6.ex.tasks))
def test_check_is_not_attempted_on_stub(key: str, blank: dict) -> None:
    task = ex6.ex.tasks[key]
    result = task.run(*(blank[name] for name in task.needs))
    assert result.outcome == "not attempted", result


@pytest.mark.parametrize("key", list(ex6.ex.tasks))
def test_check_is_not_attempted_when_the_name_is_not_a_class_yet(key: str) -> None:
    assert ex6.ex.tasks[key].run(None).outcome == "not attempted"


def test_check_all_sums_the_core_points(solved: dict, blank: dict) -> None:
    assert ex6.check_all(solved) and "core: 6/6" in repr(ex6.check_all(solved))
    assert "core: 0/6" in repr(ex6.check_all(blank))
    assert "not defined" in repr(ex6.check_all({}))


def test_hints_come_in_levels() -> None:
    first, second = ex6.hint("detector"), ex6.hint("detector")
    assert (first.level, second.level) == (1, 2) and first.text != second.text


def test_the_collector_check_names_an_error_dspy_swallowed_and_prints_nothing(
    solved: dict, caplog: pytest.LogCaptureFixture
) -> None:
    """A hook that fails only inside DSPy (here: on a positional call) is the verdict, not a wall
    of `WARNING dspy.utils.callback` lines."""
    base = solved["MetricsCollector"]

    def on_module_start(self, call_id, instance, inputs):
        if not inputs["kwargs"]:
            raise KeyError("question")
        base.on_module_start(self, call_id, instance, inputs)

    fragile = type("Fragile", (base,), {"on_module_start": on_module_start})
    with caplog.at_level(logging.WARNING):
        result = ex6.check_collector(fragile)
    assert result.outcome == "incorrect", result
    for needle in ("program(question)", "`on_module_start` raised KeyError", "only logs it"):
        assert needle in result.message, result
    assert not [r for r in caplog.records if r.name == "dspy.utils.callback"], caplog.text
    assert not logging.getLogger("dspy.utils.callback").handlers, "the check left its handler"


def test_the_collector_check_says_how_dspy_passes_inputs(solved: dict) -> None:
    """The issue's case: the callback's `inputs` kept as they come. The check names the shape."""
    base = solved["MetricsCollector"]

    def on_module_start(self, call_id, instance, inputs):
        if self._current.get() is not None:
            return
        state = wbm.PredictionState(started=time.perf_counter(), inputs=inputs)
        state.token = self._current.set(state)
        self._open[call_id] = state

    result = ex6.check_collector(type("Raw", (base,), {"on_module_start": on_module_start}))
    assert result.outcome == "incorrect", result
    assert "'args'" in result.message and "wbm.named_inputs(instance, inputs)" in result.message


def test_the_detector_check_explains_a_division_by_zero(solved: dict) -> None:
    base = solved["AdaptiveDetector"]

    def update(self, value):
        if self.mean is None:
            self.seen += 1
            self.mean = value
            return False
        self.last_z = (value - self.mean) / self.spread
        return base.update(self, value)

    result = ex6.check_detector(type("Divides", (base,), {"update": update}))
    assert result.outcome == "incorrect", result
    assert "ZeroDivisionError" in result.message and "z is 0 for no change" in result.message


def test_stop_if_unfinished_passes_other_errors_through() -> None:
    with pytest.raises(KeyError), ex6.stop_if_unfinished("Task 1", "x"):
        raise KeyError("a real bug is shown as itself")
    with ex6.stop_if_unfinished("Task 1", "x"):
        pass


# -- Run All -------------------------------------------------------------------------------------
@pytest.mark.sim
def test_run_all_of_the_release_stops_once_at_task_1_quietly() -> None:
    """Before: 25 model calls through the unfinished collector, ~50 empty callback warnings, an
    empty table and `nan`. Now: one stop, at Task 1's graded cell, before any workload."""
    every_task = [c.grade_id for c in CELLS if c.is_solution]
    with kernel(MASTER.stem, blank=every_task, stop_at_error=True) as notebook:
        stop = notebook.stopped
        assert stop is not None and stop.cell.grade_id == "test_collector", stop
        assert type(stop.error) is ex6.TaskNotDone, stop
        assert str(stop.error).startswith("Task 1 is not done yet"), stop
        assert "WARNING" not in notebook.printed, notebook.printed[:2000]
