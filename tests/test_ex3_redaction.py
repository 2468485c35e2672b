"""Exercise 3: secrets stay out of every output, in linear time, and the tools around them behave.

Each class of input an adversarial review broke (issue 8) has a test here: whitespace after
`Bearer` and a custom pattern across a line break (redacted per value, before JSON encoding),
non-ASCII e-mail addresses, the trace stepper's preview (redact first, then cut), and inputs that
make a naive pattern quadratic (measured by how the time grows from 100 KB to 1 MB, not by a
stopwatch goal). Plus the notebook-facing fixes of issue 13: one clear message from an unfinished
tracer instead of a wall of warnings, the stepper's slider and header agreeing, a readable text
fallback for a saved widget, the timeline's labels inside the figure, and no temporary folders
left behind.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from pathlib import Path

import dspy
import matplotlib
import pytest

import dspy_workbook as wb
from dspy_workbook.tracing import (
    REDACTION_STRESS,
    LogSink,
    Span,
    TracerHooks,
    TraceStepper,
    measure_growth,
    plot_timeline,
    read_jsonl,
)

matplotlib.use("Agg")
from tools.answer_key import load_solutions  # noqa: E402


@pytest.fixture(scope="module")
def key():
    return load_solutions(
        "03_debugging", "tracer", "redact", "trace_logger", "render_tree", "find_next"
    )


@pytest.fixture
def loggers(key, tmp_path: Path):
    """A JSONL and a text logger in `tmp_path`, closed afterwards."""
    made = [
        key.get_trace_logger("test.ex3r.json", tmp_path / "t.jsonl"),
        key.get_trace_logger("test.ex3r.text", tmp_path / "t.log"),
    ]
    yield made
    for logger in made:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()


def _flush(*loggers: logging.Logger) -> None:
    for logger in loggers:
        for handler in logger.handlers:
            handler.flush()


# ---- what reaches the files ------------------------------------------------------------------

SECRETS_IN_WHITESPACE = {
    "Bearer\ttab.TOKEN-1": "tab.TOKEN-1",
    "Authorization:\nBearer\nnewline.TOKEN-2": "newline.TOKEN-2",
    "see Project\nNightingale now": "Nightingale",
    "reach me: josé.garcía@correo.es": "garcía",
    "联系 用户@例子.中国": "用户",
    "line one\nsk-live-0123456789ABCDEFGHIJ": "0123456789ABCDEF",
}


def test_the_sink_redacts_each_value_before_encoding_it(key, loggers, tmp_path: Path) -> None:
    json_log, text_log = loggers

    def redact(text: str) -> str:  # the student's rules plus a code name of our own
        return re.sub(r"Project\s+Nightingale", "[REDACTED]", key.redact(text))

    sink = LogSink(json_log, text_log, redact)
    for number, text in enumerate(SECRETS_IN_WHITESPACE):
        sink(
            Span(
                id=f"s{number}",
                parent_id=None,
                kind="lm",
                name="LM",
                start=0.0,
                duration=0.01,
                inputs={"question": text, text: "as a key too"},
                outputs=[text],
                error=PermissionError(f"rejected {text}"),
            )
        )
    _flush(json_log, text_log)
    written = (tmp_path / "t.jsonl").read_text(encoding="utf-8") + (tmp_path / "t.log").read_text(
        encoding="utf-8"
    )
    for text, secret in SECRETS_IN_WHITESPACE.items():
        assert secret not in written, f"{secret!r} from {text!r} reached a log file"
    records = read_jsonl(tmp_path / "t.jsonl")
    assert len(records) == len(SECRETS_IN_WHITESPACE)
    assert all(r["status"] == "error" and "[REDACTED" in json.dumps(r) for r in records)
    # one line per span in the readable log, even when a value held line breaks
    assert len((tmp_path / "t.log").read_text(encoding="utf-8").splitlines()) == len(
        SECRETS_IN_WHITESPACE
    )


def test_a_traced_call_with_secrets_in_whitespace_leaves_none_in_the_files(
    key, loggers, tmp_path: Path
) -> None:
    json_log, text_log = loggers
    tracer = key.SpanTracer(sinks=[LogSink(json_log, text_log, key.redact)])
    question = " ".join(SECRETS_IN_WHITESPACE)
    with dspy.context(callbacks=[tracer], lm=wb.sim_lm(latency=0.0), adapter=dspy.JSONAdapter()):
        dspy.Predict("question -> answer")(question=question)  # the sim echoes the question back
    _flush(json_log, text_log)
    written = (tmp_path / "t.jsonl").read_text(encoding="utf-8")
    assert len(read_jsonl(tmp_path / "t.jsonl")) == len(tracer.spans) > 0
    for text, secret in SECRETS_IN_WHITESPACE.items():
        if "Nightingale" not in text:  # that one needs the custom pattern (previous test)
            assert secret not in written, f"{secret!r} reached the JSONL log"


def test_non_ascii_addresses_are_masked_and_plain_text_is_kept(key) -> None:
    assert key.redact("mail zoë.ångström@exämple.se today") == "mail [REDACTED_EMAIL] today"
    assert key.redact("to 用户@例子.中国.") == "to [REDACTED_EMAIL]."
    for plain in ("café @ 5pm", "ask-me-later", "sk-short", "naïve résumé", "a@b"):
        assert key.redact(plain) == plain


# ---- linear time -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", list(REDACTION_STRESS))
def test_redaction_time_grows_linearly_up_to_one_megabyte(key, shape: str) -> None:
    # 10 KB → 100 KB → 1 MB: a quadratic pattern is stopped at the 100 KB step (seconds), never
    # reaching the megabyte (minutes). A 10× step may take up to 50× (a quadratic one takes 100×):
    # a megabyte no longer fits the CPU's caches, which slows even linear work on a busy machine.
    growth = measure_growth(
        key.redact,
        REDACTION_STRESS[shape],
        sizes=(10_000, 100_000, 1_000_000),
        repeats=5,
        slack=5.0,
    )
    assert growth.linear, str(growth)
    assert growth.sizes[-1] == 1_000_000


def test_logging_a_span_with_a_large_input_takes_linear_time(key, loggers) -> None:
    json_log, text_log = loggers
    sink = LogSink(json_log, text_log, key.redact)

    def log_span_with(text: str) -> None:
        sink(
            Span(
                id="big",
                parent_id=None,
                kind="lm",
                name="LM",
                start=0.0,
                duration=0.1,
                inputs={"messages": [{"role": "user", "content": text}]},
                outputs=[text],
            )
        )

    growth = measure_growth(
        log_span_with, lambda n: "x" * n, sizes=(100_000, 1_000_000), repeats=5, slack=5.0
    )
    assert growth.linear, str(growth)


def test_the_growth_measure_catches_a_quadratic_pattern() -> None:
    naive = re.compile(r"[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)+")  # no lookbehind: retries inside a word
    growth = measure_growth(
        lambda text: naive.sub("[X]", text),
        REDACTION_STRESS["one long word"],
        sizes=(2_000, 16_000),
    )
    assert not growth.linear, f"a quadratic pattern passed as linear: {growth}"
    assert "faster than" in str(growth)
    with pytest.raises(ValueError, match="growing"):
        measure_growth(len, lambda n: "x" * n, sizes=(10, 10))


# ---- the stepper -------------------------------------------------------------------------------


def _text(html_value: str) -> str:
    """What a reader sees: block elements become line breaks, tags disappear."""
    spaced = re.sub(r"</?(div|pre|br)[^>]*>", "\n", html_value)
    return re.sub(r"<[^>]+>", "", spaced)


def test_the_stepper_redacts_before_it_cuts_a_long_value(key) -> None:
    secret = "sk-" + "A1b2C3d4E5f6G7h8I9j0" * 2
    for padding in range(1_470, 1_500, 3):  # the key straddles the 1,500-character preview limit
        span = Span(
            id="a",
            parent_id=None,
            kind="lm",
            name="LM",
            start=0.0,
            duration=0.01,
            inputs={"question": "p" * padding + " " + secret + " tail"},
        )
        view = TraceStepper([span], redact=key.redact).view.value
        assert "A1b2C3d4" not in view and "sk-A1" not in view, (
            f"part of the key shown at padding {padding}"
        )


def test_the_stepper_slider_and_header_agree_and_facts_are_separate_lines() -> None:
    spans = [
        Span(
            id=str(i),
            parent_id=None,
            kind="lm",
            name=f"s{i}",
            start=float(i),
            duration=0.0009,
            inputs={"q": i},
        )
        for i in range(22)
    ]
    stepper = TraceStepper(spans)
    stepper.go(18)
    assert stepper.slider.value == 19 and "span 19 of 22" in stepper.header.value
    stepper.slider.value = 22
    assert (
        stepper.index == 21
        and "span 22 of 22" in stepper.header.value
        and stepper.next_button.disabled
    )
    lines = [line.strip() for line in _text(stepper.view.value).splitlines() if line.strip()]
    assert any(line.endswith("took 0.90 ms") for line in lines), lines
    assert "inputs" in lines and "outputs" in lines


def test_a_saved_stepper_shows_a_summary_not_its_constructor() -> None:
    spans = [
        Span(id="a", parent_id=None, kind="module", name="Outer", start=0.0, duration=0.1),
        Span(
            id="b",
            parent_id="a",
            kind="lm",
            name="LM",
            start=0.01,
            duration=0.05,
            error=RuntimeError("down"),
        ),
    ]
    bundle = TraceStepper(spans)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    plain = bundle["text/plain"]
    assert plain.startswith("TraceStepper: 2 spans (1 failed)") and "children=" not in plain
    assert "No spans" in repr(TraceStepper([]))


def test_the_stepper_jumps_with_the_students_find_next(key) -> None:
    spans = [
        Span(
            id=str(i),
            parent_id=None,
            kind=kind,
            name=f"s{i}",
            start=float(i),
            duration=0.1,
            error=RuntimeError("x") if i in (2, 4) else None,
        )
        for i, kind in enumerate(["module", "lm", "lm", "parse", "module"])
    ]
    stepper = TraceStepper(spans, find_next=key.find_next)
    assert stepper.filter.value == "failed"
    stepper.forward_button.click()
    assert stepper.index == 2
    stepper.forward_button.click()
    assert stepper.index == 4
    stepper.forward_button.click()  # nothing later: stays, says so
    assert stepper.index == 4 and "no later span" in stepper.header.value
    stepper.filter.value = "lm"
    stepper.back_button.click()
    assert stepper.index == 2

    def broken(*args):
        raise KeyError("oops")

    broken_stepper = TraceStepper(spans, find_next=broken)
    assert broken_stepper.jump(+1) is None and "KeyError" in broken_stepper.header.value


# ---- an unfinished or buggy tracer: one message, not a wall ------------------------------------


def _run_predict(tracer) -> None:
    with dspy.context(callbacks=[tracer], lm=wb.sim_lm(latency=0.0), adapter=dspy.JSONAdapter()):
        dspy.Predict("question -> answer")(question="q")
        dspy.Predict("question -> answer")(question="q2")


def test_an_unfinished_tracer_prints_one_clear_message_and_no_warnings(capsys, caplog) -> None:
    class Unfinished(TracerHooks):
        pass

    with caplog.at_level(logging.WARNING, logger="dspy.utils.callback"):
        _run_predict(Unfinished())
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and "NotImplementedError" in printed[0] and "Task 1" in printed[0], (
        printed
    )
    assert not [r for r in caplog.records if r.name == "dspy.utils.callback"]


def test_a_buggy_hook_is_reported_once_with_its_error(capsys, caplog) -> None:
    class Buggy(TracerHooks):
        def _start(self, call_id, kind, instance, inputs):
            pass

        def _end(self, call_id, outputs, exception):
            raise KeyError(call_id[:0] + "missing span")

    with caplog.at_level(logging.WARNING, logger="dspy.utils.callback"):
        _run_predict(Buggy())
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and "KeyError" in printed[0] and "missing span" in printed[0], printed
    assert not [r for r in caplog.records if r.name == "dspy.utils.callback"]


# ---- the timeline and the leftovers ----------------------------------------------------------


def test_the_bottleneck_label_stays_inside_the_figure() -> None:
    spans = [
        Span(id="r", parent_id=None, kind="module", name="Root " * 12, start=0.0, duration=0.05),
        Span(id="a", parent_id="r", kind="lm", name="first", start=0.0, duration=0.01),
        Span(id="b", parent_id="r", kind="lm", name="last and slowest", start=0.01, duration=0.04),
    ]
    fig = plot_timeline(spans, highlight="b")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    figure_box = fig.bbox
    texts = [t for t in fig.axes[0].texts if t.get_text() == "bottleneck"]
    texts += list(fig.axes[0].get_yticklabels())
    assert texts
    for text in texts:
        box = text.get_window_extent(renderer)
        assert box.x0 >= figure_box.x0 - 1 and box.x1 <= figure_box.x1 + 1, (
            f"{text.get_text()!r} is cut off"
        )


def test_self_checks_leave_no_temporary_folders(key) -> None:
    from dspy_workbook.checks import ex3

    before = set(Path(tempfile.gettempdir()).glob("ex3-*"))
    assert ex3.check_trace_logger(key.get_trace_logger)
    assert ex3.check_redact(key.redact)
    assert set(Path(tempfile.gettempdir()).glob("ex3-*")) == before


def test_an_lm_reply_in_json_is_redacted_inside_its_escapes() -> None:
    from dspy_workbook.tracing import redact_all

    def mask(text: str) -> str:
        return re.sub(r"(?i)bearer\s+\S+", "Bearer [X]", text).replace("é", "e")

    reply = json.dumps({"answer": "use Bearer\ttok-1 and café", "n": [1, {"k": "Bearer\nok-2"}]})
    assert "\\t" in reply and "\\u00e9" in reply  # how it reaches the log: escaped
    cleaned = redact_all({"outputs": [reply]}, mask)
    assert json.loads(cleaned["outputs"][0]) == {
        "answer": "use Bearer [X] and cafe",
        "n": [1, {"k": "Bearer [X]"}],
    }
    deep = "[" * 5_000 + "]" * 5_000  # not decodable within the recursion limit: plain text
    assert redact_all(deep, mask) == deep
    assert redact_all("{not json}", mask) == "{not json}"


def test_hints_come_one_level_at_a_time() -> None:
    from dspy_workbook.checks import ex3

    for key in ("tracer", "redact", "bottleneck", "tree", "logger", "navigation", "breakpoints"):
        task = ex3.ex.tasks[key]
        task.hints_shown = 0
        shown = [ex3.hint(key) for _ in range(len(task.hints) + 1)]
        assert [h.level for h in shown] == [*range(1, len(task.hints) + 1), len(task.hints)]
        assert len(task.hints) >= 2
        task.hints_shown = 0
    core = {k for k, t in ex3.ex.tasks.items() if t.core}
    assert core == {"tracer", "redact", "bottleneck"}
    assert all(t.points > 0 and len(t.hints) >= 3 for k, t in ex3.ex.tasks.items() if k in core)
    assert all(t.points == 0 for k, t in ex3.ex.tasks.items() if k not in core)
    assert ex3.hint("Task 2").title == ex3.ex.tasks["redact"].title
