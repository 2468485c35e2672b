"""Exercise 4 (performance): support code, self-checks, and the master's graded cells, on sim.

Exercise 1's answer key (its `DiskCache`) is loaded from its master with `load_solutions`, so
the "cache for repeated questions" technique is tested with the real thing, never a copy.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import tracemalloc
from pathlib import Path
from typing import Any

import dspy
import jupytext
import matplotlib
import pytest

matplotlib.use("Agg")

from answer_key import MASTERS, load_solutions  # noqa: E402 (tools/ is on sys.path: see conftest)

import dspy_workbook as wb  # noqa: E402
from dspy_workbook import performance as perf  # noqa: E402
from dspy_workbook.checks import ex4  # noqa: E402

MASTER = MASTERS / "04_optimization.py"
SOLUTIONS = ("timing", "profiler", "optimized", "regression")
DEFINITIONS = ("QA", "NaiveQA")


# -- the master, as namespaces: solved and blank --------------------------------------------------
def _cells() -> list:
    return jupytext.read(MASTER, fmt="py:percent").cells


def _nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def _namespace(blank: bool) -> dict[str, Any]:
    return vars(load_solutions(MASTER.stem, *SOLUTIONS, definitions=DEFINITIONS, blank=blank))


@pytest.fixture(scope="module")
def solved() -> dict[str, Any]:
    return _namespace(blank=False)


@pytest.fixture(scope="module")
def blank() -> dict[str, Any]:
    return _namespace(blank=True)


GRADED = [(_nbgrader(c)["grade_id"], c.source) for c in _cells() if _nbgrader(c).get("grade")]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written to .workbook_cache/ lands in a temp folder
    monkeypatch.setenv("WORKBOOK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WORKBOOK_PROGRESS", "off")
    yield
    if tracemalloc.is_tracing():  # a failed profiler test must not leave tracing on for others
        tracemalloc.stop()


def test_master_has_the_planned_graded_cells() -> None:
    assert [g for g, _ in GRADED] == [
        "test_timing",
        "test_profiler",
        "test_optimized",
        "test_regression",
    ]


@pytest.mark.parametrize("grade_id, source", GRADED, ids=[g for g, _ in GRADED])
def test_graded_cell_passes_on_solution(grade_id: str, source: str, solved: dict) -> None:
    with dspy.context(lm=wb.sim_lm(latency=0.01)):
        exec(source, dict(solved))


@pytest.mark.parametrize("grade_id, source", GRADED, ids=[g for g, _ in GRADED])
def test_graded_cell_fails_on_blank(grade_id: str, source: str, blank: dict) -> None:
    with dspy.context(lm=wb.sim_lm(latency=0.01)), pytest.raises(NotImplementedError):
        exec(source, dict(blank))


# -- self-checks: correct on the solution, not attempted on the stub -------------------------------
CHECKS = {
    "check_timing": ("time_call",),
    "check_profiler": ("Profiler",),
    "check_optimized": ("OptimizedQA", "NaiveQA"),
    "check_regression": ("compare_to_baseline",),
}


@pytest.mark.parametrize("name", CHECKS)
def test_check_is_correct_on_solution(name: str, solved: dict) -> None:
    result = getattr(ex4, name)(*(solved[a] for a in CHECKS[name]))
    assert result.outcome == "correct", result


@pytest.mark.parametrize("name", CHECKS)
def test_check_is_not_attempted_on_stub(name: str, blank: dict) -> None:
    result = getattr(ex4, name)(*(blank[a] for a in CHECKS[name]))
    assert result.outcome == "not attempted", result


def test_check_all_sees_every_task_and_hints_escalate(solved: dict) -> None:
    summary = ex4.check_all(solved)
    assert [task.key for task, _ in summary.rows] == [
        "timing",
        "profiler",
        "optimized",
        "regression",
    ]
    assert bool(summary), summary
    levels = [ex4.hint("profiler").level for _ in range(4)]
    assert levels == [1, 2, 3, 3]


# -- self-checks: typical wrong answers get a specific "incorrect" ---------------------------------
def _incorrect(result, *phrases: str) -> None:
    assert result.outcome == "incorrect", result
    for phrase in phrases:
        assert phrase in result.message, result.message


def test_timing_that_includes_the_first_call_is_incorrect() -> None:
    def no_warmup(fn, *, repeat=5, warmup=1):
        if repeat < 1 or warmup < 0:
            raise ValueError("bad")
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        return perf.Timing(samples=samples, machine=perf.machine_info())

    _incorrect(ex4.check_timing(no_warmup), "should run 5 times")


class SeedProfiler:
    """The seed's profiler as a context manager: starts and stops tracemalloc unconditionally."""

    def __init__(self) -> None:
        self.records: list[perf.ProfileRecord] = []
        self._open: list = []

    @contextlib.contextmanager
    def profile(self, name: str):
        tracemalloc.start()
        rss, start = perf.rss_bytes(), time.perf_counter()
        try:
            yield
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            self.records.append(
                perf.ProfileRecord(
                    name, time.perf_counter() - start, peak, rss, perf.rss_bytes(), 0
                )
            )


def test_the_seeds_unconditional_start_stop_is_incorrect() -> None:
    _incorrect(ex4.check_profiler(SeedProfiler), "only stop tracing if this profile started it")


def test_a_profiler_that_loses_the_outer_peak_is_incorrect(solved: dict) -> None:
    class ResetsPeak(SeedProfiler):
        @contextlib.contextmanager
        def profile(self, name: str):
            started = not tracemalloc.is_tracing()
            if started:
                tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            depth = len(self._open)
            self._open.append(1)
            rss, start = perf.rss_bytes(), time.perf_counter()
            try:
                yield
            finally:
                peak = tracemalloc.get_traced_memory()[1]
                self._open.pop()
                if started:
                    tracemalloc.stop()
                self.records.append(
                    perf.ProfileRecord(
                        name, time.perf_counter() - start, peak - base, rss, perf.rss_bytes(), depth
                    )
                )

    _incorrect(ex4.check_profiler(ResetsPeak), "3 MB + 6 MB", "reset_peak()")


def test_an_optimisation_that_changes_the_prompt_is_incorrect(solved: dict) -> None:
    class Shorter(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.respond = dspy.Predict("question -> answer", cache=False)

        def forward(self, question: str):
            return self.respond(question=question)

    _incorrect(ex4.check_optimized(Shorter, solved["NaiveQA"]), "model was called 9 times")


def test_a_memo_without_the_model_in_its_key_is_incorrect(solved: dict) -> None:
    QA = solved["QA"]

    class ModelBlind(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.respond = dspy.ChainOfThought(QA, cache=False)
            self.answers: dict = {}

        def forward(self, question: str):
            if question not in self.answers:
                self.answers[question] = self.respond(question=question)
            return dspy.Prediction(**self.answers[question])

    _incorrect(ex4.check_optimized(ModelBlind, solved["NaiveQA"]), "model's name in the key")


def test_a_guard_that_flags_any_slower_median_is_incorrect() -> None:
    def jumpy(baseline, current, *, noise_factor=2.0, min_slowdown=0.05):
        return perf.RegressionCheck(
            baseline.median, current.median, 0.0, current.median > baseline.median
        )

    _incorrect(ex4.check_regression(jumpy), "inside the noise")


# -- the optimised program against the naive one, and Exercise 1's cache, on the simulated LM ------
def test_optimised_gives_the_same_answers_with_fewer_calls_and_tokens(solved: dict) -> None:
    questions = perf.workload(distinct=6, repeats=4)
    sim = wb.sim_lm(latency=0.0)
    with dspy.context(lm=sim):
        naive = perf.run_workload(solved["NaiveQA"](), questions, label="naive", lm=sim)
        fast = perf.run_workload(solved["OptimizedQA"](), questions, label="optimised", lm=sim)
    assert fast.answers == naive.answers
    assert (naive.usage.calls, fast.usage.calls, sim.engine.stats.calls) == (24, 6, 30)
    assert 0 < fast.usage.tokens < naive.usage.tokens
    assert perf.agreement(naive.answers, fast.answers) == 1.0
    table = perf.compare_runs({"naive": [naive], "optimised": [fast]})
    assert table.loc["optimised", "same answers"] == "24/24"
    assert list(table["model calls"]) == [24, 6]


def test_exercise1_disk_cache_is_a_drop_in_technique(tmp_path: Path) -> None:
    key = load_solutions("01_caching", "cache_key", "atomic_io", "disk_cache", "cached_module")
    questions = perf.workload(distinct=4, repeats=3)
    sim = wb.sim_lm(latency=0.0)
    with dspy.context(lm=sim):
        plain = perf.run_workload(
            dspy.Predict("question -> answer", cache=False), questions, lm=sim
        )
        cached = key.CachedPredict(cache=key.DiskCache(tmp_path / "ex1"))
        run = perf.run_workload(cached, questions, lm=sim)
    assert run.answers == plain.answers
    assert (plain.usage.calls, run.usage.calls) == (12, 4)


def test_run_workload_records_errors_only_when_asked() -> None:
    def broken(question: str):
        raise RuntimeError("parse failed")

    with dspy.context(lm=wb.sim_lm(latency=0.0)):
        run = perf.run_workload(broken, ["a", "b"], record_errors=True)
        assert run.answers == ("⚠ RuntimeError", "⚠ RuntimeError")
        with pytest.raises(RuntimeError):
            perf.run_workload(broken, ["a"])
        with pytest.raises(TypeError, match="answer"):
            perf.run_workload(lambda question: 42, ["a"])


def test_workload_is_fixed_and_validates() -> None:
    first = perf.workload(distinct=5, repeats=3)
    assert first == perf.workload(distinct=5, repeats=3) and len(first) == 15
    assert all(first.count(q) == 3 for q in set(first)) and len(set(first)) == 5
    for bad in ({"distinct": 0}, {"repeats": 0}, {"distinct": 999}):
        with pytest.raises(ValueError):
            perf.workload(**bad)


# -- timings, baselines, machine ------------------------------------------------------------
def test_timing_summary_and_round_trip(tmp_path: Path) -> None:
    timing = perf.Timing(
        samples=[0.3, 0.1, 0.2], warmup=[1.0], machine=perf.machine_info(), label="x"
    )
    assert timing.median == 0.2 and timing.spread == pytest.approx(0.28 - 0.2)
    path = perf.save_baseline(tmp_path / "deep" / "baseline.json", timing)
    assert perf.load_baseline(path) == timing
    assert sorted(p.name for p in path.parent.iterdir()) == ["baseline.json"]
    with pytest.raises(ValueError):
        perf.Timing(samples=[])


def test_a_bad_baseline_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(perf.BaselineError, match="save one first"):
        perf.load_baseline(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    for content in ("{not json", json.dumps({"samples": []}), json.dumps([1, 2])):
        broken.write_text(content)
        with pytest.raises(perf.BaselineError, match="delete it"):
            perf.load_baseline(broken)


def test_machine_info_reads_this_machine_and_the_lm_threads() -> None:
    info = perf.machine_info(n_threads=3)
    assert info.cpu and info.logical_cores >= 1 and info.n_threads == 3
    assert perf.MachineInfo.from_dict(info.as_dict()) == info
    assert info.same_hardware(info)
    assert not info.same_hardware(perf.MachineInfo.from_dict({**info.as_dict(), "n_threads": 1}))
    assert perf.machine_info(wb.sim_lm()).n_threads is None  # a remote provider has no threads
    assert perf.rss_bytes() > 10 * perf.MB


def test_progress_is_quiet_in_ci_and_grading(monkeypatch, capsys) -> None:
    for name in ("CI", "NBGRADER_EXECUTION"):
        monkeypatch.delenv("CI", raising=False)
        monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
        monkeypatch.setenv(name, "1")
        assert list(perf.progress(range(3), desc="loop")) == [0, 1, 2]
    assert capsys.readouterr().out == "" and capsys.readouterr().err == ""


def test_profile_split_accounts_for_the_engine_on_sim() -> None:
    program = dspy.ChainOfThought("question -> answer", cache=False)
    with dspy.context(lm=wb.sim_lm(latency=0.03)):
        program(question="warm")
        run = perf.profile_calls(lambda: program(question="q"), calls=3)
    split = perf.time_split(run)
    engine = split["LM engine (model + waiting for it)"]
    assert 0.025 < engine <= run.seconds / 3
    assert split["DSPy: prompt formatting"] > 0 and split["DSPy: output parsing"] > 0
    assert sum(split.values()) == pytest.approx(run.seconds / 3, rel=1e-6)
    top = perf.top_functions(run, 5)
    assert len(top) == 5 and "sleep" in top.loc[0, "function"]


# -- llama.cpp: quantization and probing (the embedded model) ------------------------------
@pytest.mark.local_lm
def test_quantize_to_q4_0_and_refuse_a_type_that_needs_an_imatrix(tmp_path: Path) -> None:
    made = perf.quantize_model("Q4_0", dest_dir=tmp_path)
    assert made.ok and made.path.parent == tmp_path and made.size_bytes == made.path.stat().st_size
    assert made.size_bytes < perf.shipped_model_path().stat().st_size
    refused = perf.quantize_model("IQ2_XS", dest_dir=tmp_path)
    assert not refused.ok and "imatrix" in refused.error
    assert not perf.quantize_model("NOT_A_TYPE", dest_dir=tmp_path).ok
    assert sorted(p.name for p in tmp_path.iterdir()) == [made.path.name]


@pytest.mark.local_lm
def test_probe_measures_a_model_in_a_fresh_process() -> None:
    calls = [("Answer in a few words.", "What is the capital of France?")] * 2
    probe = perf.probe_model(perf.shipped_model_path(), calls, threads=1, max_tokens=8)
    assert len(probe.answers) == 2 and probe.answers[0] == probe.answers[1] and probe.answers[0]
    assert probe.load_s > 0 and probe.tokens_per_second > 0
    assert 50 * perf.MB < probe.rss_loaded <= probe.rss_after + 5 * perf.MB
    row = perf.quantization_row("Q4_1", None, probe, probe)
    assert row["agreement %"] == 100 and row["size MiB"] > 50


def test_probe_reports_a_file_llama_cpp_cannot_load(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"GGUF" + os.urandom(64))
    with pytest.raises(wb.BackendError, match="not-a-model"):
        perf.probe_model(bogus, [("s", "u")], timeout=120)
