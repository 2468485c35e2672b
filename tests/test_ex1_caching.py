"""Exercise 1 (caching): the master's graded cells and self-checks, Run All, and the support code.

Right and wrong answers to the graded tasks live in one catalogue, `tests/catalogue/ex1_caching.py`,
which `tests/test_agreement.py` runs through each task's self-check and hidden tests. The cache's
defences against hostile input (paths, damaged entries, killed writers) are in
`test_ex1_hardening.py`.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import dspy
import matplotlib
import pytest

matplotlib.use("Agg")

import dspy_workbook as wb  # noqa: E402
from dspy_workbook import caching as wbc  # noqa: E402
from dspy_workbook.checks import ex1  # noqa: E402
from tests._kit import MASTERS, code_cells, kernel, submit  # noqa: E402
from tests.catalogue import ex1_caching as optional_catalogue  # noqa: E402
from tools.answer_key import load_solutions  # noqa: E402

MASTER = MASTERS / "01_caching.py"
SOLUTIONS = ("cache_key", "disk_cache", "cached_module", "similar_cache")
CELLS = code_cells(MASTER.stem)


# -- the master's answers, as namespaces: solved and blank (the release's stubs) ------------------
def _namespace(blank: bool) -> dict[str, Any]:
    """The master's imports and solution cells (blank: as in the release, stubs that raise)."""
    return vars(load_solutions(MASTER.stem, *SOLUTIONS, blank=blank))


@pytest.fixture(scope="module")
def solved() -> dict[str, Any]:
    return _namespace(blank=False)


@pytest.fixture(scope="module")
def blank() -> dict[str, Any]:
    return _namespace(blank=True)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written to .workbook_cache/ lands in a temp folder
    monkeypatch.setenv("WORKBOOK_CACHE_DIR", str(tmp_path / "workbook"))


# -- graded cells ----------------------------------------------------------------------------------
# Full marks and ✅ for the master's solution, 0 and 💡 for the stub, and what each catalogue entry
# deserves: tests/test_agreement.py. Each task graded with every other task blank (Task 3 alone
# among them): tests/test_graded_cells.py.
GRADED = [c.grade_id for c in CELLS if c.is_graded]


def test_master_has_three_graded_tasks_and_one_optional() -> None:
    assert GRADED == ["test_cache_key", "test_disk_cache", "test_cached_module"]
    solution_ids = [c.grade_id for c in CELLS if c.is_solution]
    assert solution_ids == list(SOLUTIONS), "one solution cell per task, in task order"
    text = MASTER.read_text()
    going_further = text.index("## Going further")
    assert text.index('"grade_id": "similar_cache"') > going_further
    assert "extra credit" not in text.lower() and "bonus" not in text.lower()
    assert text.rstrip().endswith("instructor asked."), "How to submit is the last cell"


def test_master_spells_out_no_steps_and_offers_hints() -> None:
    text = MASTER.read_text()
    assert "# Steps:" not in text
    assert "ex1.check_all()" in text
    for heading in (
        "Learning objectives",
        "Prerequisites",
        "Questionnaire",
        "Further research",
        "How to submit",
    ):
        assert heading in text, heading
    assert text.index("DSPy's own cache") < text.index("## Task 1"), "the why before the how"
    for task in ex1.ex.tasks.values():
        assert len(task.hints) >= 2, task.key
        assert f'ex1.hint("{task.key}")' in text, f"the task text names its hint key {task.key!r}"


@pytest.mark.sim
def test_graded_cell_fails_on_blank() -> None:
    with kernel(MASTER.stem, blank=SOLUTIONS, through=GRADED[-1]) as notebook:
        for grade_id in GRADED:
            error = notebook.ran(grade_id).error
            assert isinstance(error, NotImplementedError), f"{grade_id}: {error!r}"


@pytest.mark.sim
def test_one_task_cannot_cost_another_tasks_points() -> None:
    """Tasks 2 and 3 get full marks with Task 1 still blank (Task 3: its own cache and key)."""
    with kernel(MASTER.stem, blank={"cache_key"}, through="test_cached_module") as notebook:
        for grade_id in ("test_disk_cache", "test_cached_module"):
            error = notebook.ran(grade_id).error
            assert error is None, f"{grade_id} failed with Task 1 blank: {error!r}"
        assert isinstance(notebook.ran("test_cache_key").error, NotImplementedError)


# -- self-checks: correct on the solution, not attempted on the stub -------------------------------
CHECKS = {name: task for name, task in ex1.ex.tasks.items()}


@pytest.mark.parametrize("key", CHECKS)
def test_check_is_correct_on_solution(key: str, solved: dict) -> None:
    task = CHECKS[key]
    result = task.run(*(solved[a] for a in task.needs))
    assert result.outcome == "correct", result


@pytest.mark.parametrize("key", CHECKS)
def test_check_is_not_attempted_on_stub(key: str, blank: dict) -> None:
    task = CHECKS[key]
    result = task.run(*(blank[a] for a in task.needs))
    assert result.outcome == "not attempted", result


@pytest.mark.parametrize("key", CHECKS)
def test_check_says_not_attempted_for_a_non_callable(key: str) -> None:
    task = CHECKS[key]
    result = task.run(*(None for _ in task.needs))
    assert result.outcome == "not attempted" and "not a function or class" in result.message


def test_check_all_reports_core_and_optional_and_the_optional_has_no_points(
    solved: dict, blank: dict
) -> None:
    good = ex1.check_all(solved)
    assert good and all(result for _, result in good.rows)
    assert [(task.key, task.core, task.points) for task, _ in good.rows] == [
        ("key", True, 2),
        ("disk_cache", True, 3),
        ("cached_module", True, 3),
        ("similar", False, 0),
    ]
    assert "core: 8/8" in repr(good) and "extra-credit" not in repr(good)
    empty = ex1.check_all(blank)
    assert not empty and "core: 0/8" in repr(empty)
    assert {result.outcome for _, result in empty.rows} == {"not attempted"}
    assert "not defined" in repr(ex1.check_all({}))
    only_optional_undone = {**solved, **{k: blank[k] for k in ex1.ex.tasks["similar"].needs}}
    summary = ex1.check_all(only_optional_undone)
    assert summary and "core: 8/8" in repr(summary), "an undone optional task costs nothing"


def test_hints_come_in_levels_and_any_name_of_a_task_finds_them() -> None:
    first, second = ex1.hint("key"), ex1.hint("key")
    assert (first.level, second.level) == (1, 2) and first.text != second.text
    assert "tag_types" in ex1.hint("key", level=3).text
    for name in ("Task 2", "task 2", 2, "disk_cache"):
        assert ex1.hint(name, level=1).title.startswith("Task 2"), name
    wrong = ex1.hint("nope")
    assert wrong.level == 0 and "disk_cache" in repr(wrong) and "\n" not in repr(wrong)


# -- Run All: the release stops once at the first unfinished task; optional parts never stop it --
# (every master's stop and stderr: tests/test_run_all.py; here what this notebook prints)
@pytest.mark.sim
def test_release_run_all_stops_once_at_task_1s_graded_cell() -> None:
    with kernel(MASTER.stem, blank=SOLUTIONS, stop_at_error=True) as notebook:
        stop = notebook.stopped
        assert stop is not None and isinstance(stop.error, NotImplementedError), stop
        assert stop.cell.grade_id == "test_cache_key", stop.cell
        assert "Traceback" not in notebook.printed and "WARNING" not in notebook.printed


@pytest.mark.sim
def test_run_all_with_only_the_optional_task_undone_reaches_check_all() -> None:
    with kernel(MASTER.stem, blank={"similar_cache"}, stop_at_error=True) as notebook:
        assert notebook.stopped is None, f"stopped at {notebook.stopped}"
        assert "(the optional similarity task is not done — skipped)" in notebook.printed


@pytest.mark.sim
def test_release_run_all_with_task_2_undone_stops_at_its_graded_cell() -> None:
    blanks = {"disk_cache", "similar_cache"}
    with kernel(MASTER.stem, blank=blanks, stop_at_error=True) as notebook:
        stop = notebook.stopped
        assert stop is not None and isinstance(stop.error, NotImplementedError), stop
        assert stop.cell.grade_id == "test_disk_cache", stop.cell


# -- the given code of the master ------------------------------------------------------------------
def test_key_covers_output_types_descriptions_adapter_and_demos(solved: dict) -> None:
    CachedPredict = solved["CachedPredict"]
    keys = {}
    with dspy.context(lm=wb.sim_lm(latency=0.0)):
        for label, sig in {
            "str": "question -> answer",
            "int": "question -> answer: int",
            "list": "question -> answer: list[str]",
        }.items():
            keys[label] = CachedPredict(sig, cache=wbc.DictCache()).cache_key({"question": "q"})
        described = dspy.Signature("question -> answer").with_updated_fields(
            "answer", desc="one word"
        )
        keys["desc"] = CachedPredict(described, cache=wbc.DictCache()).cache_key({"question": "q"})
        with dspy.context(adapter=dspy.JSONAdapter()):
            keys["json adapter"] = CachedPredict(cache=wbc.DictCache()).cache_key({"question": "q"})
        demoed = CachedPredict(cache=wbc.DictCache())
        demoed.predict.demos = [dspy.Example(question="a", answer="b")]
        keys["demos"] = demoed.cache_key({"question": "q"})
        plain = CachedPredict("question -> answer", cache=wbc.DictCache())
        again = plain.cache_key({"question": "q"})
        with dspy.context(lm=wb.sim_lm(latency=0.0, temperature=0.9)):
            keys["temperature"] = plain.cache_key({"question": "q"})
    assert again == keys["str"]
    assert len(set(keys.values())) == len(keys), keys


def test_disk_cache_given_methods_invalidate_by_key_age_and_namespace(solved: dict) -> None:
    clock = wbc.ManualClock()
    cache = solved["DiskCache"](Path("root"), ttl=60, clock=clock)
    other = solved["DiskCache"](Path("root"), namespace="v2", clock=clock)
    for key in ("a", "b"):
        cache.put(key, key.upper())
    other.put("a", "v2's")
    clock.advance(100)
    cache.put("new", "fresh")
    cache.path_for("nan").write_text('{"key": "nan", "created": NaN, "value": 1}')
    cache.invalidate("missing")  # no error for a key that is not there
    cache.invalidate("new")
    assert cache.get("new") is None
    assert cache.invalidate_older_than(50) == 3  # a, b and the damaged one
    cache.put("c", "C")
    assert cache.clear() == 1 and list(cache.directory.glob("*.json")) == []
    assert other.get("a") == "v2's", "a namespace is cleared on its own"
    for bad in ("../x", "", "a/b"):
        with pytest.raises(ValueError, match="namespace"):
            solved["DiskCache"](Path("root"), namespace=bad)


# -- support code ----------------------------------------------------------------------------------
def test_fresh_cache_dir_empties_and_stays_inside_root(tmp_path: Path) -> None:
    first = wbc.fresh_cache_dir("ex1/a", root=tmp_path)
    (first / "old.json").write_text("{}")
    again = wbc.fresh_cache_dir("ex1/a", root=tmp_path)
    assert again == tmp_path / "ex1" / "a" and list(again.iterdir()) == []
    for bad in ("../escape", "/abs", "", "a/../../b", "."):
        with pytest.raises(ValueError):
            wbc.fresh_cache_dir(bad, root=tmp_path)


def test_fresh_cache_dir_uses_the_workbook_folder(tmp_path: Path) -> None:
    folder = wbc.fresh_cache_dir("ex1/env")
    assert folder.resolve() == (tmp_path / "workbook" / "ex1" / "env").resolve()
    assert not (tmp_path / ".workbook_cache").exists()


def test_zipf_stream_is_seeded_and_skewed() -> None:
    stream = wbc.zipf_stream(n=300, seed=3)
    assert stream == wbc.zipf_stream(n=300, seed=3) and stream != wbc.zipf_stream(n=300, seed=4)
    assert len(stream) == 300 and set(stream) <= set(wbc.COURSE_QUESTIONS)
    counts = [stream.count(q) for q in wbc.COURSE_QUESTIONS]
    assert counts[0] > counts[-1]  # the most popular question is asked more than the least
    with pytest.raises(ValueError):
        wbc.zipf_stream([], n=3)


class _FakeCached:
    """Counts a hit for any question seen before (a stand-in for the student's module)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.hits = 0

    def __call__(self, question: str) -> None:
        if question in self.seen:
            self.hits += 1
        self.seen.add(question)


def test_run_stream_marks_hits_and_curve_accumulates() -> None:
    records = wbc.run_stream(_FakeCached(), ["a", "b", "a", "a"])
    assert [r.hit for r in records] == [False, False, True, True]
    assert all(r.seconds >= 0 for r in records)
    assert wbc.hit_rate_curve(records) == [0.0, 0.0, 1 / 3, 0.5]
    with pytest.raises(TypeError, match="hits"):
        wbc.run_stream(object(), ["a"])


def test_time_calls() -> None:
    resets: list[int] = []
    times = wbc.time_calls(lambda: None, 5, before_each=lambda: resets.append(1))
    assert len(times) == 5 and len(resets) == 5 and all(t >= 0 for t in times)
    with pytest.raises(ValueError):
        wbc.time_calls(lambda: None, 0)


def test_progress_bar_is_quiet_in_ci_and_grading(monkeypatch, capsys) -> None:
    for name in ("CI", "NBGRADER_EXECUTION"):
        monkeypatch.delenv("CI", raising=False)
        monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
        monkeypatch.setenv(name, "1")
        assert not wbc.progress_enabled()
        assert list(wbc.progress(range(12), "x")) == list(range(12))
    assert capsys.readouterr().err == ""


def test_manual_clock_moves_forward_only() -> None:
    clock = wbc.ManualClock(10)
    clock.advance(5)
    assert clock() == 15
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            clock.advance(bad)


def test_figures_have_the_expected_axes() -> None:
    records = wbc.run_stream(_FakeCached(), ["a", "b", "a"])
    fig = wbc.stream_figure(records)
    assert [ax.get_title() for ax in fig.axes] == ["Latency per call", "Cumulative hit rate"]
    assert len(fig.axes[0].patches) == 3
    with pytest.raises(ValueError, match="no calls"):
        wbc.stream_figure([])


def test_dspy_disk_cache_switch(tmp_path: Path) -> None:
    directory = wbc.use_dspy_disk_cache("ex1/dspy_test")
    try:
        assert directory.resolve() == (tmp_path / "workbook" / "ex1" / "dspy_test").resolve()
        assert (
            dspy.cache.enable_disk_cache
            and Path(dspy.cache.disk_cache.directory).resolve() == directory.resolve()
        )
    finally:
        wbc.use_dspy_memory_cache()
    assert not dspy.cache.enable_disk_cache and dspy.cache.enable_memory_cache


def test_tag_types_keeps_apart_what_json_merges_and_ignores_order() -> None:
    from decimal import Decimal

    for left, right in [
        (["a"], ("a",)),
        ({1: "x"}, {"1": "x"}),
        (Decimal("1.10"), "1.10"),
        (datetime.date(2024, 1, 2), "2024-01-02"),
        ({"a"}, ["a"]),
        (1, True),
    ]:
        assert json.dumps(wbc.tag_types(left)) != json.dumps(wbc.tag_types(right)), (left, right)
    assert wbc.tag_types({"a": 1, "b": [2]}) == wbc.tag_types({"b": [2], "a": 1})
    assert wbc.tag_types({3, 1, 2}) == wbc.tag_types({2, 3, 1})
    json.dumps(wbc.tag_types({"x": {Decimal(1): (1, {2})}}))  # always JSON-ready


def test_check_seconds_accepts_durations_and_refuses_nonsense() -> None:
    assert wbc.check_seconds("ttl", 0) == 0.0 and wbc.check_seconds("ttl", 2.5) == 2.5
    for bad in (float("nan"), float("inf"), -1, True, "60", None, 10**400):
        with pytest.raises(ValueError, match="ttl must be a finite number of seconds"):
            wbc.check_seconds("ttl", bad)


def test_dict_cache_stores_and_can_fail_like_a_full_disk() -> None:
    cache = wbc.DictCache()
    assert cache.get("k") is None
    cache.put("k", {"answer": "a"})
    assert cache.get("k") == {"answer": "a"}
    with pytest.raises(OSError, match="full"):
        wbc.DictCache(OSError(28, "disk full")).put("k", 1)


def test_outputs_are_stored_as_json_and_come_back_typed() -> None:
    class When(dspy.Signature):
        """Answer with a date and a count."""

        question: str = dspy.InputField()
        day: datetime.date = dspy.OutputField()
        count: int = dspy.OutputField()

    prediction = dspy.Prediction(day=datetime.date(1969, 7, 20), count=3)
    stored = wbc.encode_outputs(When, prediction)
    assert json.loads(json.dumps(stored)) == {"day": "1969-07-20", "count": 3}
    back = wbc.decode_outputs(When, stored)
    assert back.day == datetime.date(1969, 7, 20) and back.count == 3
    for wrong in (None, [], {"day": "1969-07-20"}, {"day": "soon", "count": 3}):
        assert wbc.decode_outputs(When, wrong) is None, wrong
    with pytest.raises(TypeError, match="count"):
        wbc.encode_outputs(When, dspy.Prediction(day=datetime.date(2000, 1, 1), count=object()))


def test_lm_in_use_says_how_to_configure_one() -> None:
    with dspy.context(lm=None), pytest.raises(wb.BackendError, match="wb.setup"):
        wbc.lm_in_use(dspy.Predict("question -> answer"))


# -- the optional task: its self-check tells right from wrong (no graded cell to agree with) ------
OPTIONAL = {entry.name: entry for entry in optional_catalogue.OPTIONAL}


@pytest.mark.parametrize("name", OPTIONAL)
def test_the_optional_self_check_refuses_a_wrong_similarity_cache(name: str) -> None:
    entry = OPTIONAL[name]
    namespace = submit(vars(load_solutions(MASTER.stem)), entry)  # the notebook's imports only
    task = ex1.ex.tasks["similar"]
    result = task.run(*(namespace[n] for n in task.needs))
    assert (result.outcome == "correct") is entry.correct, result
