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
from dspy.utils.callback import BaseCallback
from dspy.utils.callback_context import ACTIVE_CALL_ID
from IPython.display import display

from dspy_workbook.checks import ex3
from dspy_workbook.tracing import (
    LOG_DIR, Bottleneck, LogSink, Span, TraceStepper, lm_usage, plot_timeline, read_jsonl, replay_lm,
    run_async, span_name, spans_table, tidy_inputs,
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

# ## Task 1 — a tracer built on DSPy's callbacks
class SpanTracer(BaseCallback):
    """Record every DSPy module, LM and adapter call as a `Span` with its parent's id."""

    def __init__(self, sinks: Sequence[Callable[[Span], None]] = (),
                 breakpoints: Sequence[Callable[[Span], bool]] = ()) -> None:
        self.spans: list[Span] = []
        self.sinks = list(sinks)
        self.breakpoints = list(breakpoints)
        self.hits: list[dict] = []           # state captured at breakpoints (Task 7)
        self._open: dict[str, Span] = {}
        self._claimed: set[str] = set()      # lm.history entries already matched to a span
        self._lock = threading.Lock()

    def _start(self, call_id: str, kind: str, instance, inputs: dict) -> None:
        """Open a span whose parent is the call running right now."""
        # 1. parent id: ACTIVE_CALL_ID.get()   2. build the Span (fields listed above)
        # 3. holding self._lock: remember it in self._open and append it to self.spans
        span = Span(id=call_id, parent_id=ACTIVE_CALL_ID.get(), kind=kind, name=span_name(instance),
                    inputs=tidy_inputs(inputs), start=time.perf_counter(), started_at=time.time(),
                    instance=instance)
        with self._lock:
            self._open[call_id] = span
            self.spans.append(span)

    def _end(self, call_id: str, outputs, exception: BaseException | None) -> None:
        """Close the span: duration, outputs or exception, and usage for LM calls."""
        # 1. pop the span from self._open (holding the lock); unknown id -> return
        # 2. duration = now - span.start; outputs; error   3. LM span: lm_usage(...)
        # 4. self._finished(span)
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
                self.hits.append({"span": span.name, "kind": span.kind, "inputs": dict(span.inputs),
                                  "outputs": span.outputs, "error": span.error})

    def clear(self) -> None:
        """Forget every recorded span (the sinks and breakpoints stay)."""
        with self._lock:
            self.spans.clear()
            self.hits.clear()

    # ---- given: DSPy's hooks, all funnelled into _start/_end ------------------------------
    def on_module_start(self, call_id, instance, inputs):
        self._start(call_id, "module", instance, inputs)

    def on_module_end(self, call_id, outputs, exception=None):
        self._end(call_id, outputs, exception)

    def on_lm_start(self, call_id, instance, inputs):
        self._start(call_id, "lm", instance, inputs)

    def on_lm_end(self, call_id, outputs, exception=None):
        self._end(call_id, outputs, exception)

    def on_adapter_format_start(self, call_id, instance, inputs):
        self._start(call_id, "format", instance, inputs)

    def on_adapter_format_end(self, call_id, outputs, exception=None):
        self._end(call_id, outputs, exception)

    def on_adapter_parse_start(self, call_id, instance, inputs):
        self._start(call_id, "parse", instance, inputs)

    def on_adapter_parse_end(self, call_id, outputs, exception=None):
        self._end(call_id, outputs, exception)

    def on_tool_start(self, call_id, instance, inputs):
        self._start(call_id, "tool", instance, inputs)

    def on_tool_end(self, call_id, outputs, exception=None):
        self._end(call_id, outputs, exception)

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
trees = {s.id: [] for s in concurrent.spans if s.parent_id is None}
for s in concurrent.spans:
    root = s
    while root.parent_id is not None:
        root = next(p for p in concurrent.spans if p.id == root.parent_id)
    trees[root.id].append(s.kind)
print(len(trees), "trees; spans per tree:", [len(kinds) for kinds in trees.values()])

# Visible tests: a two-module program gives a tree of module, LM and adapter spans.
t = SpanTracer()
with dspy.context(callbacks=[t], lm=wb.sim_lm(latency=0.01)):
    DraftAndReview()(question="What is 2 + 2?")
kinds = [s.kind for s in t.spans]
assert {"module", "lm", "format", "parse"} <= set(kinds), f"span kinds recorded: {sorted(set(kinds))}"
assert kinds.count("lm") == 2, f"two LM calls expected (draft and review), recorded {kinds.count('lm')}"
by_id = {s.id: s for s in t.spans}
roots = [s for s in t.spans if s.parent_id is None]
assert len(roots) == 1 and roots[0].name == "DraftAndReview", f"roots: {[r.name for r in roots]}"
for s in t.spans:
    assert s.duration is not None and s.duration >= 0, f"{s.name} has duration {s.duration}"
    assert s is roots[0] or s.parent_id in by_id, f"{s.name}'s parent is not in the trace"
lm_parent = by_id[next(s for s in t.spans if s.kind == "lm").parent_id]
assert lm_parent.name.startswith("Predict"), f"an LM span's parent is {lm_parent.name}, expected a Predict"
assert by_id[lm_parent.parent_id].name.startswith("ChainOfThought"), "Predict inside CoT should hang under it"
assert all(s.tokens and s.tokens.get("total_tokens", 0) > 0 for s in t.spans if s.kind == "lm")
# failures are traced too
failing = wb.sim_lm(latency=0.0, error_rate=1.0, num_retries=0)
t2 = SpanTracer()
try:
    with dspy.context(callbacks=[t2], lm=failing):
        dspy.Predict("question -> answer")(question="will this fail?")
except Exception:
    pass
failed = [s for s in t2.spans if not s.ok]
assert {s.kind for s in failed} >= {"lm", "module"}, f"failed spans: {[(s.kind, s.name) for s in failed]}"
assert all(isinstance(s.error, BaseException) and s.duration is not None for s in failed)
# concurrent async calls keep separate trees
t3 = SpanTracer()
questions = [f"concurrent question {i}" for i in range(4)]
async def _many():
    with dspy.context(callbacks=[t3], lm=wb.sim_lm(latency=0.02)):
        return await asyncio.gather(*(dspy.ChainOfThought("question -> answer").acall(question=q)
                                                    for q in questions))
run_async(_many)
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

# ## Task 2 — print the trace as a tree
def render_tree(spans: Sequence[Span]) -> str:
    """The trace as an indented tree, one line per span."""
    if not spans:
        return "(no spans)"
    by_id = {s.id: s for s in spans}
    lines = []
    for span in sorted(spans, key=lambda s: s.start):
        depth, parent = 0, span.parent_id
        while parent in by_id:
            depth, parent = depth + 1, by_id[parent].parent_id
        took = 0.0 if span.duration is None else span.duration * 1000
        line = f"{'  ' * depth}{span.kind} {span.name} {took:.1f} ms"
        if span.error is not None:
            line += f"  FAILED {type(span.error).__name__}: {span.error}"
        lines.append(line)
    return "\n".join(lines)

print(render_tree(tracer.spans))

ex3.check_render_tree(render_tree)

root = Span(id="r", parent_id=None, kind="module", name="Outer", start=0.0, duration=0.0125)
child = Span(id="c", parent_id="r", kind="lm", name="LM sim", start=0.001, duration=0.010)
text = render_tree([child, root])
assert text.splitlines() == ["module Outer 12.5 ms", "  lm LM sim 10.0 ms"], text
assert render_tree([]) == "(no spans)"
bad = Span(id="g", parent_id="c", kind="parse", name="JSONAdapter", start=0.002, duration=0.0001,
           error=ValueError("no JSON"))
lines = render_tree([root, child, bad]).splitlines()
assert lines[2].startswith("    parse JSONAdapter 0.1 ms") and "FAILED ValueError: no JSON" in lines[2], lines
orphan = Span(id="o", parent_id="gone", kind="module", name="Orphan", start=0.5, duration=0.001)
assert render_tree([orphan]).splitlines()[0].startswith("module Orphan"), \
    "a span whose parent is not in the trace is a root"

spans_table(tracer.spans)

# ## Task 3 — redaction: secrets never reach a log
def redact(text: str, extra_patterns: Sequence[str] = ()) -> str:
    """`text` with API keys, bearer tokens, e-mail addresses and `extra_patterns` masked."""
    text = re.sub(r"sk-[A-Za-z0-9_\-]{16,}", "[REDACTED_KEY]", text)
    text = re.sub(r"(?i)bearer\s+[A-Za-z0-9._~+/\-]+=*", "Bearer [REDACTED_TOKEN]", text)
    text = re.sub(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+", "[REDACTED_EMAIL]", text)
    for pattern in extra_patterns:
        try:
            text = re.sub(pattern, "[REDACTED]", text)
        except re.error as exc:
            raise ValueError(f"extra pattern {pattern!r} is not a valid regular expression: {exc}") from exc
    return text

def print_trace(spans: Sequence[Span], extra_patterns: Sequence[str] = ()) -> None:
    """Print the trace tree with secrets masked (error messages can echo them)."""
    print(redact(render_tree(spans), extra_patterns))


print(redact("key sk-abcdefghijklmnop1234, mail ada@example.org, header Authorization: Bearer abc.def"))

ex3.check_redact(redact)

out = redact("use sk-proj-AAAAbbbbCCCCdddd1234 please")
assert "sk-proj-AAAA" not in out and "[REDACTED_KEY]" in out, out
assert redact("write to grace.hopper@navy.mil.example now") == "write to [REDACTED_EMAIL] now"
assert redact("nothing secret here") == "nothing secret here"
assert "tok123" not in redact("authorization: bearer tok123.x-y")
assert "[REDACTED_TOKEN]" in redact("Bearer tok123")
assert redact("sk-short stays") == "sk-short stays", "short sk- words are not keys"
assert redact("employee E-12345 asked", extra_patterns=[r"E-\d{5}"]) == "employee [REDACTED] asked"
try:
    redact("x", extra_patterns=["("])
    raise AssertionError("a broken extra pattern should raise ValueError")
except ValueError as exc:
    assert "(" in str(exc)

# ## Task 4 — log files that do not duplicate lines
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

JSONL_PATH = LOG_DIR / "trace.jsonl"
TEXT_PATH = LOG_DIR / "trace.log"
json_logger = get_trace_logger("workbook.trace.json", JSONL_PATH)
text_logger = get_trace_logger("workbook.trace.text", TEXT_PATH, "%(asctime)s %(levelname)s %(message)s")
secret_words = [r"Project\s+Nightingale"]  # your own patterns: code names, customer ids, …
sink = LogSink(json_logger, text_logger, redact=functools.partial(redact, extra_patterns=secret_words))

logged = SpanTracer(sinks=[sink])
before = len(read_jsonl(JSONL_PATH))
with dspy.context(callbacks=[logged]):
    program(question="My key is sk-live-0123456789abcdef and my mail is ada@example.org. "
                     "What is Project Nightingale?")
records = read_jsonl(JSONL_PATH)[before:]
print(f"{len(logged.spans)} spans -> {len(records)} new JSONL records")
print("secrets in the log file:", any(s in JSONL_PATH.read_text() for s in ("sk-live", "ada@", "Nightingale")))
print("the Prediction was logged as:", records[-1]["outputs"]["__type__"])

ex3.check_trace_logger(get_trace_logger)

import tempfile
_tmp = Path(tempfile.mkdtemp())
log_a = get_trace_logger("workbook.test.dup", _tmp / "a" / "x.log")
log_a = get_trace_logger("workbook.test.dup", _tmp / "a" / "x.log")   # the cell "runs again"
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
# secrets written through a traced call never reach the files
jl = get_trace_logger("workbook.test.json", _tmp / "t.jsonl")
tl = get_trace_logger("workbook.test.text", _tmp / "t.log")
tt = SpanTracer(sinks=[LogSink(jl, tl, redact=redact)])
with dspy.context(callbacks=[tt], lm=wb.sim_lm(latency=0.0)):
    dspy.Predict("question -> answer")(
        question="token Bearer abcdef123456 from bob@corp.example key sk-ABCDEFGHIJKLMNOPQRST")
for h in jl.handlers + tl.handlers:
    h.flush()
dumped = (_tmp / "t.jsonl").read_text() + (_tmp / "t.log").read_text()
assert len(read_jsonl(_tmp / "t.jsonl")) == len(tt.spans) > 0
for secret in ("abcdef123456", "bob@corp", "sk-ABCDEFGH"):
    assert secret not in dumped, f"{secret} reached a log file"

# ## Task 5 — find the bottleneck, and see it on a timeline
def find_bottleneck(spans: Sequence[Span]) -> Bottleneck | None:
    """The slowest leaf span and its share of the trace's total time."""
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

spans = [
    Span(id="r", parent_id=None, kind="module", name="Root", start=0.0, duration=1.0),
    Span(id="a", parent_id="r", kind="lm", name="fast", start=0.0, duration=0.2),
    Span(id="b", parent_id="r", kind="lm", name="slow", start=0.2, duration=0.7),
]
found = find_bottleneck(spans)
assert found is not None and found.span.name == "slow", f"found {found}"
assert abs(found.share - 0.7) < 1e-9, f"share {found.share}"
assert find_bottleneck([]) is None
two_roots = spans + [Span(id="r2", parent_id=None, kind="module", name="Root2", start=1.0, duration=1.0),
                     Span(id="c", parent_id="r2", kind="parse", name="slowest", start=1.0, duration=0.9),
                     Span(id="x", parent_id="r2", kind="lm", name="running", start=1.0, duration=None)]
found = find_bottleneck(two_roots)
assert found.span.name == "slowest" and abs(found.share - 0.45) < 1e-9, found
t5 = SpanTracer()
with dspy.context(callbacks=[t5], lm=wb.sim_lm(latency=0.05)):
    DraftAndReview()(question="bottleneck on a real trace")
assert find_bottleneck(t5.spans).span.kind == "lm", "with a 50 ms LM, an LM call must be the bottleneck"

# ## Task 6 — step through a trace
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
stepper = TraceStepper(tracer.spans + failing_trace.spans, redact=redact)
stepper.go(next((i for i, s in enumerate(stepper.spans) if not s.ok), 0))  # jump to the first failure
shown = stepper.current
print("the program failed:", failure)
print(f"showing span {stepper.index + 1} of {len(stepper.spans)}: ok={shown.ok if shown else None}")

print_trace(failing_trace.spans)  # the printed tree marks the failure too

t6 = SpanTracer()
with dspy.context(callbacks=[t6], lm=wb.sim_lm(latency=0.0)):
    dspy.Predict("question -> answer")(question="step through me")
w = TraceStepper(t6.spans)
assert len(w.spans) >= 4 and w.index == 0 and w.prev_button.disabled, "starts at the first span"
w.next_button.click()
assert w.index == 1 and not w.prev_button.disabled and w.spans[1].name in w.view.value
for _ in range(len(w.spans) + 2):
    w.next_button.click()
assert w.index == len(w.spans) - 1 and w.next_button.disabled, "stops at the last span"
empty = TraceStepper([])
assert empty.next_button.disabled and "No spans" in empty.view.value
assert "FAILED" in TraceStepper([s for s in failing_trace.spans if not s.ok]).view.value

# ## Task 7 (advanced) — breakpoints and replay
def break_when(module: str | None = None,
               where: Callable[[Span], bool] | None = None) -> Callable[[Span], bool]:
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

bp = SpanTracer(breakpoints=[break_when("Predict(question, answer"), break_when(where=lambda s: not s.ok)])
with dspy.context(callbacks=[bp]):
    program(question="Is water wet?")
for hit in bp.hits:
    print(hit["kind"], hit["span"], "->", {k: str(v)[:40] for k, v in hit["inputs"].items()})

calls_before = len(lm.history)
with dspy.context(callbacks=[], lm=replay_lm(bp.spans)):
    replayed = program(question="Is water wet?")
print("replayed verdict:", replayed.verdict[:60])
print("course LM calls during replay:", len(lm.history) - calls_before)

ex3.check_break_when(break_when)

span = Span(id="s", parent_id=None, kind="module", name="Predict(question -> answer)", start=0.0,
            duration=0.1, inputs={"question": "hi"})
assert break_when("Predict")(span) and not break_when("ChainOfThought")(span)
assert break_when(where=lambda s: s.inputs.get("question") == "hi")(span)
assert break_when()(span)
assert not break_when("Predict", where=lambda s: False)(span)
assert break_when(where=lambda s: 1 / 0)(span) is False
sim = wb.sim_lm(latency=0.0)
t7 = SpanTracer(breakpoints=[break_when(where=lambda s: s.kind == "lm")])
with dspy.context(callbacks=[t7], lm=sim):
    DraftAndReview()(question="record me for replay")
assert len(t7.hits) == 2 and all(h["kind"] == "lm" for h in t7.hits)
calls = sim.engine.stats.calls
with dspy.context(lm=replay_lm(t7.spans)):
    again = DraftAndReview()(question="record me for replay")
assert sim.engine.stats.calls == calls, "replay must not call the provider"
assert again.verdict == t7.spans[0].outputs.verdict

# ## What DSPy gives you out of the box — and where it stops
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

