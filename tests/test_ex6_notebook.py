"""Exercise 6 (monitoring): the master's graded cells and self-checks, solved and blank.

Each graded cell must pass on the master's solution and fail on the release's stub; each
self-check must say ✅ on the solution, 💡 on the stub and ❌ on a typical wrong answer.
"""

from __future__ import annotations

import math
import time
from typing import Any

import dspy
import jupytext
import matplotlib
import pytest

matplotlib.use("Agg")

from answer_key import MASTERS, load_solutions  # noqa: E402 (tools/ is on sys.path: see conftest)

from dspy_workbook import monitoring as wbm  # noqa: E402
from dspy_workbook.checks import ex6  # noqa: E402

MASTER = MASTERS / "06_monitoring.py"
SOLUTIONS = ("collector", "stats", "business", "detector", "alerts")


def _cells() -> list:
    return jupytext.read(MASTER, fmt="py:percent").cells


def _nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


@pytest.fixture(scope="module")
def solved() -> dict[str, Any]:
    return vars(load_solutions(MASTER.stem, *SOLUTIONS))


@pytest.fixture(scope="module")
def blank() -> dict[str, Any]:
    return vars(load_solutions(MASTER.stem, *SOLUTIONS, blank=True))


GRADED = [(_nbgrader(c)["grade_id"], c.source) for c in _cells() if _nbgrader(c).get("grade")]


def run_cell(source: str, namespace: dict) -> None:
    """Run a cell's code as the notebook does (not under this file's `from __future__` flags)."""
    exec(compile(source, "<graded cell>", "exec", dont_inherit=True), namespace)


@pytest.fixture(autouse=True)
def _course_setup(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKBOOK_CACHE_DIR", str(tmp_path / "workbook"))
    with dspy.context(adapter=dspy.JSONAdapter()):
        yield


@pytest.mark.parametrize("grade_id, source", GRADED, ids=[g for g, _ in GRADED])
def test_graded_cell_passes_on_solution(grade_id: str, source: str, solved: dict) -> None:
    started = time.perf_counter()
    run_cell(source, dict(solved))
    assert time.perf_counter() - started < 30, f"{grade_id} must stay well under the grader's 120 s"


@pytest.mark.parametrize("grade_id, source", GRADED, ids=[g for g, _ in GRADED])
def test_graded_cell_fails_on_blank(grade_id: str, source: str, blank: dict) -> None:
    with pytest.raises(NotImplementedError):
        run_cell(source, dict(blank))


def test_graded_cells_pass_twice_in_one_kernel(solved: dict) -> None:
    """Re-running a test cell (DSPy's cache now warm) must not turn its misses into hits."""
    namespace = dict(solved)
    for _ in range(2):
        run_cell(dict(GRADED)["test_collector"], namespace)


def test_master_has_one_graded_cell_per_task_and_the_course_furniture() -> None:
    assert [g for g, _ in GRADED] == [f"test_{s}" for s in SOLUTIONS]
    assert [_nbgrader(c)["grade_id"] for c in _cells() if _nbgrader(c).get("solution")] == list(
        SOLUTIONS
    )
    text = MASTER.read_text()
    assert "# Steps:" not in text
    for needle in (
        "ex6.hint(",
        "ex6.check_all()",
        "Objectives",
        "Prerequisites",
        "Questionnaire",
        "Further research",
        "How to submit",
        "Going further (optional, ungraded)",
        "made up",
        "`logger` is never defined",
        "quality is **low**",
    ):
        assert needle in text, needle
    for task in ex6.ex.tasks.values():
        assert len(task.hints) >= 2, task.key


def test_each_task_is_graded_on_its_own(blank: dict) -> None:
    """Tasks 2–5 get their points with Task 1 (the collector) still blank."""
    student = dict(blank)
    solutions = {
        _nbgrader(c)["grade_id"]: c.source for c in _cells() if _nbgrader(c).get("solution")
    }
    for grade_id in ("stats", "business", "detector", "alerts"):
        run_cell(solutions[grade_id], student)
        run_cell(dict(GRADED)[f"test_{grade_id}"], student)
    with pytest.raises(NotImplementedError):
        run_cell(dict(GRADED)["test_collector"], student)


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


def test_check_all_sums_the_core_points(solved: dict, blank: dict) -> None:
    assert ex6.check_all(solved) and "core: 12/12" in repr(ex6.check_all(solved))
    assert "core: 0/12" in repr(ex6.check_all(blank))
    assert "not defined" in repr(ex6.check_all({}))


def test_hints_come_in_levels() -> None:
    first, second = ex6.hint("detector"), ex6.hint("detector")
    assert (first.level, second.level) == (1, 2) and first.text != second.text
    with pytest.raises(KeyError):
        ex6.hint("no-such-task")


def test_collector_without_a_contextvar_is_incorrect(solved: dict) -> None:
    """The classic race: state in a plain attribute mixes up concurrent predictions."""
    base = solved["MetricsCollector"]

    def on_module_start(self, call_id, instance, inputs):
        if getattr(self, "_busy", 0):
            return
        self._busy = 1
        self._state = wbm.PredictionState(
            started=time.perf_counter(), inputs=dict(inputs.get("kwargs") or {})
        )
        self._open[call_id] = self._state

    def on_lm_end(self, call_id, outputs, exception=None):
        usage, model = self._lm_calls.pop(call_id)
        usage.end(exception)
        state = getattr(self, "_state", None)
        if state is not None:
            state.lm_calls += 1
            state.input_tokens += usage.input_tokens
            state.output_tokens += usage.output_tokens
            state.model = model

    def on_module_end(self, call_id, outputs, exception=None):
        state = self._open.pop(call_id, None)
        if state is None:
            return
        self._busy = 0
        self.record(
            wbm.Observation(
                at=time.time(),
                latency=time.perf_counter() - state.started,
                input_tokens=state.input_tokens,
                output_tokens=state.output_tokens,
                lm_calls=state.lm_calls,
                cache_hit=state.lm_calls > 0 and state.hits == state.lm_calls,
                error=None if exception is None else type(exception).__name__,
                quality=self.safely(self.quality, state.inputs, outputs),
                cost=self.cost(state.model, state.input_tokens, state.output_tokens),
                model=state.model,
            )
        )

    racy = type(
        "Racy",
        (base,),
        {
            "on_module_start": on_module_start,
            "on_lm_end": on_lm_end,
            "on_module_end": on_module_end,
        },
    )
    result = ex6.check_collector(racy)
    assert result.outcome == "incorrect", result


def test_collector_counting_nested_modules_is_incorrect(solved: dict) -> None:
    base = solved["MetricsCollector"]

    def on_module_start(self, call_id, instance, inputs):  # forgets to skip nested modules
        state = wbm.PredictionState(
            started=time.perf_counter(), inputs=dict(inputs.get("kwargs") or {})
        )
        state.token = self._current.set(state)
        self._open[call_id] = state

    result = ex6.check_collector(type("Nested", (base,), {"on_module_start": on_module_start}))
    assert result.outcome == "incorrect" and "ChainOfThought" in result.message, result


def test_stats_in_seconds_is_incorrect(solved: dict) -> None:
    def seconds_not_ms(observations):
        table = solved["metric_stats"](observations)
        if "latency_ms" in table.index:
            table.loc["latency_ms"] = table.loc["latency_ms"].where(
                table.columns == "count", table.loc["latency_ms"] / 1000
            )
        return table

    assert ex6.check_stats(seconds_not_ms).outcome == "incorrect"


def test_business_metrics_dividing_by_zero_is_an_error(solved: dict) -> None:
    def naive(observations, confidence_threshold=0.7):
        served = [o for o in observations if o.error is None]
        return {
            **solved["business_metrics"](observations, confidence_threshold),
            "error_rate": (len(observations) - len(served)) / len(observations),
        }

    result = ex6.check_business(naive)
    assert result.outcome == "incorrect" and "ZeroDivisionError" in result.message, result


def test_detector_that_learns_from_anomalies_is_incorrect(solved: dict) -> None:
    base = solved["AdaptiveDetector"]

    def update(self, value):
        flagged = base.update(self, value)
        if flagged:  # also learns the anomaly: the incident becomes the new normal
            diff = value - self.mean
            self.mean += self.alpha * diff
            self.var = (1 - self.alpha) * (self.var + self.alpha * diff * diff)
        return flagged

    result = ex6.check_detector(type("Learns", (base,), {"update": update}))
    assert result.outcome == "incorrect" and "baseline moved" in result.message, result


def test_alert_manager_without_deduplication_is_incorrect(solved: dict) -> None:
    def evaluate(self, rule, anomalous, *, severity="warning", value=None, message=""):
        if anomalous:
            alert = wbm.Alert(rule, severity, value=value, message=message)
            self.dispatcher.send(alert)
            return alert
        return None

    result = ex6.check_alerts(type("Noisy", (solved["AlertManager"],), {"evaluate": evaluate}))
    assert result.outcome == "incorrect", result


def test_alert_manager_calling_sinks_directly_is_incorrect(solved: dict) -> None:
    base = solved["AlertManager"]

    class Inline:
        def __init__(self, sinks):
            self.sinks = sinks

        def send(self, alert):
            for sink in self.sinks:
                sink.deliver(alert.as_dict())

    def init(self, dispatcher=None, **kwargs):
        base.__init__(self, Inline(dispatcher.sinks), **kwargs)

    result = ex6.check_alerts(type("Inline", (base,), {"__init__": init}))
    assert result.outcome == "incorrect" and "sink" in result.message, result


def test_check_rejects_nan_passing_detector(solved: dict) -> None:
    base = solved["AdaptiveDetector"]

    def update(self, value):
        if math.isnan(value):
            return False
        return base.update(self, value)

    assert ex6.check_detector(type("NanOk", (base,), {"update": update})).outcome == "incorrect"
