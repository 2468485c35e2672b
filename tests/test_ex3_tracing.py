"""Exercise 3 (debugging and tracing): the answer key's tracer and the support package, on `sim`.

The student-built pieces (tracer, tree, redaction, logger, bottleneck, breakpoints) are the
master's own solution cells (`tools/answer_key.py`). The log-file tests run the answer key script
as the notebook would be run — twice in one process, like "Run All" twice in one kernel, so
duplicated log handlers would show up as duplicated records.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import runpy
from pathlib import Path

import dspy
import matplotlib
import pytest

import dspy_workbook as wb
from dspy_workbook.tracing import (
    EMPTY_MESSAGE,
    LogSink,
    ReplayMiss,
    Span,
    TraceStepper,
    plot_timeline,
    read_jsonl,
    replay_lm,
    span_record,
    spans_table,
    to_jsonable,
)

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]
KEY = ROOT / "solutions" / "exercise3_debugging.py"
from tools.answer_key import load_solutions  # noqa: E402


@pytest.fixture(scope="module")
def key() -> dict:
    """The master's solution cells, plus the program and printer the notebook defines."""
    return vars(
        load_solutions(
            "03_debugging",
            "tracer",
            "render_tree",
            "redact",
            "trace_logger",
            "bottleneck",
            "find_next",
            "breakpoints",
            definitions=["DraftAndReview", "print_trace"],
        )
    )


@pytest.fixture(autouse=True)
def course_adapter():
    """The course's adapter (a subclass of DSPy's JSONAdapter), as `wb.setup()` configures it in
    the notebook's first cell: the graded cells run under it."""
    with dspy.context(adapter=wb.lm.CourseJSONAdapter()):
        yield


@pytest.fixture(scope="module")
def notebook_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the folder the answer key ran in, its `$WORKBOOK_CACHE_DIR`): run twice in one process,
    like "Run All" twice in one kernel (its demo cells write the logs)."""
    folder = tmp_path_factory.mktemp("ex3-run")
    cache = tmp_path_factory.mktemp("ex3-cache")
    saved_cwd, saved_env = Path.cwd(), dict(os.environ)
    os.chdir(folder)
    os.environ.update(
        {
            "WORKBOOK_LM": "sim",
            "WORKBOOK_SIM_LATENCY": "0.0",
            "MPLBACKEND": "Agg",
            "WORKBOOK_CACHE_DIR": str(cache),
        }
    )
    try:
        runpy.run_path(str(KEY), run_name="__main__")
        runpy.run_path(str(KEY), run_name="__main__")
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return folder, cache


def _trace(key: dict, program, lm=None, **inputs):
    tracer = key["SpanTracer"]()
    with dspy.context(callbacks=[tracer], lm=lm or wb.sim_lm(latency=0.0)):
        program(**inputs)
    return tracer


# ---- the tracer ------------------------------------------------------------------------------


def test_a_two_module_program_gives_one_tree_with_every_step(key: dict) -> None:
    tracer = _trace(key, key["DraftAndReview"](), question="tree?")
    by_id = {s.id: s for s in tracer.spans}
    roots = [s for s in tracer.spans if s.parent_id is None]
    assert [r.name for r in roots] == ["DraftAndReview"]
    cot = next(s for s in tracer.spans if s.name.startswith("ChainOfThought"))
    predict = next(s for s in tracer.spans if s.parent_id == cot.id)
    below_predict = {s.kind for s in tracer.spans if s.parent_id == predict.id}
    assert cot.parent_id == roots[0].id and predict.name.startswith("Predict")
    assert below_predict == {"format", "lm", "parse"}
    assert all(s.parent_id in by_id for s in tracer.spans if s is not roots[0])
    assert all(s.duration is not None and s.duration >= 0 and s.ok for s in tracer.spans)
    # a parent starts before and ends after each of its children
    for s in tracer.spans:
        if s.parent_id:
            parent = by_id[s.parent_id]
            assert parent.start <= s.start and s.end <= parent.end + 1e-6


def test_lm_spans_carry_usage_then_a_cache_hit(key: dict) -> None:
    lm = wb.sim_lm(latency=0.0)
    predict = dspy.Predict("question -> answer")
    first = _trace(key, predict, lm=lm, question="cached twice")
    second = _trace(key, predict, lm=lm, question="cached twice")
    (miss,) = [s for s in first.spans if s.kind == "lm"]
    (hit,) = [s for s in second.spans if s.kind == "lm"]
    assert miss.cache_hit is False and miss.tokens["total_tokens"] > 0
    assert hit.cache_hit is True and hit.tokens is None
    assert lm.engine.stats.calls == 1


def test_failures_are_traced_with_their_exception(key: dict) -> None:
    tracer = key["SpanTracer"]()
    failing = wb.sim_lm(latency=0.0, error_rate=1.0, num_retries=0)
    with (
        pytest.raises(Exception, match=".") as raised,
        dspy.context(callbacks=[tracer], lm=failing),
    ):
        key["DraftAndReview"]()(question="fails")
    failed = [s for s in tracer.spans if not s.ok]
    assert {s.kind for s in failed} == {"module", "lm"}
    assert all(s.duration is not None for s in failed)
    root = next(s for s in tracer.spans if s.parent_id is None)
    assert root.error is raised.value
    assert all(
        s.ok for s in tracer.spans if s.kind == "format"
    )  # the steps before the failure succeeded


def test_interleaved_async_calls_keep_separate_trees(key: dict) -> None:
    tracer = key["SpanTracer"]()
    questions = [f"async question number {i}" for i in range(6)]
    lm = wb.sim_lm(latency=0.02, jitter=0.015, seed=3)

    async def main() -> list:
        with dspy.context(callbacks=[tracer], lm=lm):
            program = dspy.ChainOfThought("question -> answer")
            return await asyncio.wait_for(
                asyncio.gather(*(program.acall(question=q) for q in questions)), 30
            )

    results = asyncio.run(main())
    assert lm.engine.stats.max_in_flight > 1, (
        "the calls did not overlap, so the test proves nothing"
    )
    by_id = {s.id: s for s in tracer.spans}
    roots = [s for s in tracer.spans if s.parent_id is None]
    assert sorted(r.inputs["question"] for r in roots) == sorted(questions)
    for span in tracer.spans:
        root = span
        while root.parent_id in by_id:
            root = by_id[root.parent_id]
        asked = root.inputs["question"]
        if span.kind == "lm":
            assert asked in json.dumps(span.inputs["messages"]) and asked in span.outputs[0]
        if span.kind == "module":
            assert span.outputs.answer.endswith(asked)
    assert [r.answer for r in results] == [f"Simulated answer to: {q}" for q in questions]


def test_run_async_works_from_a_running_loop_and_keeps_dspy_context(key: dict) -> None:
    tracer = key["SpanTracer"]()

    async def outer() -> int:  # a running loop, as in Jupyter
        async def inner():
            return await dspy.Predict("question -> answer").acall(question="inside")

        with dspy.context(callbacks=[tracer], lm=wb.sim_lm(latency=0.0)):
            key["tracing"].run_async(inner)
        return len(tracer.spans)

    assert asyncio.run(outer()) >= 4


# ---- logs and redaction ----------------------------------------------------------------------


def test_running_the_notebook_twice_writes_each_record_once(
    notebook_run: tuple[Path, Path],
) -> None:
    _, cache = notebook_run
    for name in ("workbook.trace.json", "workbook.trace.text"):  # Task 5's loggers
        handlers = logging.getLogger(name).handlers
        assert len([h for h in handlers if isinstance(h, logging.FileHandler)]) == 1
    for jsonl, text in (("trace.jsonl", "trace.log"), ("logged.jsonl", "logged.log")):
        ids = [r["id"] for r in read_jsonl(cache / "traces" / jsonl)]
        assert ids and len(ids) == len(set(ids)), f"a span was logged more than once in {jsonl}"
        text_lines = (cache / "traces" / text).read_text().splitlines()
        assert len(text_lines) == len(ids), f"{text} and {jsonl} disagree"


def test_logs_go_to_the_workbook_cache_dir_and_nothing_else_is_left(
    notebook_run: tuple[Path, Path],
) -> None:
    folder, cache = notebook_run
    assert not [p for p in folder.rglob("*")], "the notebook wrote next to itself"
    assert {p.name for p in (cache / "traces").iterdir()} == {
        "trace.jsonl",
        "trace.log",
        "logged.jsonl",
        "logged.log",
    }


def test_a_log_sink_writes_to_plain_file_paths(key: dict, tmp_path: Path) -> None:
    jsonl, text = tmp_path / "deep" / "t.jsonl", tmp_path / "deep" / "t.log"
    for _ in range(2):  # a second sink on the same files (a cell run twice) adds no writer
        tracer = key["SpanTracer"](sinks=[LogSink(jsonl, text, redact=key["redact"])])
        with dspy.context(callbacks=[tracer], lm=wb.sim_lm(latency=0.0)):
            dspy.Predict("question -> answer")(question="mail eve@example.org")
    records = read_jsonl(jsonl)
    lines = text.read_text(encoding="utf-8").splitlines()
    assert len(records) == len(lines) == 8 and len({r["id"] for r in records}) == 8
    assert all(" INFO " in line for line in lines), lines[:2]
    assert "eve@example.org" not in jsonl.read_text() + text.read_text()


def test_each_adapter_step_is_one_span_with_named_inputs(key: dict) -> None:
    # DSPy 3.4 wraps JSONAdapter.format twice (ChatAdapter's and its own): one span, not two
    tracer = _trace(key, key["DraftAndReview"](), question="how many formats?")
    formats = [s for s in tracer.spans if s.kind == "format"]
    predicts = [s for s in tracer.spans if s.name.startswith("Predict")]
    assert len(formats) == len(predicts) == 2
    by_id = {s.id: s for s in tracer.spans}
    assert all(by_id[s.parent_id].name.startswith("Predict") for s in formats)
    assert all(set(s.inputs) == {"signature", "demos", "inputs"} for s in formats), [
        sorted(s.inputs) for s in formats
    ]
    assert len([s for s in tracer.spans if s.kind == "parse"]) == 2

    class Deeper(wb.lm.CourseJSONAdapter):  # format wrapped four times, parse three
        pass

    for adapter in (dspy.JSONAdapter(), Deeper()):
        with dspy.context(adapter=adapter):
            deep = _trace(key, dspy.ChainOfThought("question -> answer"), question="deeper")
        ids = {s.id for s in deep.spans}
        assert [s.kind for s in deep.spans] == ["module", "module", "format", "lm", "parse"]
        assert all(s.parent_id is None or s.parent_id in ids for s in deep.spans)
    with dspy.context(adapter=dspy.ChatAdapter()):  # wrapped once: nothing to fold
        chat = _trace(key, dspy.Predict("question -> answer"), question="chat adapter")
    assert [s.kind for s in chat.spans].count("format") == 1


def test_finished_may_run_while_the_tracer_holds_its_lock(key: dict) -> None:
    class LockedEnd(key["SpanTracer"]):
        def _end(self, call_id, outputs, exception):
            with self._lock:  # `_finished` inside the lock: the lock is re-entrant
                super()._end(call_id, outputs, exception)

    tracer = LockedEnd()
    with dspy.context(callbacks=[tracer], lm=wb.sim_lm(latency=0.0)):
        dspy.Predict("question -> answer")(question="no deadlock")
    assert len(tracer.spans) == 4 and all(s.duration is not None for s in tracer.spans)


def test_secrets_never_reach_the_files_or_the_printed_trace(
    key: dict, tmp_path: Path, capsys
) -> None:
    # a newline before a secret becomes `\\n` in JSON: redaction must still catch it
    secrets = [
        "sk-live-0123456789ABCDEFGHIJ",
        "Bearer eyJzZWNyZXQ.token",
        "carol@example.com",
        "header:\nBearer second.TOKEN-xyz",
        "\ttabbed.person@example.net",
    ]

    class Leaky(dspy.Module):
        def forward(self, question: str) -> dspy.Prediction:
            dspy.Predict("question -> answer")(question=question)
            raise PermissionError(f"provider rejected {secrets[0]} for {secrets[2]}")

    json_log = key["get_trace_logger"]("test.ex3.json", tmp_path / "t.jsonl")
    text_log = key["get_trace_logger"]("test.ex3.text", tmp_path / "t.log")
    tracer = key["SpanTracer"](sinks=[LogSink(json_log, text_log, key["redact"])])
    with (
        pytest.raises(PermissionError),
        dspy.context(callbacks=[tracer], lm=wb.sim_lm(latency=0.0)),
    ):
        Leaky()(question=" ".join(secrets))
    key["print_trace"](tracer.spans)
    for handler in json_log.handlers + text_log.handlers:
        handler.flush()
    files = (tmp_path / "t.jsonl").read_text() + (tmp_path / "t.log").read_text()
    printed = capsys.readouterr().out
    assert "PermissionError" in printed and "PermissionError" in files  # the failure is there...
    for secret in secrets:  # ...its secrets are not
        core = secret.split()[-1].strip()
        assert core not in files and core not in printed, f"{secret} leaked"
    assert len(read_jsonl(tmp_path / "t.jsonl")) == len(tracer.spans)


def test_records_keep_predictions_and_exceptions() -> None:
    span = Span(
        id="a",
        parent_id=None,
        kind="module",
        name="M",
        start=1.0,
        duration=0.5,
        inputs={"question": "q", "signature": dspy.Signature("question -> answer")},
        outputs=dspy.Prediction(answer="42", reasoning="because"),
        error=TimeoutError("slow"),
    )
    record = json.loads(json.dumps(span_record(span, origin=0.5)))
    assert record["outputs"] == {"__type__": "Prediction", "answer": "42", "reasoning": "because"}
    assert record["error"] == {"type": "TimeoutError", "message": "slow"}
    assert record["inputs"]["signature"] == "Signature(question -> answer)"
    assert (
        record["start_ms"] == 500.0
        and record["duration_ms"] == 500.0
        and record["status"] == "error"
    )
    assert to_jsonable({1: float("nan"), "s": {1, 2}}) == {"1": "nan", "s": [1, 2]}


def test_spans_table_has_one_row_per_span(key: dict) -> None:
    tracer = _trace(key, key["DraftAndReview"](), question="table")
    table = spans_table(tracer.spans)
    assert len(table) == len(tracer.spans) and table["status"].eq("ok").all()
    assert table["span"].iloc[1].startswith("  ")  # indented by depth


# ---- bottleneck and timeline -----------------------------------------------------------------


def test_bottleneck_is_the_slow_lm_call_and_is_highlighted(key: dict) -> None:
    tracer = _trace(key, key["DraftAndReview"](), lm=wb.sim_lm(latency=0.03), question="slow")
    found = key["find_bottleneck"](tracer.spans)
    assert found.span.kind == "lm" and 0.2 < found.share < 0.9
    fig = plot_timeline(tracer.spans, highlight=found.span.id)
    bars = fig.axes[0].patches
    assert len(bars) == len(tracer.spans)
    red = [b for b in bars if matplotlib.colors.to_hex(b.get_facecolor()) == "#e53935"]
    assert len(red) == 1
    assert plot_timeline([]).axes[0].texts[0].get_text() == "no spans recorded"


# ---- the stepper widget, headless --------------------------------------------------------------


def test_stepper_buttons_and_slider_move_through_the_spans(key: dict) -> None:
    tracer = _trace(key, dspy.Predict("question -> answer"), question="step")
    stepper = TraceStepper(tracer.spans)
    n = len(stepper.spans)
    assert n == 4 and stepper.index == 0  # module, format, lm, parse
    assert stepper.prev_button.disabled and not stepper.next_button.disabled
    assert "span 1 of 4" in stepper.header.value
    stepper.next_button.click()
    assert stepper.index == 1 and stepper.spans[1].name in stepper.view.value
    assert not stepper.prev_button.disabled
    stepper.slider.value = n  # the slider counts from 1, like the header
    assert (
        stepper.index == n - 1
        and stepper.next_button.disabled
        and f"span {n} of {n}" in stepper.header.value
    )
    stepper.next_button.click()
    assert stepper.index == n - 1
    stepper.prev_button.click()
    assert stepper.index == n - 2 and not stepper.next_button.disabled


def test_stepper_marks_failed_spans_and_redacts(key: dict) -> None:
    tracer = key["SpanTracer"]()
    with (
        pytest.raises(Exception, match="."),
        dspy.context(callbacks=[tracer], lm=wb.sim_lm(latency=0.0, error_rate=1.0, num_retries=0)),
    ):
        dspy.Predict("question -> answer")(question="mail dave@example.org")
    stepper = TraceStepper(tracer.spans, redact=key["redact"])
    assert "failed" in stepper.header.value
    lm_index = next(i for i, s in enumerate(stepper.spans) if s.kind == "lm")
    stepper.go(lm_index)
    assert "FAILED" in stepper.view.value and "LMServerError" in stepper.view.value
    for i in range(len(stepper.spans)):
        stepper.go(i)
        assert "dave@example.org" not in stepper.view.value


def test_an_empty_trace_shows_a_message() -> None:
    stepper = TraceStepper([])
    assert EMPTY_MESSAGE in stepper.view.value and stepper.current is None
    stepper.next_button.click()  # must not raise
    assert stepper.next_button.disabled and stepper.prev_button.disabled and stepper.slider.disabled


# ---- breakpoints and replay ------------------------------------------------------------------


def test_breakpoints_capture_state_where_the_condition_holds(key: dict) -> None:
    break_when = key["break_when"]
    tracer = key["SpanTracer"](
        breakpoints=[
            break_when("Predict(question, answer"),
            break_when(where=lambda s: s.outputs.missing),
        ]
    )
    with dspy.context(callbacks=[tracer], lm=wb.sim_lm(latency=0.0)):
        key["DraftAndReview"]()(question="inspect me")
    assert len(tracer.hits) == 1  # the raising predicate matched nothing and broke nothing
    (hit,) = tracer.hits
    assert hit["inputs"] == {"question": "inspect me", "answer": "Simulated answer to: inspect me"}
    assert hit["outputs"].verdict == "Simulated verdict to: inspect me"


def test_replay_makes_no_lm_call_and_refuses_unknown_prompts(key: dict) -> None:
    lm = wb.sim_lm(latency=0.0)
    recorded = _trace(key, key["DraftAndReview"](), lm=lm, question="replay me")
    calls = lm.engine.stats.calls
    replay_tracer = key["SpanTracer"]()
    with dspy.context(lm=replay_lm(recorded.spans), callbacks=[replay_tracer]):
        again = key["DraftAndReview"]()(question="replay me")
        with pytest.raises(Exception, match="not in the recorded trace"):
            key["DraftAndReview"]()(question="never recorded")
    assert lm.engine.stats.calls == calls == 2
    assert again.verdict == recorded.spans[0].outputs.verdict
    replayed_kinds = [s.kind for s in replay_tracer.spans][: len(recorded.spans)]
    assert replayed_kinds == [s.kind for s in recorded.spans]
    with pytest.raises(ReplayMiss):
        replay_lm([])


# ---- self-checks -------------------------------------------------------------------------------


def _stub(*args, **kwargs):
    raise NotImplementedError()


def test_self_checks_pass_on_the_answer_key(key: dict) -> None:
    from dspy_workbook.checks import ex3

    results = [
        ex3.check_tracer(key["SpanTracer"]),
        ex3.check_render_tree(key["render_tree"]),
        ex3.check_redact(key["redact"]),
        ex3.check_trace_logger(key["get_trace_logger"]),
        ex3.check_bottleneck(key["find_bottleneck"]),
        ex3.check_find_next(key["find_next"]),
        ex3.check_break_when(key["break_when"]),
    ]
    assert [r.outcome for r in results] == ["correct"] * 7, results
    summary = ex3.check_all(key)
    assert summary and "core: 10/10" in repr(summary) and "4 of 4 self-checks" in repr(summary)


def test_self_checks_say_not_attempted_for_the_starter(key: dict) -> None:
    from dspy_workbook.checks import ex3

    class Blank(key["SpanTracer"]):
        _start = _stub
        _end = _stub

    results = [
        ex3.check_tracer(Blank),
        ex3.check_render_tree(_stub),
        ex3.check_redact(_stub),
        ex3.check_trace_logger(_stub),
        ex3.check_bottleneck(_stub),
        ex3.check_find_next(_stub),
        ex3.check_break_when(_stub),
    ]
    assert [r.outcome for r in results] == ["not attempted"] * 7, results


def test_self_checks_name_what_is_wrong(key: dict) -> None:
    from dspy_workbook.checks import ex3

    class NoParents(key["SpanTracer"]):
        def _start(self, call_id, kind, instance, inputs):
            super()._start(call_id, kind, instance, inputs)
            self.spans[-1].parent_id = None

    flat = ex3.check_tracer(NoParents)
    assert flat.outcome == "incorrect" and "ACTIVE_CALL_ID" in flat.message
    unindented = ex3.check_render_tree(
        lambda spans: "\n".join(s.name for s in spans) or "(no spans)"
    )
    assert unindented.outcome == "incorrect"
    root_only = ex3.check_bottleneck(lambda spans: None)
    assert root_only.outcome == "incorrect" and "None" in root_only.message

    def leaky_logger(name, path, fmt="%(message)s"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        logger = logging.getLogger(name)
        logger.addHandler(logging.FileHandler(path))
        return logger

    dup = ex3.check_trace_logger(leaky_logger)
    assert dup.outcome == "incorrect" and "2 file handlers" in dup.message
    assert not logging.getLogger("workbook.selfcheck.ex3").handlers, "the check left a file open"
