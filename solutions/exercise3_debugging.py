"""Answer key for 03_debugging.ipynb — generated from source/ch07/03_debugging.py by tools/build.py; do not edit.

Run: python solutions/exercise3_debugging.py  (backend: $WORKBOOK_LM, default local)
"""

# # Exercise 3 — Debugging and tracing a DSPy program
import dspy_workbook as wb

lm = wb.setup()

import asyncio
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import dspy
from dspy.utils.callback_context import ACTIVE_CALL_ID
from IPython.display import display

from dspy_workbook.checks import ex3
from dspy_workbook.tracing import (
    Bottleneck,
    LogSink,
    Span,
    TracerHooks,
    TraceStepper,
    children_of,
    lm_usage,
    plot_timeline,
    read_jsonl,
    replay_lm,
    run_async,
    span_name,
    spans_table,
    tidy_inputs,
    trace_log_dir,
)

# ## The program we will debug
class DraftAndReview(dspy.Module):
    """Draft an answer with reasoning, then review the draft."""

    def __init__(self) -> None:
        super().__init__()
        self.draft = dspy.ChainOfThought("question -> answer")
        self.review = dspy.Predict("question, answer -> verdict")

    def forward(self, question: str) -> dspy.Prediction:
        draft = self.draft(question=question)
        review = self.review(question=question, answer=draft.answer)
        return dspy.Prediction(answer=draft.answer, verdict=review.verdict)


program = DraftAndReview()
print(program(question="What is the capital of France?").answer != "")

# ## What DSPy already records — and where it stops
dspy.inspect_history(n=1)  # the last prompt and reply, pretty-printed

entry = lm.history[-1]
with dspy.context(trace=[]):
    program(question="Who wrote Hamlet?")
    flat = dspy.settings.trace
with dspy.track_usage() as usage:
    program(question="What colour is grass?")

print("lm.history keys:", sorted(entry))
print("has a latency field:", any("latency" in k or "duration" in k for k in entry))
print("settings.trace:", [(type(p).__name__, sorted(i)) for p, i, _ in flat])
print("track_usage totals per model:", sorted(usage.get_total_tokens()))

# ## Task 1 — a tracer built on DSPy's callbacks *(core, 10 min, 3 points)*
class SpanTracer(TracerHooks):
    """Record every DSPy module, LM and adapter call as a `Span` with its parent's id."""

    def __init__(
        self,
        sinks: Sequence[Callable[[Span], None]] = (),
        breakpoints: Sequence[Callable[[Span], bool]] = (),
    ) -> None:
        self.spans: list[Span] = []
        self.sinks = list(sinks)
        self.breakpoints = list(breakpoints)
        self.hits: list[dict] = []  # state captured at breakpoints (Task 7)
        self._open: dict[str, Span] = {}
        self._claimed: set[str] = set()  # lm.history entries already matched to a span
        self._lock = threading.Lock()

    def _start(self, call_id: str, kind: str, instance, inputs: dict) -> None:
        """Open a span whose parent is the call running right now."""
        span = Span(
            id=call_id,
            parent_id=ACTIVE_CALL_ID.get(),
            kind=kind,
            name=span_name(instance),
            inputs=tidy_inputs(inputs),
            start=time.perf_counter(),
            started_at=time.time(),
            instance=instance,
        )
        with self._lock:
            self._open[call_id] = span
            self.spans.append(span)

    def _end(self, call_id: str, outputs, exception: BaseException | None) -> None:
        """Close the span: duration, outputs or exception, and usage for LM calls."""
        with self._lock:
            span = self._open.pop(call_id, None)
        if span is None:
            return
        span.duration = time.perf_counter() - span.start
        span.outputs, span.error = outputs, exception
        if span.kind == "lm":
            with self._lock:
                span.tokens, span.cache_hit = lm_usage(span.instance, span.inputs, self._claimed)
        self._finished(span)

    # ---- given: what happens to a finished span -------------------------------------------
    def _finished(self, span: Span) -> None:
        for sink in self.sinks:
            sink(span)
        for condition in self.breakpoints:
            if condition(span):
                self.hits.append(
                    {
                        "span": span.name,
                        "kind": span.kind,
                        "inputs": dict(span.inputs),
                        "outputs": span.outputs,
                        "error": span.error,
                    }
                )

    def clear(self) -> None:
        """Forget every recorded span (the sinks and breakpoints stay)."""
        with self._lock:
            self.spans.clear()
            self.hits.clear()

tracer = SpanTracer()
with dspy.context(callbacks=[tracer]):
    program(question="Why is the sky blue?")
print(len(tracer.spans), "spans:", sorted({s.kind for s in tracer.spans}))

ex3.check_tracer(SpanTracer)

concurrent = SpanTracer()


async def ask_three() -> list:
    with dspy.context(callbacks=[concurrent]):
        qa = dspy.Predict("question -> answer")
        return await asyncio.gather(*(qa.acall(question=q) for q in ("Red?", "Green?", "Blue?")))


run_async(ask_three)
spans_per_tree = {root.id: 0 for root in children_of(concurrent.spans).get(None, [])}
for s in concurrent.spans:
    top = s
    while top.parent_id is not None:
        top = next(p for p in concurrent.spans if p.id == top.parent_id)
    spans_per_tree[top.id] += 1
print(len(spans_per_tree), "trees; spans per tree:", list(spans_per_tree.values()))

# Visible tests: a two-module program gives a tree of module, LM and adapter spans.
from dspy_workbook import sim_lm as _sim_lm
from dspy_workbook.threads import run_async as _run_async

t = SpanTracer()
with dspy.context(callbacks=[t], lm=_sim_lm(latency=0.01, cache=False)):
    DraftAndReview()(question="What is 2 + 2?")
kinds = [s.kind for s in t.spans]
assert kinds, "no spans were recorded: `_start` must append each span to `self.spans`"
assert {"module", "lm", "format", "parse"} <= set(kinds), (
    f"span kinds recorded: {sorted(set(kinds))}"
)
assert kinds.count("lm") == 2, (
    f"two LM calls expected (draft and review), recorded {kinds.count('lm')}"
)
by_id = {s.id: s for s in t.spans}
roots = [s for s in t.spans if s.parent_id is None]
assert len(roots) == 1 and roots[0].name == "DraftAndReview", f"roots: {[r.name for r in roots]}"
for s in t.spans:
    assert s.duration is not None and s.duration >= 0, f"{s.name} has duration {s.duration}"
    assert s is roots[0] or s.parent_id in by_id, f"{s.name}'s parent is not in the trace"
lm_parent = by_id[next(s for s in t.spans if s.kind == "lm").parent_id]
assert lm_parent.name.startswith("Predict"), (
    f"an LM span's parent is {lm_parent.name}, expected a Predict"
)
assert by_id[lm_parent.parent_id].name.startswith("ChainOfThought"), (
    "Predict inside CoT should hang under it"
)
assert all(s.tokens and s.tokens.get("total_tokens", 0) > 0 for s in t.spans if s.kind == "lm")
# failures are traced too
t2 = SpanTracer()
try:
    with dspy.context(
        callbacks=[t2], lm=_sim_lm(latency=0.0, error_rate=1.0, num_retries=0, cache=False)
    ):
        dspy.Predict("question -> answer")(question="will this fail?")
except Exception:
    pass
failed = [s for s in t2.spans if not s.ok]
assert {s.kind for s in failed} >= {"lm", "module"}, (
    f"failed spans: {[(s.kind, s.name) for s in failed]}"
)
assert all(isinstance(s.error, BaseException) and s.duration is not None for s in failed)
# concurrent async calls keep separate trees
t3 = SpanTracer()
questions = [f"concurrent question {i}" for i in range(4)]


async def _many():
    with dspy.context(callbacks=[t3], lm=_sim_lm(latency=0.02, cache=False)):
        return await asyncio.gather(
            *(dspy.ChainOfThought("question -> answer").acall(question=q) for q in questions)
        )


_run_async(_many)
ids3 = {s.id: s for s in t3.spans}


def _root(s):
    while s.parent_id in ids3:
        s = ids3[s.parent_id]
    return s


for s in t3.spans:
    if s.kind == "lm":
        asked = _root(s).inputs.get("question")
        assert asked in str(s.inputs.get("messages")), "an LM span hangs under another call's root"
assert len([s for s in t3.spans if s.parent_id is None]) == 4

# ## Task 2 — print the trace as a tree *(core, 6 min, 2 points)*
def render_tree(spans: Sequence[Span]) -> str:
    """The trace as an indented tree, one line per span, depth first."""
    if not spans:
        return "(no spans)"
    children = children_of(spans)
    lines: list[str] = []

    def walk(span: Span, depth: int) -> None:
        took = "running" if span.duration is None else f"{span.duration * 1000:.1f} ms"
        line = f"{'  ' * depth}{span.kind} {span.name} {took}"
        if span.error is not None:
            line += f"  FAILED {type(span.error).__name__}: {span.error}"
        lines.append(line)
        for child in children.get(span.id, []):
            walk(child, depth + 1)

    for root in children.get(None, []):
        walk(root, 0)
    return "\n".join(lines)

print(render_tree(tracer.spans))

ex3.check_render_tree(render_tree)

from dspy_workbook.tracing import Span as _Span

root = _Span(id="r", parent_id=None, kind="module", name="Outer", start=0.0, duration=0.0125)
child = _Span(id="c", parent_id="r", kind="lm", name="LM sim", start=0.001, duration=0.010)
text = render_tree([child, root])
assert text.splitlines() == ["module Outer 12.5 ms", "  lm LM sim 10.0 ms"], text
assert render_tree([]) == "(no spans)"
bad = _Span(
    id="g",
    parent_id="c",
    kind="parse",
    name="JSONAdapter",
    start=0.002,
    duration=0.0001,
    error=ValueError("no JSON"),
)
lines = render_tree([root, child, bad]).splitlines()
assert lines[2] == "    parse JSONAdapter 0.1 ms  FAILED ValueError: no JSON", lines
orphan = _Span(id="o", parent_id="gone", kind="module", name="Orphan", start=0.5, duration=0.001)
assert render_tree([orphan]).splitlines() == ["module Orphan 1.0 ms"], "an orphan is a root"
running = _Span(id="x", parent_id="r", kind="lm", name="Slow", start=0.02)
assert render_tree([root, running]).splitlines()[1] == "  lm Slow running"
# overlapping requests: depth first, not start order
a = _Span(id="a", parent_id=None, kind="module", name="A", start=0.0, duration=0.004)
b = _Span(id="b", parent_id=None, kind="module", name="B", start=0.001, duration=0.004)
a1 = _Span(id="a1", parent_id="a", kind="lm", name="A1", start=0.003, duration=0.001)
a2 = _Span(id="a2", parent_id="a", kind="lm", name="A2", start=0.002, duration=0.001)
b1 = _Span(id="b1", parent_id="b", kind="lm", name="B1", start=0.0015, duration=0.001)
b11 = _Span(id="b11", parent_id="b1", kind="parse", name="B11", start=0.0016, duration=0.0001)
got = [line.strip().split()[1] for line in render_tree([b11, a1, b1, b, a2, a]).splitlines()]
assert got == ["A", "A2", "A1", "B", "B1", "B11"], got

spans_table(tracer.spans)

# ## Task 3 — redaction: secrets never reach a log *(core, 10 min, 2 points)*
def redact(text: str, extra_patterns: Sequence[str] = ()) -> str:
    """`text` with API keys, bearer tokens, e-mail addresses and `extra_patterns` masked."""
    text = re.sub(r"sk-[A-Za-z0-9_\-]{16,}", "[REDACTED_KEY]", text)
    text = re.sub(r"(?i)bearer\s+[\w.~+/\-]+=*", "Bearer [REDACTED_TOKEN]", text)
    # \w is Unicode-aware; the lookbehind lets an address start only where a word starts, so a
    # long word is scanned once instead of once per character (linear, not quadratic).
    text = re.sub(r"(?<![\w.%+\-])[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)+", "[REDACTED_EMAIL]", text)
    for pattern in extra_patterns:
        try:
            text = re.sub(pattern, "[REDACTED]", text)
        except re.error as exc:
            raise ValueError(
                f"extra pattern {pattern!r} is not a valid regular expression: {exc}"
            ) from exc
    return text

def print_trace(spans: Sequence[Span], extra_patterns: Sequence[str] = ()) -> None:
    """Print the trace tree with secrets masked (error messages can echo them)."""
    print(redact(render_tree(spans), extra_patterns))


print(
    redact(
        "key sk-abcdefghijklmnop1234, mail ada@example.org, header Authorization: Bearer abc.def"
    )
)
print(redact("tab\tBearer\tabc.def, accents josé.garcía@correo.es"))

ex3.check_redact(redact)

import importlib

out = redact("use sk-proj-AAAAbbbbCCCCdddd1234 please")
assert "sk-proj-AAAA" not in out and "[REDACTED_KEY]" in out, out
assert redact("write to grace.hopper@navy.mil.example now") == "write to [REDACTED_EMAIL] now"
assert redact("nothing secret here") == "nothing secret here"
# Types first: an object whose `==` always answers True must not pass the comparisons below.
assert type(redact("nothing secret here")) is str
assert "tok123" not in redact("authorization: bearer tok123.x-y")
assert "[REDACTED_TOKEN]" in redact("Bearer tok123")
for spaced in (
    "Bearer\ttab-token",
    "Bearer\nline-token",
    "BEARER \t\n mixed-token",
    "x\\nBearer json-token",
):
    assert "-token" not in redact(spaced) and "[REDACTED_TOKEN]" in redact(spaced), redact(spaced)
assert redact("mail zoë.ångström@exämple.se today") == "mail [REDACTED_EMAIL] today"
assert "用户" not in redact("联系 用户@例子.中国")
assert redact("sk-short stays") == "sk-short stays", "short sk- words are not keys"
assert redact("café @ 5pm, ask-me-later") == "café @ 5pm, ask-me-later"
assert redact("employee E-12345 asked", extra_patterns=[r"E-\d{5}"]) == "employee [REDACTED] asked"
try:
    redact("x", extra_patterns=["("])
    raise AssertionError("a broken extra pattern should raise ValueError")
except ValueError as exc:
    assert "(" in str(exc)
# linear time, measured afresh (a solution cell cannot replace the measuring code)
_growth = importlib.reload(importlib.import_module("dspy_workbook.tracing._growth"))
for _shape, _make in _growth.REDACTION_STRESS.items():
    _g = _growth.measure_growth(redact, _make)
    assert _g.linear, f"redact on {_shape}: {_g}"

# ## Task 4 — log files that do not duplicate lines *(core, 6 min, 2 points)*
def get_trace_logger(name: str, path: str | Path, fmt: str = "%(message)s") -> logging.Logger:
    """The logger `name` writing to `path` — exactly one file handler, however often this runs."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    keep = None
    for handler in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
        if keep is None and Path(handler.baseFilename) == path:
            keep = handler
        else:  # a duplicate, or a file we no longer write to
            logger.removeHandler(handler)
            handler.close()
    if keep is None:
        keep = logging.FileHandler(path, encoding="utf-8")
        logger.addHandler(keep)
    keep.setFormatter(logging.Formatter(fmt))
    return logger

JSONL_PATH = trace_log_dir() / "trace.jsonl"
TEXT_PATH = trace_log_dir() / "trace.log"
json_logger = get_trace_logger("workbook.trace.json", JSONL_PATH)
text_logger = get_trace_logger(
    "workbook.trace.text", TEXT_PATH, "%(asctime)s %(levelname)s %(message)s"
)
secret_words = [r"(?i)(project\s+)?nightingale"]  # your own patterns: code names, customer ids, …
sink = LogSink(
    json_logger, text_logger, redact=functools.partial(redact, extra_patterns=secret_words)
)

logged = SpanTracer(sinks=[sink])
before = len(read_jsonl(JSONL_PATH))
with dspy.context(callbacks=[logged]):
    program(
        question="My key is sk-live-0123456789abcdef, my token Bearer\teyJ0b2tlbi.x and my mail "
        "ada@example.org. What is Project\nNightingale?"
    )
records = read_jsonl(JSONL_PATH)[before:]
print(f"{len(logged.spans)} spans -> {len(records)} new JSONL records")
on_disk = JSONL_PATH.read_text() + TEXT_PATH.read_text()
typed = ("sk-live-0123456789abcdef", "eyJ0b2tlbi.x", "ada@example.org", "Nightingale")
print("secrets in the log files:", any(secret in on_disk for secret in typed))
print("the Prediction was logged as:", records[-1]["outputs"]["__type__"])

import json

print(json.dumps(records[-1], indent=2, ensure_ascii=False)[:1500])
print("...")
print("\n".join(TEXT_PATH.read_text(encoding="utf-8").splitlines()[-len(records) :]))

ex3.check_trace_logger(get_trace_logger)

import tempfile

from dspy_workbook.tracing import LogSink as _LogSink
from dspy_workbook.tracing import Span as _Span
from dspy_workbook.tracing import read_jsonl as _read_jsonl


def _close_all(*names):
    for _name in names:
        _logger = logging.getLogger(_name)
        for _h in list(_logger.handlers):
            _logger.removeHandler(_h)
            _h.close()


with tempfile.TemporaryDirectory(prefix="ex3-grade-") as _folder:
    _tmp = Path(_folder)
    try:
        log_a = get_trace_logger("workbook.test.dup", _tmp / "a" / "x.log")
        log_a = get_trace_logger("workbook.test.dup", _tmp / "a" / "x.log")  # the cell "runs again"
        _files = [h for h in log_a.handlers if isinstance(h, logging.FileHandler)]
        assert len(_files) == 1, f"{len(_files)} file handlers after two calls"
        log_a.info("hello")
        for h in _files:
            h.flush()
        assert (_tmp / "a" / "x.log").read_text().count("hello") == 1
        assert log_a.propagate is False and log_a.level == logging.INFO
        log_b = get_trace_logger("workbook.test.dup", _tmp / "b.log", "%(levelname)s|%(message)s")
        _files = [h for h in log_b.handlers if isinstance(h, logging.FileHandler)]
        assert len(_files) == 1 and Path(_files[0].baseFilename) == (_tmp / "b.log").resolve()
        log_b.info("second")
        _files[0].flush()
        assert (_tmp / "b.log").read_text().strip() == "INFO|second"
        assert "second" not in (_tmp / "a" / "x.log").read_text()
        # spans written through LogSink (given) land once each, with the sink's redaction
        jl = get_trace_logger("workbook.test.json", _tmp / "t.jsonl")
        jl = get_trace_logger("workbook.test.json", _tmp / "t.jsonl")
        tl = get_trace_logger("workbook.test.text", _tmp / "t.log")
        _sink = _LogSink(jl, tl, redact=lambda s: s.replace("s3cr3t", "[X]"))
        for _i in range(3):
            _sink(
                _Span(
                    id=f"span{_i}",
                    parent_id=None,
                    kind="lm",
                    name="LM",
                    start=0.0,
                    duration=0.001,
                    inputs={"question": "the s3cr3t\nplan"},
                )
            )
        for h in jl.handlers + tl.handlers:
            h.flush()
        assert [r["id"] for r in _read_jsonl(_tmp / "t.jsonl")] == ["span0", "span1", "span2"]
        assert len((_tmp / "t.log").read_text().splitlines()) == 3
        assert "s3cr3t" not in (_tmp / "t.jsonl").read_text()
    finally:  # close the files, so the folder can be removed
        _close_all("workbook.test.dup", "workbook.test.json", "workbook.test.text")

# ## Task 5 — find the bottleneck, and see it on a timeline *(core, 6 min, 2 points)*
def find_bottleneck(spans: Sequence[Span]) -> Bottleneck | None:
    """The slowest finished leaf span and its share of the trace's total time."""
    done = [s for s in spans if s.duration is not None]
    ids = {s.id for s in done}
    parents = {s.parent_id for s in done}
    leaves = [s for s in done if s.id not in parents]
    if not leaves:
        return None
    total = sum(s.duration for s in done if s.parent_id not in ids)
    slowest = max(leaves, key=lambda s: s.duration)
    return Bottleneck(slowest, slowest.duration / total if total > 0 else 1.0)

hot = find_bottleneck(tracer.spans)
print(hot)
fig = plot_timeline(tracer.spans, highlight=hot.span.id if hot else None)

ex3.check_bottleneck(find_bottleneck)

from dspy_workbook.tracing import Span as _Span

spans = [
    _Span(id="r", parent_id=None, kind="module", name="Root", start=0.0, duration=1.0),
    _Span(id="a", parent_id="r", kind="lm", name="fast", start=0.0, duration=0.2),
    _Span(id="b", parent_id="r", kind="lm", name="slow", start=0.2, duration=0.7),
]
found = find_bottleneck(spans)
assert found is not None and found.span.name == "slow", f"found {found}"
assert abs(found.share - 0.7) < 1e-9, f"share {found.share}"
assert find_bottleneck([]) is None
two_roots = spans + [
    _Span(id="r2", parent_id=None, kind="module", name="Root2", start=1.0, duration=1.0),
    _Span(id="c", parent_id="r2", kind="parse", name="slowest", start=1.0, duration=0.9),
    _Span(id="x", parent_id="r2", kind="lm", name="running", start=1.0, duration=None),
]
found = find_bottleneck(two_roots)
assert found.span.name == "slowest" and abs(found.share - 0.45) < 1e-9, found
# a running root is left out; its finished child becomes a root of what is left
partial = [
    _Span(id="p", parent_id=None, kind="module", name="still running", start=0.0),
    _Span(id="q", parent_id="p", kind="module", name="done", start=0.0, duration=0.4),
    _Span(id="q1", parent_id="q", kind="lm", name="leaf", start=0.0, duration=0.3),
]
found = find_bottleneck(partial)
assert found.span.name == "leaf" and abs(found.share - 0.75) < 1e-9, found
assert find_bottleneck([_Span(id="z", parent_id=None, kind="lm", name="z", start=0.0)]) is None
deep = [
    _Span(id="m", parent_id=None, kind="module", name="M", start=0.0, duration=0.5),
    _Span(id="m1", parent_id="m", kind="module", name="M1", start=0.0, duration=0.45),
    _Span(id="m2", parent_id="m1", kind="format", name="tiny", start=0.0, duration=0.01),
    _Span(id="m3", parent_id="m", kind="parse", name="mid", start=0.0, duration=0.04),
]
assert find_bottleneck(deep).span.name == "mid", "M1 has a child: its time is its child's"

# ## Going further *(optional, ungraded)*
# ### Task 6 — step through a trace *(5 min)*
def find_next(
    spans: Sequence[Span], index: int, step: int, where: Callable[[Span], bool]
) -> int | None:
    """Position of the nearest span past `index` in direction `step` with `where(span)`, or None."""
    if step not in (1, -1):
        raise ValueError(f"step must be 1 (forward) or -1 (backward), got {step!r}")
    position = index + step
    while 0 <= position < len(spans):
        if where(spans[position]):
            return position
        position += step
    return None

ex3.check_find_next(find_next)

flaky = wb.sim_lm(latency=0.01, error_rate=1.0, num_retries=0)
failing_trace = SpanTracer()
failure = None
try:
    with dspy.context(callbacks=[failing_trace]):
        draft = program.draft(question="What is 6 x 7?")
        with dspy.context(lm=flaky):
            program.review(question="What is 6 x 7?", answer=draft.answer)
except Exception as exc:
    failure = type(exc).__name__
stepper = TraceStepper(failing_trace.spans, redact=redact, find_next=find_next)
stepper.jump(+1)  # the filter starts on "failed": jump to the first failure
shown = stepper.current
print("the program failed:", failure)
print(
    f"showing span {stepper.index + 1} of {len(stepper.spans)}: {shown.kind if shown else None}, "
    f"ok={shown.ok if shown else None}"
)

print_trace(failing_trace.spans)  # the printed tree marks the failure too

# ### Task 7 — breakpoints and replay *(10 min)*
def break_when(
    module: str | None = None, where: Callable[[Span], bool] | None = None
) -> Callable[[Span], bool]:
    """A breakpoint condition: the span's name contains `module` and `where(span)` holds."""

    def condition(span: Span) -> bool:
        if module is not None and module not in span.name:
            return False
        if where is None:
            return True
        try:
            return bool(where(span))
        except Exception:
            return False

    return condition

ex3.check_break_when(break_when)

try:
    conditions = [break_when("Predict(question, answer"), break_when(where=lambda s: not s.ok)]
except NotImplementedError:  # Task 7 is optional: the replay below works without it
    conditions = []
    print("(Task 7 not done: no breakpoints; the replay still runs)")
bp = SpanTracer(breakpoints=conditions)
with dspy.context(callbacks=[bp]):
    program(question="Is water wet?")
for hit in bp.hits:
    print(hit["kind"], hit["span"], "->", {k: str(v)[:40] for k, v in hit["inputs"].items()})

calls_before = len(lm.history)
with dspy.context(callbacks=[], lm=replay_lm(bp.spans)):
    replayed = program(question="Is water wet?")
print("replayed verdict:", replayed.verdict[:60])
print("course LM calls during replay:", len(lm.history) - calls_before)

# ## Check everything, then submit
ex3.check_all()

# ## Questionnaire
# ## Further research
