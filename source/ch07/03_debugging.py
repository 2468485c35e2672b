# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 3 — Debugging and tracing a DSPy program
#
# A DSPy program hides a lot: a `ChainOfThought` calls a `Predict`, which asks an adapter to
# format a prompt, calls the LM, then asks the adapter to parse the reply. When an answer is
# wrong, slow or missing you want to see that whole story — which step ran, inside which other
# step, for how long, with which inputs, and where it broke.
#
# In this notebook you build that view yourself, on top of DSPy's **callbacks**:
#
# 1. a tracer that turns every call into a *span* with a parent — a tree, not a flat list;
# 2. a printout of the tree, and a table;
# 3. redaction, so API keys and e-mail addresses never reach a log;
# 4. log files that do not duplicate lines when a cell runs twice;
# 5. the bottleneck, found by code and shown on a timeline;
# 6. a widget to step through a trace span by span;
# 7. *(advanced)* breakpoints and replaying a trace without calling the LM again;
# 8. how this compares with what DSPy gives you out of the box.
#
# Every task where you write code has a self-check cell (run it as often as you like) and a graded
# test cell.

# %%
import dspy_workbook as wb

lm = wb.setup()

# %%
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

# %% [markdown]
# ## The program we will debug
#
# Two chained modules: a `ChainOfThought` drafts an answer, then a `Predict` reviews it. Small,
# but it already produces a call tree three levels deep.

# %%
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

# %% [markdown]
# ## Task 1 — a tracer built on DSPy's callbacks
#
# **Why callbacks, not wrappers?** You could wrap `forward` by hand with timing code, but you
# would see only the modules you wrapped. DSPy already calls every registered
# `dspy.utils.callback.BaseCallback` around *every* module call, LM call, and adapter
# `format`/`parse` step — including the ones inside `ChainOfThought` that you never wrote.
#
# Each hook gets a fresh `call_id`. The parent is the trick: while a call runs, DSPy keeps its id
# in the context variable `ACTIVE_CALL_ID`, and it sets it to the new call's id only *after* the
# `on_*_start` hooks have run. So inside `on_*_start`, `ACTIVE_CALL_ID.get()` is the id of the
# call that is running *this* one — its parent (`None` at the top). A context variable is
# per-thread and per-asyncio-task, so concurrent calls do not mix their trees.
#
# The hooks are written for you; they all funnel into two methods you write:
#
# * `_start(call_id, kind, instance, inputs)` — create a `Span` with `id=call_id`, the parent id,
#   `kind`, `name=span_name(instance)`, `inputs=tidy_inputs(inputs)`, `start=time.perf_counter()`,
#   `started_at=time.time()` and `instance=instance`; remember it in `self._open` and append it to
#   `self.spans`.
# * `_end(call_id, outputs, exception)` — take the span back out of `self._open` (ignore an
#   unknown id), set `duration`, `outputs` and `error`. For an LM span also fill `tokens` and
#   `cache_hit` with `lm_usage(span.instance, span.inputs, self._claimed)`. Then call
#   `self._finished(span)` (given), which feeds the log sinks and breakpoints.
#
# Hints: hold `self._lock` while touching the shared list and dict (callbacks can run on several
# threads at once). Exceptions raised inside a callback are caught by DSPy and only logged as
# warnings — so a bug in your tracer shows up as a warning and an empty trace, not a crash.

# %% nbgrader={"solution": true, "grade_id": "tracer"}
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
        ### BEGIN SOLUTION
        span = Span(id=call_id, parent_id=ACTIVE_CALL_ID.get(), kind=kind, name=span_name(instance),
                    inputs=tidy_inputs(inputs), start=time.perf_counter(), started_at=time.time(),
                    instance=instance)
        with self._lock:
            self._open[call_id] = span
            self.spans.append(span)
        ### END SOLUTION

    def _end(self, call_id: str, outputs, exception: BaseException | None) -> None:
        """Close the span: duration, outputs or exception, and usage for LM calls."""
        # 1. pop the span from self._open (holding the lock); unknown id -> return
        # 2. duration = now - span.start; outputs; error   3. LM span: lm_usage(...)
        # 4. self._finished(span)
        ### BEGIN SOLUTION
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
        ### END SOLUTION

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


# %% [markdown]
# Activate the tracer for one block with `dspy.context(callbacks=[tracer])`: the callbacks
# apply to that block (and to the threads and tasks it starts), not to the whole notebook.

# %%
tracer = SpanTracer()
with dspy.context(callbacks=[tracer]):
    program(question="Why is the sky blue?")
print(len(tracer.spans), "spans:", sorted({s.kind for s in tracer.spans}))

# %%
ex3.check_tracer(SpanTracer)

# %% [markdown]
# **Concurrency.** Three questions at once through `acall` (native async, interleaved on one event
# loop). Each `asyncio` task has its own copy of the context, so `ACTIVE_CALL_ID` — and with it
# every parent id — stays inside its own task: three separate trees, nothing mixed. (`run_async`
# runs the coroutine on a fresh event loop; in a cell you could also `await` it directly.)

# %%
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

# %% nbgrader={"grade": true, "grade_id": "test_tracer", "points": 3}
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
### BEGIN HIDDEN TESTS
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
### END HIDDEN TESTS

# %% [markdown]
# ## Task 2 — print the trace as a tree
#
# A flat list of spans is hard to read; indentation by depth shows who called whom. Write
# `render_tree(spans)` returning one line per span, in start order, each line indented by two
# spaces per level of depth and reading `"<kind> <name> <duration in ms, 1 decimal> ms"`. Add
# `"  FAILED <ExceptionType>: <message>"` to the line of a span that failed. An empty trace gives
# `"(no spans)"`.
#
# ```
# module DraftAndReview 21.3 ms
#   module ChainOfThought(question -> reasoning, answer) 11.0 ms
#     module Predict(question -> reasoning, answer) 10.8 ms
#       format JSONAdapter 0.3 ms
# ```
#
# Hint: find the depth by following `parent_id` up, or build a `{parent_id: [children]}` map
# and walk it from the roots (`wb.tracing.children_of` builds that map).

# %% nbgrader={"solution": true, "grade_id": "render_tree"}
def render_tree(spans: Sequence[Span]) -> str:
    """The trace as an indented tree, one line per span."""
    ### BEGIN SOLUTION
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
    ### END SOLUTION


# %% tags=["nbval-ignore-output"]
print(render_tree(tracer.spans))

# %%
ex3.check_render_tree(render_tree)

# %% nbgrader={"grade": true, "grade_id": "test_render_tree", "points": 2}
root = Span(id="r", parent_id=None, kind="module", name="Outer", start=0.0, duration=0.0125)
child = Span(id="c", parent_id="r", kind="lm", name="LM sim", start=0.001, duration=0.010)
text = render_tree([child, root])
assert text.splitlines() == ["module Outer 12.5 ms", "  lm LM sim 10.0 ms"], text
assert render_tree([]) == "(no spans)"
### BEGIN HIDDEN TESTS
bad = Span(id="g", parent_id="c", kind="parse", name="JSONAdapter", start=0.002, duration=0.0001,
           error=ValueError("no JSON"))
lines = render_tree([root, child, bad]).splitlines()
assert lines[2].startswith("    parse JSONAdapter 0.1 ms") and "FAILED ValueError: no JSON" in lines[2], lines
orphan = Span(id="o", parent_id="gone", kind="module", name="Orphan", start=0.5, duration=0.001)
assert render_tree([orphan]).splitlines()[0].startswith("module Orphan"), \
    "a span whose parent is not in the trace is a root"
### END HIDDEN TESTS

# %% [markdown]
# The same spans as a table (`wb.tracing.spans_table`) — handy for sorting and filtering with pandas:

# %% tags=["nbval-ignore-output"]
spans_table(tracer.spans)

# %% [markdown]
# ## Task 3 — redaction: secrets never reach a log
#
# Traces record *inputs*: whatever a user typed, including pasted API keys and e-mail addresses,
# and error messages, which sometimes echo a key back. A log file lives longer and travels
# further than the request, so redact before writing.
#
# Write `redact(text, extra_patterns=())` that replaces
#
# * API keys that start with `sk-` followed by at least 16 letters, digits, `_` or `-` → `[REDACTED_KEY]`
# * bearer tokens: `Bearer <token>` (any case) → `Bearer [REDACTED_TOKEN]`
# * e-mail addresses → `[REDACTED_EMAIL]`
# * every regular expression in `extra_patterns` → `[REDACTED]`
#
# and leaves everything else unchanged. Hint: `re.sub`; a bad pattern in `extra_patterns`
# should fail with a message that names it (`re.error` → `ValueError`).

# %% nbgrader={"solution": true, "grade_id": "redact"}
def redact(text: str, extra_patterns: Sequence[str] = ()) -> str:
    """`text` with API keys, bearer tokens, e-mail addresses and `extra_patterns` masked."""
    ### BEGIN SOLUTION
    text = re.sub(r"sk-[A-Za-z0-9_\-]{16,}", "[REDACTED_KEY]", text)
    text = re.sub(r"(?i)bearer\s+[A-Za-z0-9._~+/\-]+=*", "Bearer [REDACTED_TOKEN]", text)
    text = re.sub(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+", "[REDACTED_EMAIL]", text)
    for pattern in extra_patterns:
        try:
            text = re.sub(pattern, "[REDACTED]", text)
        except re.error as exc:
            raise ValueError(f"extra pattern {pattern!r} is not a valid regular expression: {exc}") from exc
    return text
    ### END SOLUTION


# %%
def print_trace(spans: Sequence[Span], extra_patterns: Sequence[str] = ()) -> None:
    """Print the trace tree with secrets masked (error messages can echo them)."""
    print(redact(render_tree(spans), extra_patterns))


print(redact("key sk-abcdefghijklmnop1234, mail ada@example.org, header Authorization: Bearer abc.def"))

# %%
ex3.check_redact(redact)

# %% nbgrader={"grade": true, "grade_id": "test_redact", "points": 2}
out = redact("use sk-proj-AAAAbbbbCCCCdddd1234 please")
assert "sk-proj-AAAA" not in out and "[REDACTED_KEY]" in out, out
assert redact("write to grace.hopper@navy.mil.example now") == "write to [REDACTED_EMAIL] now"
assert redact("nothing secret here") == "nothing secret here"
### BEGIN HIDDEN TESTS
assert "tok123" not in redact("authorization: bearer tok123.x-y")
assert "[REDACTED_TOKEN]" in redact("Bearer tok123")
assert redact("sk-short stays") == "sk-short stays", "short sk- words are not keys"
assert redact("employee E-12345 asked", extra_patterns=[r"E-\d{5}"]) == "employee [REDACTED] asked"
try:
    redact("x", extra_patterns=["("])
    raise AssertionError("a broken extra pattern should raise ValueError")
except ValueError as exc:
    assert "(" in str(exc)
### END HIDDEN TESTS

# %% [markdown]
# ## Task 4 — log files that do not duplicate lines
#
# The classic notebook logging bug: a function that does `logger.addHandler(FileHandler(...))`
# each time it runs. `logging.getLogger(name)` returns the *same* logger every time, so the
# second run of the cell adds a second handler, and from then on every line is written twice
# (three times after the third run, …).
#
# Write `get_trace_logger(name, path, fmt)` that returns the logger `name`, writing to the file
# `path` (create its folder) with a `logging.Formatter(fmt)`, at level `INFO`, with
# `propagate = False` (so lines do not also reach the root logger). Calling it again with the same
# arguments must leave exactly **one** file handler; calling it with a different `path` replaces
# the old file handler (close it). Leave handlers that are not `FileHandler`s alone.
#
# We keep two logs under `.workbook_cache/traces/` (never next to the notebook): a JSON-lines file
# with one record per span for machines, and a readable text log for people. `LogSink` (given)
# turns each finished span into one line of each, passing every string through your `redact`.

# %% nbgrader={"solution": true, "grade_id": "trace_logger"}
def get_trace_logger(name: str, path: str | Path, fmt: str = "%(message)s") -> logging.Logger:
    """The logger `name` writing to `path` — exactly one file handler, however often this runs."""
    ### BEGIN SOLUTION
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
    ### END SOLUTION


# %%
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

# %%
ex3.check_trace_logger(get_trace_logger)

# %% nbgrader={"grade": true, "grade_id": "test_trace_logger", "points": 2}
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
### BEGIN HIDDEN TESTS
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
### END HIDDEN TESTS

# %% [markdown]
# ## Task 5 — find the bottleneck, and see it on a timeline
#
# "It's slow" is not actionable; "the review LM call takes 60 % of the time" is. A parent span's
# duration includes its children, so the root always looks slowest. Look at the **leaves** —
# spans with no children, where the time is actually spent.
#
# Write `find_bottleneck(spans)` returning `Bottleneck(span, share)` (given dataclass): the leaf
# span with the longest duration, and its share of the total, where the total is the sum of the
# durations of the *root* spans (spans whose parent is not in the trace). Return `None` for an
# empty trace. Ignore spans still running (`duration is None`).

# %% nbgrader={"solution": true, "grade_id": "bottleneck"}
def find_bottleneck(spans: Sequence[Span]) -> Bottleneck | None:
    """The slowest leaf span and its share of the trace's total time."""
    ### BEGIN SOLUTION
    done = [s for s in spans if s.duration is not None]
    ids = {s.id for s in done}
    parents = {s.parent_id for s in done}
    leaves = [s for s in done if s.id not in parents]
    if not leaves:
        return None
    total = sum(s.duration for s in done if s.parent_id not in ids)
    slowest = max(leaves, key=lambda s: s.duration)
    return Bottleneck(slowest, slowest.duration / total if total > 0 else 1.0)
    ### END SOLUTION


# %% tags=["nbval-ignore-output"]
hot = find_bottleneck(tracer.spans)
print(hot)
fig = plot_timeline(tracer.spans, highlight=hot.span.id if hot else None)

# %%
ex3.check_bottleneck(find_bottleneck)

# %% nbgrader={"grade": true, "grade_id": "test_bottleneck", "points": 2}
spans = [
    Span(id="r", parent_id=None, kind="module", name="Root", start=0.0, duration=1.0),
    Span(id="a", parent_id="r", kind="lm", name="fast", start=0.0, duration=0.2),
    Span(id="b", parent_id="r", kind="lm", name="slow", start=0.2, duration=0.7),
]
found = find_bottleneck(spans)
assert found is not None and found.span.name == "slow", f"found {found}"
assert abs(found.share - 0.7) < 1e-9, f"share {found.share}"
assert find_bottleneck([]) is None
### BEGIN HIDDEN TESTS
two_roots = spans + [Span(id="r2", parent_id=None, kind="module", name="Root2", start=1.0, duration=1.0),
                     Span(id="c", parent_id="r2", kind="parse", name="slowest", start=1.0, duration=0.9),
                     Span(id="x", parent_id="r2", kind="lm", name="running", start=1.0, duration=None)]
found = find_bottleneck(two_roots)
assert found.span.name == "slowest" and abs(found.share - 0.45) < 1e-9, found
t5 = SpanTracer()
with dspy.context(callbacks=[t5], lm=wb.sim_lm(latency=0.05)):
    DraftAndReview()(question="bottleneck on a real trace")
assert find_bottleneck(t5.spans).span.kind == "lm", "with a 50 ms LM, an LM call must be the bottleneck"
### END HIDDEN TESTS

# %% [markdown]
# ## Task 6 — step through a trace
#
# A tree shows the shape; to debug you also want to look inside each step. `TraceStepper`
# (given) is a small ipywidgets app over your spans: **◀ previous / next ▶** buttons and a slider,
# showing the selected span's inputs, outputs, timing and error; failed spans are marked in red.
# Pass your `redact` so the view is as safe as the logs.
#
# Let's trace a run where the review step fails (a provider that always errors) and step to the
# failure. Widgets need a live kernel to click, but their *state* is plain Python: the test below
# clicks the buttons in code and reads `.value` and `.disabled`, which is also how the grader
# checks it.

# %%
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

# %% tags=["nbval-ignore-output"]
print_trace(failing_trace.spans)  # the printed tree marks the failure too

# %% tags=["no-script", "nbval-ignore-output"]
display(stepper)

# %% nbgrader={"grade": true, "grade_id": "test_stepper", "points": 1}
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
### BEGIN HIDDEN TESTS
assert "FAILED" in TraceStepper([s for s in failing_trace.spans if not s.ok]).view.value
### END HIDDEN TESTS

# %% [markdown]
# ## Task 7 (advanced) — breakpoints and replay
#
# **Breakpoints.** A debugger stops where a condition holds. Our tracer's `breakpoints` are
# conditions on a finished span; when one holds, the tracer captures that span's inputs, outputs
# and error into `tracer.hits` for you to inspect after the run. (To *pause* instead, a condition
# may call `breakpoint()` itself, opening the debugger at that point with the span in hand — try
# it interactively, not in a graded cell.)
#
# Write `break_when(module=None, where=None)` returning a condition `Callable[[Span], bool]` that
# holds when the span's name contains `module` (if given) **and** `where(span)` is true (if given).
# With neither, it holds for every span. A `where` that raises counts as false — a buggy
# condition must not hide the spans it could not judge.
#
# **Replay.** Once a trace is recorded, `replay_lm(spans)` (given) builds an LM that answers each
# prompt from the trace: the same program runs again, step by step, without a single provider
# call — useful to reproduce a bug after the fact, offline, and for free.

# %% nbgrader={"solution": true, "grade_id": "breakpoints"}
def break_when(module: str | None = None,
               where: Callable[[Span], bool] | None = None) -> Callable[[Span], bool]:
    """A breakpoint condition: the span's name contains `module` and `where(span)` holds."""
    ### BEGIN SOLUTION
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
    ### END SOLUTION


# %% tags=["nbval-ignore-output"]
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

# %%
ex3.check_break_when(break_when)

# %% nbgrader={"grade": true, "grade_id": "test_breakpoints", "points": 2}
span = Span(id="s", parent_id=None, kind="module", name="Predict(question -> answer)", start=0.0,
            duration=0.1, inputs={"question": "hi"})
assert break_when("Predict")(span) and not break_when("ChainOfThought")(span)
assert break_when(where=lambda s: s.inputs.get("question") == "hi")(span)
assert break_when()(span)
### BEGIN HIDDEN TESTS
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
### END HIDDEN TESTS

# %% [markdown]
# ## What DSPy gives you out of the box — and where it stops
#
# DSPy records a lot already; it is worth knowing before building your own.

# %% tags=["nbval-ignore-output"]
dspy.inspect_history(n=1)  # the last prompt and reply, pretty-printed

# %%
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

# %% [markdown]
# | built-in | what it shows | where it falls short |
# |---|---|---|
# | `dspy.inspect_history(n)` | the last *n* prompts and replies, readable | text on screen only; no timing, no structure, not per request |
# | `lm.history` | every LM call: messages, outputs, usage, cost, timestamp | LM calls only (no modules, no adapter steps), **no latency**, no parent, a shared list that is racy to read under concurrency |
# | `settings.trace` (`dspy.context(trace=[])`) | `(predictor, inputs, prediction)` per `Predict` | flat — **no tree**, no timing, no failures (a failed call leaves no entry) |
# | `track_usage` / `get_lm_usage()` | token totals per model | totals only: not per step, no time; cache hits count zero |
#
# Your tracer adds what none of them has: a tree (parent ids), durations, failures with their
# exceptions, per-step usage and cache hits, safe logs, and replay. Production tools (MLflow's
# `mlflow.dspy.autolog`, OpenTelemetry exporters) are built on exactly these callbacks.
#
# **Done.** You can now answer "what ran, where, how long, and why did it fail" for any DSPy
# program — and the same tracer feeds the monitoring you build in Exercise 6.
