"""Self-checks for Exercise 3 (debugging and tracing): one per task, each names what it saw."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import dspy

from ..lm import sim_lm
from ..tracing import Bottleneck, Span
from ._core import NotAttempted, check, expect

__all__ = ["check_break_when", "check_bottleneck", "check_redact", "check_render_tree", "check_trace_logger",
           "check_tracer"]

_NOT_STARTED = ("`_start` still raises `NotImplementedError` — DSPy swallows errors raised in callbacks, "
                "so your trace would just stay empty. Fill in `_start` and `_end`.")


@check("Task 1 · span tracer")
def check_tracer(tracer_class: type) -> str:
    probe = tracer_class()
    try:  # call the hook directly: inside DSPy its exceptions would only be logged
        probe._start("probe", "module", dspy.Predict("question -> answer"), {"args": (), "kwargs": {}})
    except NotImplementedError:
        raise NotAttempted(_NOT_STARTED) from None
    tracer = tracer_class()
    with dspy.context(callbacks=[tracer], lm=sim_lm(latency=0.0)):
        dspy.ChainOfThought("question -> answer")(question="self-check question")
    spans = tracer.spans
    expect(spans, "`tracer.spans` is empty after a traced call — does `_start` append the span?")
    kinds = [s.kind for s in spans]
    expect(set(kinds) >= {"module", "lm", "format", "parse"},
           f"span kinds recorded: {sorted(set(kinds))}; expected module, lm, format and parse")
    open_ids = [s.name for s in spans if s.duration is None]
    expect(not open_ids, f"spans without a duration (never closed?): {open_ids} — does `_end` set it?")
    by_id = {s.id: s for s in spans}
    roots = [s for s in spans if s.parent_id is None]
    expect(len(roots) == 1, f"{len(roots)} spans have no parent ({[r.name for r in roots]}); only the "
                            "ChainOfThought should — read the parent from `ACTIVE_CALL_ID.get()` in `_start`")
    lm_span = next(s for s in spans if s.kind == "lm")
    parent = by_id.get(lm_span.parent_id)
    expect(parent is not None and parent.name.startswith("Predict"),
           f"the LM span's parent is {parent.name if parent else None!r}; "
           "it should be the Predict that called it")
    expect(lm_span.tokens,
           f"the LM span has tokens={lm_span.tokens!r} — fill them with `lm_usage(...)` in `_end`")
    expect(lm_span.outputs is not None, "the LM span has no outputs — store `outputs` in `_end`")
    failing = tracer_class()
    try:
        with dspy.context(callbacks=[failing], lm=sim_lm(latency=0.0, error_rate=1.0, num_retries=0)):
            dspy.Predict("question -> answer")(question="this call fails")
    except Exception:
        pass
    failed = [s for s in failing.spans if s.error is not None]
    expect(any(s.kind == "lm" for s in failed),
           "a failing LM call left no span with `error` set — store the `exception` in `_end`")
    return f"{len(spans)} spans in one tree, durations, usage and failures recorded."


@check("Task 2 · trace tree")
def check_render_tree(render_tree) -> str:
    root = Span(id="r", parent_id=None, kind="module", name="Root", start=0.0, duration=0.002)
    mid = Span(id="m", parent_id="r", kind="module", name="Mid", start=0.0001, duration=0.0015)
    leaf = Span(id="l", parent_id="m", kind="lm", name="Leaf", start=0.0002, duration=0.001,
                error=RuntimeError("boom"))
    text = render_tree([leaf, mid, root])
    expect(isinstance(text, str),
           f"`render_tree` returned {type(text).__name__}, not a string — did you `return`?")
    lines = text.splitlines()
    expect(len(lines) == 3, f"3 spans gave {len(lines)} lines: {lines}")
    expect(lines[0] == "module Root 2.0 ms", f"first line is {lines[0]!r}; spans go in start order, as "
                                             "'<kind> <name> <ms with 1 decimal> ms'")
    expect(lines[1].startswith("  module Mid"), f"second line is {lines[1]!r}: a child is indented by 2 spaces")
    expect(lines[2].startswith("    lm Leaf 1.0 ms"), f"third line is {lines[2]!r}: a grandchild gets 4 spaces")
    expect("FAILED RuntimeError: boom" in lines[2],
           f"a failed span should say 'FAILED RuntimeError: boom': {lines[2]!r}")
    expect(render_tree([]) == "(no spans)", f"an empty trace gave {render_tree([])!r}")
    return "indented by depth, in start order, failures marked."


@check("Task 3 · redaction")
def check_redact(redact) -> str:
    cases = {
        "my key sk-abcdefghijklmnopqrstuv ok": "[REDACTED_KEY]",
        "Authorization: Bearer eyJhbGciOi.payload.sig": "[REDACTED_TOKEN]",
        "contact: ada.lovelace@example.co.uk": "[REDACTED_EMAIL]",
    }
    for text, marker in cases.items():
        out = redact(text)
        expect(isinstance(out, str), f"`redact` returned {out!r} — did you `return` the text?")
        expect(marker in out, f"`redact({text!r})` gave {out!r}; expected it to contain {marker}")
    plain = "The sky is blue; ask-me-later is not a key."
    expect(redact(plain) == plain, f"`redact` changed text without secrets: {redact(plain)!r}")
    out = redact("ticket ABC-1234", extra_patterns=[r"ABC-\d+"])
    expect(out == "ticket [REDACTED]", f"an extra pattern gave {out!r}")
    return "keys, tokens, e-mail addresses and your own patterns are masked."


@check("Task 4 · one handler per logger")
def check_trace_logger(get_trace_logger) -> str:
    folder = Path(tempfile.mkdtemp(prefix="ex3-check-"))
    name = "workbook.selfcheck.ex3"
    first = get_trace_logger(name, folder / "logs" / "check.log")
    expect(isinstance(first, logging.Logger), f"`get_trace_logger` returned {first!r}, not a logging.Logger")
    second = get_trace_logger(name, folder / "logs" / "check.log")
    expect(first is second, "two calls returned different loggers — use `logging.getLogger(name)`")
    count = len([h for h in second.handlers if isinstance(h, logging.FileHandler)])
    expect(count == 1, f"after two calls the logger has {count} file handlers — each line would be written "
                       f"{count} times")
    expect(second.propagate is False, "`propagate` is still True: lines would also reach the root logger")
    second.info("one line")
    for handler in second.handlers:
        handler.flush()
    written = (folder / "logs" / "check.log").read_text().count("one line")
    expect(written == 1, f"one `info` call wrote {written} lines to the file")
    for handler in list(second.handlers):  # leave no open file behind
        second.removeHandler(handler)
        handler.close()
    return "re-running the cell keeps exactly one file handler."


@check("Task 5 · bottleneck")
def check_bottleneck(find_bottleneck) -> str:
    spans = [
        Span(id="r", parent_id=None, kind="module", name="Root", start=0.0, duration=0.5),
        Span(id="p", parent_id="r", kind="module", name="Predict", start=0.0, duration=0.45),
        Span(id="f", parent_id="p", kind="format", name="format", start=0.0, duration=0.05),
        Span(id="l", parent_id="p", kind="lm", name="lm", start=0.05, duration=0.4),
    ]
    found = find_bottleneck(spans)
    expect(found is not None, "`find_bottleneck` returned None for a non-empty trace — did you `return`?")
    expect(isinstance(found, Bottleneck), f"expected a `Bottleneck(span, share)`, got {type(found).__name__}")
    expect(found.span.kind != "module", f"you picked {found.span.name!r}, which has children: its time is "
                                        "theirs; look only at leaves")
    expect(found.span.name == "lm", f"you picked {found.span.name!r}; the slowest leaf takes 0.4 s")
    expect(abs(found.share - 0.8) < 1e-6, f"share is {found.share!r}; divide by the roots' total duration")
    expect(find_bottleneck([]) is None, "an empty trace should give None")
    return "the slowest leaf and its share of the total."


@check("Task 7 · breakpoints")
def check_break_when(break_when) -> str:
    span = Span(id="s", parent_id=None, kind="lm", name="LM sim/x", start=0.0, duration=0.1,
                inputs={"question": "q"})
    condition = break_when("LM")
    expect(callable(condition), f"`break_when(...)` returned {condition!r}, not a function of a span")
    expect(condition(span) is True, "`break_when('LM')` does not hold for a span named 'LM sim/x'")
    expect(break_when("Predict")(span) is False, "`break_when('Predict')` holds for a span named 'LM sim/x'")
    expect(break_when(where=lambda s: s.kind == "lm")(span) is True, "a true `where` did not hold")
    expect(break_when("LM", where=lambda s: False)(span) is False, "both conditions must hold")
    expect(break_when(where=lambda s: s.missing)(span) is False, "a `where` that raises should count as False")
    return "name and predicate conditions combine, and a broken predicate is just False."
