"""Exercise 1 (caching): support code, self-checks, and the master's graded cells, on the sim backend."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import dspy
import jupytext
import matplotlib
import pytest

matplotlib.use("Agg")

from dspy_workbook import caching as wbc  # noqa: E402
from dspy_workbook.checks import ex1  # noqa: E402
from answer_key import MASTERS, load_solutions  # noqa: E402 (tools/ is on sys.path: see conftest)

MASTER = MASTERS / "01_caching.py"
SOLUTIONS = ("cache_key", "atomic_io", "disk_cache", "cached_module", "similar_cache")


# -- the master, as namespaces: solved and blank --------------------------------------------------
def _cells() -> list:
    return jupytext.read(MASTER, fmt="py:percent").cells


def _nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def _namespace(blank: bool) -> dict[str, Any]:
    """The master's imports and solution cells (blank: as the release has them, stubs that raise)."""
    return vars(load_solutions(MASTER.stem, *SOLUTIONS, blank=blank))


@pytest.fixture(scope="module")
def solved() -> dict[str, Any]:
    return _namespace(blank=False)


@pytest.fixture(scope="module")
def blank() -> dict[str, Any]:
    return _namespace(blank=True)


def _graded_cells() -> list[tuple[str, str]]:
    return [(_nbgrader(c)["grade_id"], c.source) for c in _cells() if _nbgrader(c).get("grade")]


GRADED = _graded_cells()


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written to .workbook_cache/ lands in a temp folder


# -- graded cells: full marks for the solution, zero for the blank --------------------------------
@pytest.mark.parametrize("grade_id, source", GRADED, ids=[g for g, _ in GRADED])
def test_graded_cell_passes_on_solution(grade_id: str, source: str, solved: dict) -> None:
    exec(source, dict(solved))


@pytest.mark.parametrize("grade_id, source", GRADED, ids=[g for g, _ in GRADED])
def test_graded_cell_fails_on_blank(grade_id: str, source: str, blank: dict) -> None:
    with pytest.raises(NotImplementedError):
        exec(source, dict(blank))


def test_master_has_the_planned_graded_cells() -> None:
    assert [g for g, _ in GRADED] == ["test_cache_key", "test_atomic_io", "test_disk_cache", "test_invalidation",
                                      "test_cached_module", "test_similar_cache"]


# -- self-checks: correct on the solution, not attempted on the stub -------------------------------
CHECKS = {
    "check_cache_key": ("make_cache_key",),
    "check_atomic_io": ("write_json_atomic", "read_json_entry"),
    "check_disk_cache": ("DiskCache",),
    "check_invalidation": ("DiskCache",),
    "check_cached_module": ("CachedPredict", "DiskCache"),
    "check_similar_cache": ("SimilarQuestionCache", "normalize_question"),
}


@pytest.mark.parametrize("name", CHECKS)
def test_check_is_correct_on_solution(name: str, solved: dict) -> None:
    result = getattr(ex1, name)(*(solved[a] for a in CHECKS[name]))
    assert result.outcome == "correct", result


@pytest.mark.parametrize("name", CHECKS)
def test_check_is_not_attempted_on_stub(name: str, blank: dict) -> None:
    result = getattr(ex1, name)(*(blank[a] for a in CHECKS[name]))
    assert result.outcome == "not attempted", result


# -- self-checks: typical wrong answers get a specific "incorrect" ---------------------------------
def _incorrect(result, *phrases: str) -> None:
    assert result.outcome == "incorrect", result
    for phrase in phrases:
        assert phrase in result.message, result.message


def test_inputs_only_md5_key_is_incorrect() -> None:
    def md5_of_inputs(inputs, *, signature, model, lm_settings=None):
        return hashlib.md5(json.dumps(inputs, sort_keys=True).encode()).hexdigest()

    _incorrect(ex1.check_cache_key(md5_of_inputs), "`model`")


def test_unsorted_key_is_incorrect() -> None:
    def unsorted(inputs, *, signature, model, lm_settings=None):
        return hashlib.sha256(json.dumps([inputs, signature, model, lm_settings]).encode()).hexdigest()

    _incorrect(ex1.check_cache_key(unsorted), "sort_keys")


def test_key_without_return_is_incorrect() -> None:
    _incorrect(ex1.check_cache_key(lambda inputs, **kw: None), "forget `return`")


def test_naive_write_and_trusting_read_are_incorrect(solved: dict) -> None:
    def trusting_read(path):
        return json.loads(Path(path).read_text())

    _incorrect(ex1.check_atomic_io(solved["write_json_atomic"], trusting_read), "raised", "miss")

    def direct_write(path, data):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as handle:
            json.dump(data, handle)

    _incorrect(ex1.check_atomic_io(direct_write, solved["read_json_entry"]), "os.replace")


def test_temp_file_in_another_folder_is_incorrect(solved: dict, tmp_path: Path) -> None:
    import os

    def replace_from_elsewhere(path, data):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmp_path / "elsewhere.tmp"
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)

    _incorrect(ex1.check_atomic_io(replace_from_elsewhere, solved["read_json_entry"]), "same", "folder")


def test_cache_crashing_on_corrupt_file_is_incorrect(solved: dict) -> None:
    class CrashingCache(solved["DiskCache"]):
        def get(self, key):
            entry = json.loads(self.path_for(key).read_text()) if self.path_for(key).exists() else None
            if entry is None:
                self.misses += 1
                return None
            self.hits += 1
            return entry["value"]

    _incorrect(ex1.check_disk_cache(CrashingCache), "truncated")


def test_cache_that_never_expires_is_incorrect(solved: dict) -> None:
    class NoTTL(solved["DiskCache"]):
        def _expired(self, entry):
            return False

    _incorrect(ex1.check_invalidation(NoTTL), "61 s old")


def test_module_dividing_by_zero_is_incorrect(solved: dict) -> None:
    class Divides(solved["CachedPredict"]):
        @property
        def hit_rate(self):
            return self.hits / (self.hits + self.misses)

    _incorrect(ex1.check_cached_module(Divides, solved["DiskCache"]), "ZeroDivisionError")


def test_module_key_ignoring_settings_is_incorrect(solved: dict) -> None:
    make_key = solved["make_cache_key"]

    class InputsOnly(solved["CachedPredict"]):
        def cache_key(self, inputs):
            return make_key(inputs, signature="", model="")

    _incorrect(ex1.check_cached_module(InputsOnly, solved["DiskCache"]), "temperature")


def test_loose_similarity_threshold_is_incorrect(solved: dict) -> None:
    class Loose(solved["SimilarQuestionCache"]):
        def __init__(self, threshold: float = 0.5):
            super().__init__(threshold)

    _incorrect(ex1.check_similar_cache(Loose, solved["normalize_question"]), "Spain")


def test_check_rejects_a_non_callable() -> None:
    _incorrect(ex1.check_cache_key("make_cache_key"), "function or class")


# -- support code ----------------------------------------------------------------------------------
def test_fresh_cache_dir_empties_and_stays_inside_root(tmp_path: Path) -> None:
    first = wbc.fresh_cache_dir("ex1/a", root=tmp_path)
    (first / "old.json").write_text("{}")
    again = wbc.fresh_cache_dir("ex1/a", root=tmp_path)
    assert again == tmp_path / "ex1" / "a" and list(again.iterdir()) == []
    for bad in ("../escape", "/abs", "", "a/../../b"):
        with pytest.raises(ValueError):
            wbc.fresh_cache_dir(bad, root=tmp_path)


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


def test_timing_helpers() -> None:
    resets: list[int] = []
    times = wbc.time_calls(lambda: None, 5, before_each=lambda: resets.append(1))
    assert len(times) == 5 and len(resets) == 5
    assert wbc.p50([3.0, 1.0, 2.0]) == 2.0
    rows = wbc.latency_table({"x": [0.001, 0.002, 0.003]})
    assert rows == [{"what": "x", "calls": 3, "p50 ms": 2.0, "p90 ms": 3.0}]
    with pytest.raises(ValueError):
        wbc.p50([])
    with pytest.raises(ValueError):
        wbc.time_calls(lambda: None, 0)


def test_manual_clock_moves_forward_only() -> None:
    clock = wbc.ManualClock(10)
    clock.advance(5)
    assert clock() == 15
    with pytest.raises(ValueError):
        clock.advance(-1)


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
        assert directory.resolve() == (tmp_path / ".workbook_cache" / "ex1" / "dspy_test").resolve()
        assert dspy.cache.enable_disk_cache and Path(dspy.cache.disk_cache.directory).resolve() == directory.resolve()
    finally:
        wbc.use_dspy_memory_cache()
    assert not dspy.cache.enable_disk_cache and dspy.cache.enable_memory_cache

