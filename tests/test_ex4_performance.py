"""Exercise 4 (performance): support code, self-checks, and the master's graded cells, on sim.

The answers are loaded from the master with `load_solutions`, never copied. The catalogue of
right and wrong answers to the graded tasks runs through `tests/test_agreement.py`; the optional
regression guard has no graded cell, so its catalogue (`OPTIONAL`) runs through its self-check
here.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import dspy
import matplotlib
import pytest

matplotlib.use("Agg")

import dspy_workbook as wb  # noqa: E402
from dspy_workbook import performance as perf  # noqa: E402
from dspy_workbook.checks import ex4  # noqa: E402
from tests._kit import MASTERS, code_cells, kernel, submit  # noqa: E402
from tests.catalogue import ex4_optimization as catalogue  # noqa: E402
from tools.answer_key import load_solutions  # noqa: E402

MASTER = MASTERS / "04_optimization.py"
SOLUTIONS = ("profiler", "overlap", "regression")
DEFINITIONS = ("NotesQA",)


# -- the master's answers, as namespaces: solved and blank (the release's stubs) ------------------
def _namespace(blank: bool) -> dict[str, Any]:
    return vars(load_solutions(MASTER.stem, *SOLUTIONS, definitions=DEFINITIONS, blank=blank))


@pytest.fixture(scope="module")
def solved() -> dict[str, Any]:
    return _namespace(blank=False)


@pytest.fixture(scope="module")
def blank() -> dict[str, Any]:
    return _namespace(blank=True)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written to .workbook_cache/ lands in a temp folder
    monkeypatch.setenv("WORKBOOK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WORKBOOK_PROGRESS", "off")
    yield
    if tracemalloc.is_tracing():  # a failed profiler test must not leave tracing on for others
        tracemalloc.stop()


# Graded cells: full marks and ✅ for the master's solution, 0 and 💡 for the stub, and what each
# catalogue entry deserves: tests/test_agreement.py (which also requires a message on every hidden
# assert); each task graded with the other blank: tests/test_graded_cells.py.
GRADED = [c for c in code_cells(MASTER.stem) if c.is_graded]


def test_master_has_the_planned_graded_cells() -> None:
    assert [c.grade_id for c in GRADED] == ["test_profiler", "test_overlap"]
    assert [c.nbgrader.get("points") for c in GRADED] == [3, 3]


@pytest.mark.sim
def test_graded_cell_fails_on_blank() -> None:
    with kernel(MASTER.stem, blank=SOLUTIONS, through=GRADED[-1].grade_id) as notebook:
        for cell in GRADED:
            error = notebook.ran(cell.grade_id).error
            assert isinstance(error, NotImplementedError), f"{cell.grade_id}: {error!r}"


# -- self-checks: correct on the solution, not attempted on the stub -------------------------------
CHECKS = {
    "check_profiler": ("Profiler",),
    "check_overlap": ("FastNotesQA", "NotesQA"),
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


def test_a_non_callable_answer_is_not_attempted(solved: dict) -> None:
    assert ex4.check_profiler(None).outcome == "not attempted"
    assert ex4.check_overlap(..., solved["NotesQA"]).outcome == "not attempted"


def test_check_all_sees_every_task_core_and_optional(solved: dict) -> None:
    summary = ex4.check_all(solved)
    assert [(task.key, task.core, task.points) for task, _ in summary.rows] == [
        ("profiler", True, 3),
        ("overlap", True, 3),
        ("regression", False, 0),
    ]
    assert bool(summary), summary
    levels = [ex4.hint("profiler").level for _ in range(4)]
    assert levels == [1, 2, 3, 3]


def test_the_profiler_check_refuses_to_run_under_someone_elses_tracing(solved: dict) -> None:
    tracemalloc.start()
    try:
        result = ex4.check_profiler(solved["Profiler"])
    finally:
        tracemalloc.stop()
    assert result.outcome == "incorrect" and "tracemalloc.stop()" in result.message


# -- the optional regression guard: its catalogue through its self-check ---------------------
@pytest.mark.parametrize("entry", catalogue.OPTIONAL, ids=[e.name for e in catalogue.OPTIONAL])
def test_regression_guard_catalogue(entry, solved: dict) -> None:
    namespace = submit(dict(solved), entry)
    result = ex4.check_regression(namespace["compare_to_baseline"])
    assert (result.outcome == "correct") == entry.correct, result


def test_the_regression_guard_says_why_for_each_ambiguity(solved: dict) -> None:
    def verdict(name: str):
        entry = next(e for e in catalogue.OPTIONAL if e.name == name)
        return ex4.check_regression(submit(dict(solved), entry)["compare_to_baseline"])

    assert "larger of the two spreads" in verdict("noise from the baseline only").message
    assert "*baseline's* noise" in verdict("noise from the current run only").message
    assert "note only other hardware" in verdict("a hardware note on every run").message


# -- the overlap task's self-check says what went wrong --------------------------------------
def _fast_from(entry_name: str, solved: dict) -> type:
    entry = next(e for e in catalogue.SUBMISSIONS if e.name == entry_name)
    return submit(dict(solved), entry)["FastNotesQA"]


# The asyncio.run entry leaves its coroutine unawaited (that is its bug): Python warns later.
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
@pytest.mark.parametrize(
    "entry_name, phrase",
    [
        ("plain ThreadPoolExecutor: the calls lose dspy.context and go to the global LM", "thread"),
        ("asyncio.run inside forward: fails where a loop already runs (a notebook cell)", "loop"),
        ("notes sorted before the answer: the answer's request changes", "passages' order"),
        ("three threads, whatever k is", "at once"),
        ("always k=3 passages, whatever self.k is", "`self.k`"),
    ],
)
def test_overlap_mistakes_get_specific_messages(entry_name: str, phrase: str, solved) -> None:
    result = ex4.check_overlap(_fast_from(entry_name, solved), solved["NotesQA"])
    assert result.outcome in ("incorrect", "error") and phrase in result.message, result


def test_overlapped_notes_halve_a_questions_wait_on_a_provider_that_waits(solved: dict) -> None:
    provider = wb.sim_lm(latency=0.05)
    questions = ["What is DSPy?", "What is a retriever?"]
    with dspy.context(lm=provider):
        slow = perf.time_call(
            lambda: [solved["NotesQA"]()(question=q) for q in questions], repeat=1, warmup=0
        )
        fast = perf.time_call(
            lambda: [solved["FastNotesQA"]()(question=q) for q in questions], repeat=1, warmup=0
        )
    print(f"\nNotesQA {slow.median:.3f} s, FastNotesQA {fast.median:.3f} s (printed, not asserted)")
    assert provider.engine.stats.calls == 2 * 4 * 2  # the same calls, overlapped or not


# -- support code ---------------------------------------------------------------------------
def test_time_call_keeps_the_warm_up_apart_and_records_the_machine() -> None:
    calls: list[float] = []

    def first_is_slow() -> None:
        calls.append(1)
        time.sleep(0.2 if len(calls) == 1 else 0.001)

    timing = perf.time_call(first_is_slow, repeat=3, warmup=1, label="x")
    assert len(calls) == 4 and len(timing.samples) == 3 and len(timing.warmup) == 1
    assert timing.warmup[0] >= 0.2 and isinstance(timing.machine, perf.MachineInfo)
    assert timing.label == "x"
    for bad in ({"repeat": 0}, {"warmup": -1}, {"repeat": 1.5}):
        with pytest.raises(ValueError):
            perf.time_call(first_is_slow, **bad)


def test_stage_table_totals_each_block_name() -> None:
    records = [
        perf.ProfileRecord("notes", 0.3, 0.01, 1000, 200 * perf.MB, 1),
        perf.ProfileRecord("answer", 0.1, 0.01, 500, 200 * perf.MB, 1),
        perf.ProfileRecord("question", 0.4, 0.02, 2000, 201 * perf.MB, 0),
        perf.ProfileRecord("notes", 0.3, 0.01, 3000, 200 * perf.MB, 1),
        perf.ProfileRecord("answer", 0.1, 0.01, 500, 200 * perf.MB, 1),
        perf.ProfileRecord("question", 0.4, 0.02, 2000, 202 * perf.MB, 0),
    ]
    table = perf.stage_table(records)
    assert list(table.index) == ["  notes", "  answer", "question"]
    assert table.loc["  notes", "runs"] == 2 and table.loc["  notes", "seconds"] == 0.6
    assert table.loc["  notes", "share"] == "75%" and table.loc["question", "share"] == "100%"
    assert table.loc["  notes", "CPU/wall"] == pytest.approx(0.03, abs=0.005)
    assert table.loc["question", "RSS MiB"] == 202
    with pytest.raises(ValueError):
        perf.stage_table([])
    flat = perf.profile_table(records[:3])
    assert list(flat["block"]) == ["  notes", "  answer", "question"]


def test_retrieve_is_deterministic_and_validates_k() -> None:
    first = perf.retrieve("How do I cache LM calls?", k=3)
    assert first == perf.retrieve("How do I cache LM calls?", k=3) and len(first) == 3
    assert "caches" in first[0] and len(set(first)) == 3
    assert len(perf.retrieve("What is DSPy?", k=5)) == 5
    for bad in (0, len(perf.PASSAGES) + 1, 2.0):
        with pytest.raises(ValueError):
            perf.retrieve("q", k=bad)


def test_like_a_cell_runs_inside_a_running_loop_with_this_context() -> None:
    assert perf.like_a_cell(lambda: asyncio.get_running_loop() is not None)
    probe = wb.sim_lm(latency=0.0)
    with dspy.context(lm=probe):
        assert perf.like_a_cell(lambda: dspy.settings.lm is probe)

    async def nothing() -> None:
        return None

    def nested_run() -> None:
        coroutine = nothing()
        try:
            asyncio.run(coroutine)
        finally:
            coroutine.close()

    with pytest.raises(RuntimeError, match="running event loop"):
        perf.like_a_cell(nested_run)
    with pytest.raises(KeyError):
        perf.like_a_cell(lambda: {}["missing"])


def test_no_profile_measures_nothing() -> None:
    with perf.no_profile("anything"):
        pass
    assert not tracemalloc.is_tracing()


def test_cpu_time_of_the_process_counts_other_threads() -> None:
    """The fact Task 1 relies on: `time.process_time` sees a worker thread's CPU."""
    spent: list[float] = []

    def burn() -> None:
        start = time.thread_time()
        while time.thread_time() - start < 0.05:
            pass
        spent.append(time.thread_time() - start)

    before = time.process_time(), time.thread_time()
    worker = threading.Thread(target=burn)
    worker.start()
    worker.join()
    assert time.process_time() - before[0] >= 0.9 * spent[0]
    assert time.thread_time() - before[1] < 0.5 * spent[0]


# -- the workload and tables used in going further ---------------------------------------------
def test_technique_table_compares_calls_tokens_and_answers(solved: dict) -> None:
    sim = wb.sim_lm(latency=0.0)
    questions = ["What is DSPy?", "What is a signature?"]
    with dspy.context(lm=sim):
        notes = perf.run_workload(solved["NotesQA"](), questions, label="notes", lm=sim)
        direct = perf.run_workload(
            dspy.Predict("question -> answer", cache=False), questions, label="direct", lm=sim
        )
    assert (notes.usage.calls, direct.usage.calls) == (8, 2)
    table = perf.technique_table(notes, [direct])
    assert list(table["model calls"]) == [8, 2] and table.loc["notes", "speed-up"] == 1.0


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


def test_split_figure_keeps_its_legend_off_the_bar() -> None:
    figure = perf.split_figure({"engine": 0.3, "format": 0.002, "parse": 0.001, "rest": 0.01})
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    (axes,) = figure.axes
    legend = figure.legends[0] if figure.legends else axes.get_legend()
    bar = axes.get_window_extent(renderer)
    box = legend.get_window_extent(renderer)
    assert not bar.overlaps(box), (bar, box)


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
