"""Exercise 1 (caching): the master's graded cells and self-checks, and the support code.

Wrong submissions graded against the hidden tests live in `test_ex1_grading.py`; the cache's
defences against hostile input (paths, damaged entries, killed writers) in `test_ex1_hardening.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import dspy
import jupytext
import matplotlib
import pytest

matplotlib.use("Agg")

from answer_key import MASTERS, load_solutions  # noqa: E402 (tools/ is on sys.path: see conftest)

from dspy_workbook import caching as wbc  # noqa: E402
from dspy_workbook.checks import ex1  # noqa: E402

MASTER = MASTERS / "01_caching.py"
SOLUTIONS = ("cache_key", "atomic_io", "disk_cache", "expiry", "cached_module", "similar_cache")


# -- the master, as namespaces: solved and blank --------------------------------------------------
def _cells() -> list:
    return jupytext.read(MASTER, fmt="py:percent").cells


def _nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def _namespace(blank: bool) -> dict[str, Any]:
    """The master's imports and solution cells (blank: as in the release, stubs that raise)."""
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


def run_cell(source: str, namespace: dict) -> None:
    """Run a cell's code as the notebook does (not under this file's `from __future__` flags)."""
    exec(compile(source, "<graded cell>", "exec", dont_inherit=True), namespace)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written to .workbook_cache/ lands in a temp folder
    monkeypatch.setenv("WORKBOOK_CACHE_DIR", str(tmp_path / "workbook"))


# -- graded cells: full marks for the solution, zero for the blank --------------------------------
@pytest.mark.parametrize("grade_id, source", GRADED, ids=[g for g, _ in GRADED])
def test_graded_cell_passes_on_solution(grade_id: str, source: str, solved: dict) -> None:
    run_cell(source, dict(solved))


@pytest.mark.parametrize("grade_id, source", GRADED, ids=[g for g, _ in GRADED])
def test_graded_cell_fails_on_blank(grade_id: str, source: str, blank: dict) -> None:
    with pytest.raises(NotImplementedError):
        run_cell(source, dict(blank))


def test_master_has_one_graded_cell_per_task() -> None:
    assert [g for g, _ in GRADED] == [
        "test_cache_key",
        "test_atomic_io",
        "test_disk_cache",
        "test_expiry",
        "test_cached_module",
        "test_similar_cache",
    ]
    solution_ids = [_nbgrader(c)["grade_id"] for c in _cells() if _nbgrader(c).get("solution")]
    assert solution_ids == list(SOLUTIONS), "one solution cell per task, in task order"


def test_master_spells_out_no_steps_and_offers_hints() -> None:
    text = MASTER.read_text()
    assert "# Steps:" not in text
    assert "ex1.hint(" in text and "ex1.check_all()" in text
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


def test_one_task_cannot_cost_another_tasks_points(blank: dict) -> None:
    """Tasks 4 and 5 get full marks with Tasks 1-3 still blank (own cache and key)."""
    student = dict(blank)
    solutions = {
        _nbgrader(c)["grade_id"]: c.source for c in _cells() if _nbgrader(c).get("solution")
    }
    for grade_id in ("expiry", "cached_module"):
        run_cell(solutions[grade_id], student)
    sources = dict(GRADED)
    run_cell(sources["test_expiry"], student)
    run_cell(sources["test_cached_module"], student)
    with pytest.raises(NotImplementedError):
        run_cell(sources["test_disk_cache"], student)


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


def test_check_all_reports_core_and_optional(solved: dict, blank: dict) -> None:
    good = ex1.check_all(solved)
    assert good and all(result for _, result in good.rows)
    assert [(task.key, task.core, task.points) for task, _ in good.rows] == [
        ("key", True, 2),
        ("atomic_io", True, 2),
        ("disk_cache", True, 2),
        ("expiry", True, 2),
        ("cached_module", True, 3),
        ("similar", False, 2),
    ]
    assert "core: 11/11" in repr(good)
    empty = ex1.check_all(blank)
    assert not empty and "core: 0/11" in repr(empty)
    assert {result.outcome for _, result in empty.rows} == {"not attempted"}
    assert "not defined" in repr(ex1.check_all({}))


def test_hints_come_in_levels() -> None:
    first, second = ex1.hint("key"), ex1.hint("key")
    assert (first.level, second.level) == (1, 2) and first.text != second.text
    assert "tag_types" in ex1.hint("key", level=3).text
    with pytest.raises(KeyError, match="tasks are"):
        ex1.hint("nope")


# -- self-checks: typical wrong answers get a specific "incorrect" ---------------------------------
def _incorrect(result, *phrases: str) -> None:
    assert result.outcome == "incorrect", result
    for phrase in phrases:
        assert phrase in result.message, result.message


def test_inputs_only_md5_key_is_incorrect() -> None:
    def md5_of_inputs(inputs, *, signature, model, lm_settings=None):
        return hashlib.md5(json.dumps(inputs, sort_keys=True).encode()).hexdigest()

    _incorrect(ex1.check_cache_key(md5_of_inputs), "64 lowercase hex")


def test_unsorted_key_is_incorrect() -> None:
    def unsorted(inputs, *, signature, model, lm_settings=None):
        return hashlib.sha256(
            json.dumps([inputs, signature, model, lm_settings]).encode()
        ).hexdigest()

    _incorrect(ex1.check_cache_key(unsorted), "sort_keys")


def test_key_that_merges_types_is_incorrect() -> None:
    def default_str(inputs, *, signature, model, lm_settings=None):
        payload = {"i": inputs, "s": signature, "m": model, "l": lm_settings or {}}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    _incorrect(ex1.check_cache_key(default_str), "list and a tuple")


def test_key_without_return_is_incorrect() -> None:
    _incorrect(ex1.check_cache_key(lambda inputs, **kw: None), "forget `return`")


def test_naive_write_and_trusting_read_are_incorrect(solved: dict) -> None:
    def trusting_read(path):
        return json.loads(Path(path).read_text())

    _incorrect(ex1.check_atomic_io(solved["write_json_atomic"], trusting_read), "raised", "miss")

    def no_recursion_guard(path):
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    _incorrect(
        ex1.check_atomic_io(solved["write_json_atomic"], no_recursion_guard), "RecursionError"
    )

    def direct_write(path, data):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as handle:
            json.dump(data, handle)

    _incorrect(ex1.check_atomic_io(direct_write, solved["read_json_entry"]), "os.replace")


def test_temp_file_in_another_folder_or_without_suffix_is_incorrect(
    solved: dict, tmp_path: Path
) -> None:
    def replace_from_elsewhere(path, data):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmp_path / "elsewhere.tmp"
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)

    _incorrect(
        ex1.check_atomic_io(replace_from_elsewhere, solved["read_json_entry"]),
        "same folder",
        "EXDEV",
    )

    def no_suffix(path, data):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)

    _incorrect(ex1.check_atomic_io(no_suffix, solved["read_json_entry"]), "`.tmp`")


def test_cache_crashing_on_corrupt_file_is_incorrect(solved: dict) -> None:
    class CrashingCache(solved["DiskCache"]):
        def get(self, key):
            entry = (
                json.loads(self.path_for(key).read_text()) if self.path_for(key).exists() else None
            )
            if entry is None:
                self.misses += 1
                return None
            self.hits += 1
            return entry["value"]

    _incorrect(ex1.check_disk_cache(CrashingCache), "truncated")


def test_cache_ignoring_is_stale_is_incorrect(solved: dict) -> None:
    read = solved["read_json_entry"]

    class IgnoresStale(solved["DiskCache"]):
        def get(self, key):
            entry = read(self.path_for(key))
            if entry is None or "value" not in entry:
                self.misses += 1
                return None
            self.hits += 1
            return entry["value"]

    _incorrect(ex1.check_disk_cache(IgnoresStale), "is_stale")


def test_naive_expiry_is_incorrect(solved: dict) -> None:
    def naive_age(entry, now):
        created = entry.get("created")
        return now - created if isinstance(created, int | float) else None

    _incorrect(ex1.check_expiry(solved["ExpiringCache"], naive_age), "nan")

    class NoOrphans(solved["ExpiringCache"]):
        def clear(self):
            removed = 0
            for path in self.directory.glob("*.json"):
                path.unlink()
                removed += 1
            return removed

    _incorrect(ex1.check_expiry(NoOrphans, solved["entry_age"]), "remove_orphans")


def test_module_dividing_by_zero_is_incorrect(solved: dict) -> None:
    class Divides(solved["CachedPredict"]):
        @property
        def hit_rate(self):
            return self.hits / (self.hits + self.misses)

    _incorrect(ex1.check_cached_module(Divides), "ZeroDivisionError")


def test_module_losing_the_answer_or_its_type_is_incorrect(solved: dict) -> None:
    class Untyped(solved["CachedPredict"]):
        def forward(self, **inputs):
            key = self.cache_key(inputs)
            stored = self.cache.get(key)
            if stored is not None:
                self.hits += 1
                return dspy.Prediction(**stored)
            self.misses += 1
            prediction = self.predict(**inputs)
            self.cache.put(key, self.encode(prediction))
            return prediction

    _incorrect(ex1.check_cached_module(Untyped), "decode")

    class Unguarded(Untyped):
        def forward(self, **inputs):
            key = self.cache_key(inputs)
            cached = self.decode(self.cache.get(key))
            if cached is not None:
                self.hits += 1
                return cached
            self.misses += 1
            prediction = self.predict(**inputs)
            self.cache.put(key, self.encode(prediction))
            return prediction

    _incorrect(ex1.check_cached_module(Unguarded), "No space left")


def test_naive_similarity_is_incorrect(solved: dict) -> None:
    import re

    def naive_normalize(text):
        return " ".join(re.findall(r"[a-z0-9]+", text.lower()))

    _incorrect(
        ex1.check_similar_cache(
            solved["SimilarQuestionCache"], naive_normalize, solved["question_similarity"]
        ),
        "normalize_question",
    )

    class Loose(solved["SimilarQuestionCache"]):
        def __init__(self, threshold: float = 0.2):
            super().__init__(threshold)

    _incorrect(
        ex1.check_similar_cache(Loose, solved["normalize_question"], solved["question_similarity"]),
        "Spain",
    )


def test_check_rejects_a_non_callable() -> None:
    _incorrect(ex1.check_cache_key("make_cache_key"), "function or class")


# -- the given code of the master ------------------------------------------------------------------
def test_key_covers_output_types_descriptions_adapter_and_demos(solved: dict) -> None:
    CachedPredict, cache = solved["CachedPredict"], {}

    class Store:
        get, put = cache.get, cache.__setitem__

    keys = {}
    with dspy.context(lm=__import__("dspy_workbook").sim_lm(latency=0.0)):
        for label, sig in {
            "str": "question -> answer",
            "int": "question -> answer: int",
            "list": "question -> answer: list[str]",
        }.items():
            keys[label] = CachedPredict(sig, cache=Store()).cache_key({"question": "q"})
        described = dspy.Signature("question -> answer").with_updated_fields(
            "answer", desc="one word"
        )
        keys["desc"] = CachedPredict(described, cache=Store()).cache_key({"question": "q"})
        with dspy.context(adapter=dspy.JSONAdapter()):
            keys["json adapter"] = CachedPredict(cache=Store()).cache_key({"question": "q"})
        demoed = CachedPredict(cache=Store())
        demoed.predict.demos = [dspy.Example(question="a", answer="b")]
        keys["demos"] = demoed.cache_key({"question": "q"})
        again = CachedPredict("question -> answer", cache=Store()).cache_key({"question": "q"})
    assert again == keys["str"]
    assert len(set(keys.values())) == len(keys), keys


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
