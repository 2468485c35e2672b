"""Self-checks for Exercise 3 (debugging and tracing): one per task, each names what it saw.

The core tasks (1–3) are graded: each check exercises every behaviour its hidden test grades, so
✅ on every core check means full marks. Tasks 4–7 are optional (going further, no points). In the
notebook: `ex3.check_tracer(SpanTracer)` after a task, `ex3.hint("tracer")` for the next hint,
`ex3.check_all()` at the end.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import dspy

from ..lm import sim_lm
from ..tracing import REDACTION_STRESS, Bottleneck, Span, measure_growth
from ._core import NotAttempted, call_student, expect, expect_callable
from ._exercise import Exercise

__all__ = [
    "check_all",
    "check_bottleneck",
    "check_break_when",
    "check_find_next",
    "check_redact",
    "check_render_tree",
    "check_trace_logger",
    "check_tracer",
    "ex",
    "hint",
]

ex = Exercise("Exercise 3 · debugging and tracing")

_NOT_STARTED = (
    "`_start` still raises `NotImplementedError`, so every trace stays empty. "
    "Fill in `_start` and `_end`, run that cell, then this one."
)


def _root_of(span: Span, by_id: dict[str, Span]) -> Span:
    seen = set()
    while span.parent_id in by_id and span.id not in seen:
        seen.add(span.id)
        span = by_id[span.parent_id]
    return span


# -- Task 1 -------------------------------------------------------------------------------------
@ex.task(
    "tracer",
    "Task 1 · span tracer",
    points=4,
    needs=("SpanTracer",),
    seconds=20,
    hints=(
        "Inside `_start`, `ACTIVE_CALL_ID.get()` is the id of the call running *this* one — "
        "the parent. DSPy sets it to the new call's id only after the start hooks have run.",
        "`_start` and `_end` meet through `self._open`: store the span under its `call_id` when "
        "it starts, take it back out (`pop`) when it ends. Both change shared state: do it inside "
        "`with self._lock:`.",
        "`_start`: `span = open_span(call_id, ACTIVE_CALL_ID.get(), kind, instance, inputs)`, then "
        "under the lock `self._open[call_id] = span` and `self.spans.append(span)`. `_end`: "
        "`span = self._open.pop(call_id, None)` under the lock (return if None); "
        "`span.duration = time.perf_counter() - span.start`; `span.outputs, span.error = outputs, "
        "exception`; `self._finished(span)`.",
    ),
)
def check_tracer(tracer_class: type) -> str:
    expect_callable(tracer_class, "SpanTracer")
    probe = tracer_class()
    try:  # call the hook directly: inside DSPy its exceptions would only be reported
        probe._start(
            "probe", "module", dspy.Predict("question -> answer"), {"args": (), "kwargs": {}}
        )
    except NotImplementedError:
        raise NotAttempted(_NOT_STARTED) from None
    seen: list[Span] = []
    tracer = tracer_class(sinks=[seen.append])
    began = time.perf_counter()
    # The adapter the notebook configured, as in the graded cell: the course's adapter is a
    # subclass of JSONAdapter, whose steps DSPy reports more than once (`TracerHooks` merges them).
    with dspy.context(callbacks=[tracer], lm=sim_lm(latency=0.01, cache=False)):
        dspy.ChainOfThought("question -> answer")(question="self-check question")
    elapsed = time.perf_counter() - began
    spans = list(tracer.spans)
    expect(spans, "`tracer.spans` is empty after a traced call — does `_start` record the span?")
    kinds = sorted({s.kind for s in spans})
    expect(
        kinds == ["format", "lm", "module", "parse"],
        f"span kinds recorded: {kinds}; expected format, lm, module and parse",
    )
    unfinished = [s.name for s in spans if s.duration is None or s.duration < 0]
    expect(
        not unfinished,
        f"spans without a duration after the call: {unfinished} — does `_end` set `duration`?",
    )
    lm_span = next(s for s in spans if s.kind == "lm")
    expect(
        lm_span.duration >= 0.005 and all(s.duration <= elapsed for s in spans),
        f"the LM call took 0.01 s and the whole call {elapsed:.3f} s, yet the LM span's "
        f"duration is {lm_span.duration!r} — `duration` is the seconds since `span.start`",
    )
    by_id = {s.id: s for s in spans}
    roots = [s for s in spans if s.parent_id is None]
    expect(
        len(roots) == 1,
        f"{len(roots)} spans have no parent ({[r.name for r in roots]}); only the "
        "ChainOfThought should — take the parent from `ACTIVE_CALL_ID.get()`",
    )
    parent = by_id.get(lm_span.parent_id)
    expect(
        parent is not None and parent.name.startswith("Predict"),
        f"the LM span's parent is {parent.name if parent else None!r}; "
        "it should be the Predict that called it",
    )
    expect(
        by_id.get(parent.parent_id) is roots[0],
        "the Predict inside `ChainOfThought` should hang under the ChainOfThought span",
    )
    got = sorted(s.id for s in seen)
    expect(
        got == sorted(by_id) and len(got) == len(set(got)),
        f"{len(spans)} spans recorded, `_finished` passed {len(got)} to the sinks "
        f"({len(set(got))} distinct) — call `self._finished(span)` once per span, when it ends",
    )
    expect(
        lm_span.tokens and lm_span.tokens.get("total_tokens", 0) > 0,
        f"the LM span has tokens={lm_span.tokens!r} — `self._finished(span)` fills them",
    )

    failing = tracer_class()
    try:
        with dspy.context(
            callbacks=[failing], lm=sim_lm(latency=0.0, error_rate=1.0, num_retries=0, cache=False)
        ):
            dspy.Predict("question -> answer")(question="this call fails")
    except Exception:
        pass
    failed = [s for s in failing.spans if s.error is not None]
    expect(
        {s.kind for s in failed} >= {"lm", "module"},
        f"a failing call left failed spans of kinds {sorted({s.kind for s in failed})}; the LM "
        "span and the module around it should both keep the `exception` (in `error`)",
    )
    expect(
        all(isinstance(s.error, BaseException) and s.duration is not None for s in failed),
        "a failed span needs its exception in `error` and a `duration` too",
    )

    concurrent = tracer_class()
    questions = [f"overlapping question {i}" for i in range(3)]

    async def overlap() -> None:
        with dspy.context(callbacks=[concurrent], lm=sim_lm(latency=0.01, cache=False)):
            program = dspy.Predict("question -> answer")
            await asyncio.gather(*(program.acall(question=q) for q in questions))

    asyncio.run(overlap())  # a self-check runs in a helper thread: no event loop is running there
    ids = {s.id: s for s in concurrent.spans}
    tops = [s for s in concurrent.spans if s.parent_id is None]
    expect(len(tops) == 3, f"three overlapping calls gave {len(tops)} root spans; expected 3 trees")
    for span in concurrent.spans:
        if span.kind == "lm":
            root = _root_of(span, ids)
            expect(
                [q for q in questions if q in str(root.inputs)]
                == [q for q in questions if q in str(span.inputs)],
                "with three calls at once, an LM span hangs under another call's root — take the "
                "parent from `ACTIVE_CALL_ID.get()`, not from a 'current span' of your own",
            )
    return (
        f"{len(spans)} spans in one tree, each finished once; failures and overlapping calls "
        "traced."
    )


# -- Task 2 -------------------------------------------------------------------------------------
_REDACT_CASES = {
    # bearer tokens: any case, any whitespace, wherever "Bearer" appears
    "Authorization: Bearer eyJhbGciOi.payload.sig": "Authorization: Bearer [REDACTED_TOKEN]",
    "authorization: bearer\teyJhbGciOi.tab": "authorization: Bearer [REDACTED_TOKEN]",
    "header:\nBEARER \n newline.TOKEN== done": "header:\nBearer [REDACTED_TOKEN] done",
    # an LM's reply is JSON text: a line break is the two characters \n there
    '{"answer": "see\\nBearer escaped.TOKEN"}': '{"answer": "see\\nBearer [REDACTED_TOKEN]"}',
    # e-mail addresses, whole, in any alphabet
    "contact: ada.lovelace@example.co.uk.": "contact: [REDACTED_EMAIL].",
    "écrire à josé.garcía@correo.es": "écrire à [REDACTED_EMAIL]",
    "联系 用户@例子.中国": "联系 [REDACTED_EMAIL]",
    # the given key rule
    "my key sk-abcdefghijklmnopqrstuv ok": "my key [REDACTED_KEY] ok",
}
_PLAIN = (
    "The sky is blue; ask-me-later is not a key.",
    "sk-short stays",
    "café au lait @ 5pm",
    "a@b and x@y are not addresses",
    "Bearer",
)


@ex.task(
    "redact",
    "Task 2 · redaction",
    points=3,
    needs=("redact",),
    seconds=30,
    hints=(
        "One `re.sub` per kind of secret, like the given key rule. For e-mail addresses use `\\w` "
        "(it includes letters such as é or 中) rather than `[A-Za-z0-9]`; after `Bearer`, `\\s+` "
        "(spaces, tabs, newlines). `(?i)` at the start of a pattern ignores case.",
        "Linear time: a pattern like `[\\w.]+@` retries from every character of a long word. Let a "
        "match start only where a run of address characters starts, with a lookbehind: "
        "`(?<![\\w.%+-])[\\w.%+-]+@…` — then a long word is scanned once.",
        "`(?i)bearer\\s+[A-Za-z0-9._~+/-]+=*` → `Bearer [REDACTED_TOKEN]`, and "
        "`(?<![\\w.%+-])[\\w.%+-]+@[\\w-]+(?:\\.[\\w-]+)+` → `[REDACTED_EMAIL]`; then "
        "`return text`.",
    ),
)
def check_redact(redact: Callable[[str], str]) -> str:
    expect_callable(redact, "redact")
    for text, wanted in _REDACT_CASES.items():
        out = call_student(f"`redact({text!r})`", redact, text)
        expect(isinstance(out, str), f"`redact` returned {out!r} — did you `return` the text?")
        expect(out == wanted, f"`redact({text!r})` gave {out!r}")
    for plain in _PLAIN:
        out = call_student(f"`redact({plain!r})`", redact, plain)
        expect(out == plain, f"`redact` changed text without secrets: {plain!r} became {out!r}")
    for shape, make in REDACTION_STRESS.items():
        growth = measure_growth(redact, make)
        expect(
            growth.linear,
            f"on {shape}, `redact` slows down faster than the text grows: {growth}. "
            "A 1 MB input would take minutes — see `ex3.hint('redact')`",
        )
    return "tokens after any whitespace, whole addresses in any alphabet, in linear time."


# -- Task 3 -------------------------------------------------------------------------------------
@ex.task(
    "bottleneck",
    "Task 3 · bottleneck",
    points=3,
    needs=("find_bottleneck",),
    seconds=10,
    hints=(
        "First drop the spans still running. A leaf is a span that is no other span's parent; "
        "a root is a span whose parent is not among the spans left.",
        "`parents = {s.parent_id for s in done}`; the leaves are `[s for s in done if s.id not in "
        "parents]`; the total is the sum of the roots' durations.",
        "`slowest = max(leaves, key=lambda s: s.duration)`; return `Bottleneck(slowest, "
        "slowest.duration / total)` (and `None` when there are no finished spans).",
    ),
)
def check_bottleneck(find_bottleneck: Callable[[Sequence[Span]], Bottleneck | None]) -> str:
    expect_callable(find_bottleneck, "find_bottleneck")
    spans = [
        Span(id="r", parent_id=None, kind="module", name="Root", start=0.0, duration=0.5),
        Span(id="p", parent_id="r", kind="module", name="Predict", start=0.0, duration=0.45),
        Span(id="f", parent_id="p", kind="format", name="format", start=0.0, duration=0.05),
        Span(id="l", parent_id="p", kind="lm", name="lm", start=0.05, duration=0.4),
    ]
    found = call_student("`find_bottleneck`", find_bottleneck, spans)
    expect(
        found is not None,
        "`find_bottleneck` returned None for a non-empty trace — did you `return`?",
    )
    expect(
        isinstance(found, Bottleneck),
        f"expected a `Bottleneck(span, share)`, got {type(found).__name__}",
    )
    expect(
        found.span.kind != "module",
        f"you picked {found.span.name!r}, which has children: its time is theirs; look only at "
        "leaves",
    )
    expect(found.span.name == "lm", f"you picked {found.span.name!r}; the slowest leaf takes 0.4 s")
    expect(
        abs(found.share - 0.8) < 1e-6,
        f"share is {found.share!r}; divide by the roots' total duration",
    )
    two_roots = spans + [
        Span(id="r2", parent_id=None, kind="module", name="Root2", start=1.0, duration=0.5),
        Span(id="s", parent_id="r2", kind="parse", name="slowest", start=1.0, duration=0.45),
        Span(id="x", parent_id="s", kind="lm", name="running", start=1.0),
        Span(id="y", parent_id=None, kind="module", name="running root", start=2.0),
        Span(
            id="y1", parent_id="y", kind="lm", name="under a running root", start=2.0, duration=0.25
        ),
    ]
    found = call_student("`find_bottleneck`", find_bottleneck, two_roots)
    expect(
        found is not None and found.span.name == "slowest",
        f"with a second root and spans still running you picked "
        f"{found.span.name if found else None!r}; expected 'slowest' — running spans are left "
        "out first, so a span whose only child still runs is a leaf",
    )
    expect(
        abs(found.share - 0.45 / 1.25) < 1e-6,
        f"share is {found.share!r}; the total is the sum of the finished roots — and a finished "
        "span under a running one is a root of what is left (1.25 s)",
    )
    expect(
        call_student("`find_bottleneck`", find_bottleneck, []) is None,
        "an empty trace should give None",
    )
    only_running = [Span(id="z", parent_id=None, kind="lm", name="z", start=0.0)]
    expect(
        call_student("`find_bottleneck`", find_bottleneck, only_running) is None,
        "a trace whose spans are all still running should give None",
    )
    return "the slowest finished leaf and its share of the finished roots' time."


# -- Task 4 (going further) ---------------------------------------------------------------------
@ex.task(
    "tree",
    "Task 4 · trace tree (optional)",
    points=0,
    core=False,
    needs=("render_tree",),
    seconds=10,
    hints=(
        "Build `children = children_of(spans)`: parent id → its children in start order, with the "
        "roots (and orphans, whose parent is not in the trace) under `None`.",
        "Write a small recursive `walk(span, depth)` that appends this span's line, then calls "
        "itself on each child with `depth + 1`; call it on every root, in order.",
        "One line: `f\"{'  ' * depth}{span.kind} {span.name} {span.duration * 1000:.1f} ms\"` "
        '(`running` if `duration is None`), plus `f"  FAILED {type(span.error).__name__}: '
        '{span.error}"` when `span.error` is set.',
    ),
)
def check_render_tree(render_tree: Callable[[Sequence[Span]], str]) -> str:
    expect_callable(render_tree, "render_tree")
    root = Span(id="r", parent_id=None, kind="module", name="Root", start=0.0, duration=0.002)
    mid = Span(id="m", parent_id="r", kind="module", name="Mid", start=0.0001, duration=0.0015)
    leaf = Span(
        id="l",
        parent_id="m",
        kind="lm",
        name="Leaf",
        start=0.0002,
        duration=0.001,
        error=RuntimeError("boom"),
    )
    text = call_student("`render_tree`", render_tree, [leaf, mid, root])
    expect(
        isinstance(text, str),
        f"`render_tree` returned {type(text).__name__}, not a string — did you `return`?",
    )
    lines = text.splitlines()
    expect(len(lines) == 3, f"3 spans gave {len(lines)} lines: {lines}")
    expect(
        lines[0] == "module Root 2.0 ms",
        f"first line is {lines[0]!r}; expected 'module Root 2.0 ms' "
        "('<kind> <name> <ms with 1 decimal> ms', the root first)",
    )
    expect(
        lines[1].startswith("  module Mid"),
        f"second line is {lines[1]!r}: a child is indented by 2 spaces",
    )
    expect(
        lines[2].startswith("    lm Leaf 1.0 ms"),
        f"third line is {lines[2]!r}: a grandchild gets 4 spaces",
    )
    expect(
        lines[2].endswith("  FAILED RuntimeError: boom"),
        f"a failed span should end with '  FAILED RuntimeError: boom': {lines[2]!r}",
    )
    # Two calls that overlapped: start order interleaves them, the tree keeps each under its root.
    a = Span(id="a", parent_id=None, kind="module", name="A", start=0.0, duration=0.004)
    b = Span(id="b", parent_id=None, kind="module", name="B", start=0.001, duration=0.004)
    a1 = Span(id="a1", parent_id="a", kind="lm", name="A-lm", start=0.002, duration=0.001)
    b1 = Span(id="b1", parent_id="b", kind="lm", name="B-lm", start=0.0015, duration=0.001)
    names = [
        line.split()[1]
        for line in call_student("`render_tree`", render_tree, [b1, a1, b, a]).splitlines()
    ]
    expect(
        names == ["A", "A-lm", "B", "B-lm"],
        f"two overlapping calls gave the order {names}; expected ['A', 'A-lm', 'B', 'B-lm'] — each "
        "span right under its parent (depth first), siblings and roots in start order",
    )
    orphan = Span(id="o", parent_id="gone", kind="parse", name="Orphan", start=0.5, duration=0.001)
    lone = call_student("`render_tree`", render_tree, [orphan])
    expect(
        lone.startswith("parse Orphan 1.0 ms"),
        f"a span whose parent is not in the trace gave {lone!r}: it is a root (no indentation)",
    )
    running = Span(id="x", parent_id=None, kind="lm", name="Slow", start=0.0)
    shown = call_student("`render_tree`", render_tree, [running])
    expect(
        shown == "lm Slow running",
        f"a span still running gave {shown!r}; expected 'lm Slow running'",
    )
    empty = call_student("`render_tree`", render_tree, [])
    expect(empty == "(no spans)", f"an empty trace gave {empty!r}; expected '(no spans)'")
    return (
        "depth first, siblings in start order, orphans as roots, failures and running spans marked."
    )


# -- Task 5 (going further) ---------------------------------------------------------------------
@ex.task(
    "logger",
    "Task 5 · one handler per logger (optional)",
    points=0,
    core=False,
    needs=("get_trace_logger",),
    seconds=10,
    hints=(
        "`logging.getLogger(name)` returns the same object every time: look at its `handlers` "
        "before adding one.",
        "Compare `handler.baseFilename` (an absolute path) with `Path(path).resolve()`; keep one "
        "`FileHandler` for this path, `removeHandler` + `close()` any other.",
        "Create the folder with `Path(path).parent.mkdir(parents=True, exist_ok=True)`, then "
        "`logger.setLevel(logging.INFO)`, `logger.propagate = False`, and "
        "`handler.setFormatter(logging.Formatter(fmt))` on the one you keep.",
    ),
)
def check_trace_logger(get_trace_logger: Callable[..., logging.Logger]) -> str:
    expect_callable(get_trace_logger, "get_trace_logger")
    name = "workbook.selfcheck.ex3"
    logger = logging.getLogger(name)
    with tempfile.TemporaryDirectory(prefix="ex3-check-") as tmp:
        folder = Path(tmp)
        try:
            first = call_student(
                "`get_trace_logger`", get_trace_logger, name, folder / "logs" / "check.log"
            )
            expect(
                isinstance(first, logging.Logger),
                f"`get_trace_logger` returned {first!r}, not a logging.Logger",
            )
            second = call_student(
                "`get_trace_logger`", get_trace_logger, name, folder / "logs" / "check.log"
            )
            expect(
                first is second,
                "two calls returned different loggers — use `logging.getLogger(name)`",
            )
            files = [h for h in second.handlers if isinstance(h, logging.FileHandler)]
            expect(
                len(files) == 1,
                f"after two calls the logger has {len(files)} file handlers — each line "
                f"would be written {len(files)} times",
            )
            expect(
                second.propagate is False,
                "`propagate` is still True: lines would also reach the root logger",
            )
            expect(
                second.level == logging.INFO,
                f"the logger's level is {logging.getLevelName(second.level)}; set it to INFO",
            )
            second.info("one line")
            files[0].flush()
            written = (folder / "logs" / "check.log").read_text().count("one line")
            expect(written == 1, f"one `info` call wrote {written} lines to the file")
            moved = call_student(
                "`get_trace_logger`",
                get_trace_logger,
                name,
                folder / "other.log",
                "%(levelname)s|%(message)s",
            )
            files = [h for h in moved.handlers if isinstance(h, logging.FileHandler)]
            expect(
                len(files) == 1 and Path(files[0].baseFilename) == (folder / "other.log").resolve(),
                f"after a call with a new path the file handlers write to "
                f"{[h.baseFilename for h in files]}; expected only the new file",
            )
            moved.info("moved")
            files[0].flush()
            text = (folder / "other.log").read_text().strip()
            expect(
                text == "INFO|moved",
                f"with fmt '%(levelname)s|%(message)s' the file reads {text!r}",
            )
        finally:  # leave no open file behind, so the folder can be removed
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
                handler.close()
    return "re-running the cell keeps exactly one file handler; a new path replaces the old one."


# -- Task 6 (going further) ---------------------------------------------------------------------
@ex.task(
    "navigation",
    "Task 6 · step to the next match (optional)",
    points=0,
    core=False,
    needs=("find_next",),
    seconds=10,
    hints=(
        "Start at `index + step` and keep adding `step` while you are inside `0 … len(spans) - 1`.",
        "`i = index + step; while 0 <= i < len(spans): if where(spans[i]): return i; i += step` — "
        "then `return None`. Check `step in (1, -1)` first.",
    ),
)
def check_find_next(find_next: Callable[..., int | None]) -> str:
    expect_callable(find_next, "find_next")
    spans = [
        Span(
            id=str(i),
            parent_id=None,
            kind=kind,
            name=f"s{i}",
            start=float(i),
            duration=0.1,
            error=RuntimeError("x") if i in (1, 4) else None,
        )
        for i, kind in enumerate(["module", "lm", "parse", "lm", "module"])
    ]
    failed = lambda s: not s.ok  # noqa: E731
    checks = [
        ((0, 1, failed), 1),
        ((1, 1, failed), 4),
        ((4, 1, failed), None),
        ((4, -1, failed), 1),
        ((1, -1, failed), None),
        ((-1, 1, failed), 1),
        ((5, -1, failed), 4),
        ((0, 1, lambda s: s.kind == "lm"), 1),
        ((3, -1, lambda s: s.kind == "lm"), 1),
    ]
    for (index, step, where), expected in checks:
        got = call_student("`find_next`", find_next, spans, index, step, where)
        expect(
            got == expected,
            f"`find_next(spans, {index}, {step}, …)` gave {got!r}; expected {expected!r}",
        )
    for bad in (0, 2):
        try:
            find_next(spans, 0, bad, failed)
        except ValueError:
            continue
        except Exception as exc:
            raise AssertionError(
                f"`step={bad}` raised {type(exc).__name__}; expected ValueError"
            ) from exc
        raise AssertionError(
            f"`step={bad}` was accepted; raise ValueError (only +1 and -1 make sense)"
        )
    return "forward, backward, from either end, and a clear error for a bad step."


# -- Task 7 (going further) ---------------------------------------------------------------------
@ex.task(
    "breakpoints",
    "Task 7 · breakpoints (optional)",
    points=0,
    core=False,
    needs=("break_when",),
    seconds=10,
    hints=(
        "Return an inner function `condition(span) -> bool` that remembers `module` and `where`.",
        "In `condition`: `False` if `module` is given and not in `span.name`; `True` if `where` is "
        "None; otherwise `bool(where(span))` inside `try`/`except Exception: return False`.",
    ),
)
def check_break_when(break_when: Callable[..., Callable[[Span], bool]]) -> str:
    expect_callable(break_when, "break_when")
    span = Span(
        id="s",
        parent_id=None,
        kind="lm",
        name="LM sim/x",
        start=0.0,
        duration=0.1,
        inputs={"question": "q"},
    )
    condition = call_student("`break_when('LM')`", break_when, "LM")
    expect(
        callable(condition), f"`break_when(...)` returned {condition!r}, not a function of a span"
    )
    expect(condition(span) is True, "`break_when('LM')` does not hold for a span named 'LM sim/x'")
    expect(
        break_when("Predict")(span) is False,
        "`break_when('Predict')` holds for a span named 'LM sim/x'",
    )
    expect(
        break_when()(span) is True, "`break_when()` with no condition should hold for every span"
    )
    expect(break_when(where=lambda s: s.kind == "lm")(span) is True, "a true `where` did not hold")
    expect(break_when("LM", where=lambda s: False)(span) is False, "both conditions must hold")
    expect(
        break_when(where=lambda s: s.missing)(span) is False,
        "a `where` that raises should count as False",
    )
    return "name and predicate conditions combine, and a broken predicate is just False."


hint, check_all = ex.hint, ex.check_all
