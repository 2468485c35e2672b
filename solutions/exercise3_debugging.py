"""Answer key for 03_debugging.ipynb — generated from source/ch07/03_debugging.py by tools/build.py; do not edit.

Run: python solutions/exercise3_debugging.py  (backend: $WORKBOOK_LM, default local)
"""

# # Exercise 3 — Debugging and tracing a DSPy program
import dspy_workbook as wb

lm = wb.setup()

import asyncio
import json
import re
import time
from collections.abc import Sequence

import dspy
from dspy.utils.callback_context import ACTIVE_CALL_ID

from dspy_workbook import tracing  # the given helpers: tables, charts, logs
from dspy_workbook.checks import ex3
from dspy_workbook.tracing import Bottleneck, Span, TracerHooks, open_span

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
with dspy.context(trace=[]):
    program(question="Who wrote Hamlet?")
    flat = dspy.settings.trace
print("lm.history keys:", sorted(lm.history[-1]))
print("settings.trace:", [(type(p).__name__, sorted(i)) for p, i, _ in flat])

# ## Task 1 — a tracer on DSPy's callbacks *(7 min, 4 points)*
class SpanTracer(TracerHooks):
    """Record every DSPy module, LM and adapter call as a `Span` with its parent's id."""

    def _start(self, call_id: str, kind: str, instance, inputs: dict) -> None:
        """Open a span whose parent is the call running right now."""
        span = open_span(call_id, ACTIVE_CALL_ID.get(), kind, instance, inputs)
        with self._lock:
            self._open[call_id] = span
            self.spans.append(span)

    def _end(self, call_id: str, outputs, exception: BaseException | None) -> None:
        """Close the span: its duration, and its outputs or exception."""
        with self._lock:
            span = self._open.pop(call_id, None)
        if span is None:  # a call that began before this tracer was active
            return
        span.duration = time.perf_counter() - span.start
        span.outputs, span.error = outputs, exception
        self._finished(span)

ex3.check_tracer(SpanTracer)

import time as _time

from dspy_workbook import sim_lm as _sim_lm

t = SpanTracer()
_began = _time.perf_counter()
with dspy.context(callbacks=[t], lm=_sim_lm(latency=0.01, cache=False)):
    DraftAndReview()(question="What is 2 + 2?")
_elapsed = _time.perf_counter() - _began
assert t.spans, "no spans were recorded: write `_start` and `_end`, then run this cell again"
kinds = sorted({s.kind for s in t.spans})
assert kinds == ["format", "lm", "module", "parse"], f"span kinds recorded: {kinds}"
roots = [s.name for s in t.spans if s.parent_id is None]
assert roots == ["DraftAndReview"], f"spans without a parent: {roots}; expected the program's only"
from dspy_workbook.threads import run_async as _run_async

_by_id = {s.id: s for s in t.spans}
_unfinished = [s.name for s in t.spans if s.duration is None or s.duration < 0]
assert not _unfinished, f"spans without a duration after the call: {_unfinished}"
_lms = [s for s in t.spans if s.kind == "lm"]
assert len(_lms) == 2, f"two LM calls (draft and review) gave {len(_lms)} LM spans"
_odd = [(s.name, s.duration) for s in t.spans if s.duration > _elapsed]
_odd += [(s.name, s.duration) for s in _lms if s.duration < 0.005]
assert not _odd, (
    f"durations {_odd} for a call that took {_elapsed:.3f} s, with LM calls of 0.01 s: "
    "`duration` is the seconds since `span.start`"
)
_up = _by_id.get(_lms[0].parent_id)
assert _up is not None and _up.name.startswith("Predict"), (
    f"the draft's LM span hangs under {_up.name if _up else None!r}, not under its Predict"
)
_top = _by_id.get(_up.parent_id)
assert _top is not None and _top.name.startswith("ChainOfThought"), (
    f"the draft's Predict hangs under {_top.name if _top else None!r}, not under ChainOfThought"
)
# every span reaches `_finished` exactly once: the sink sees each one, LM spans get tokens
_seen = []
_ts = SpanTracer(sinks=[_seen.append])
with dspy.context(callbacks=[_ts], lm=_sim_lm(latency=0.0, cache=False)):
    dspy.ChainOfThought("question -> answer")(question="does every span reach the sink?")
_ids = sorted(s.id for s in _seen)
assert _ids == sorted(s.id for s in _ts.spans) and len(_ids) == len(set(_ids)) == 5, (
    f"5 spans recorded, the sink received {len(_ids)} ({len(set(_ids))} distinct): "
    "call `self._finished(span)` once per span, when it ends"
)
_tokens = [s.tokens for s in _ts.spans if s.kind == "lm"]
assert all(tok and tok.get("total_tokens", 0) > 0 for tok in _tokens), f"LM tokens: {_tokens}"
# failures are traced too
_tf = SpanTracer()
try:
    with dspy.context(
        callbacks=[_tf], lm=_sim_lm(latency=0.0, error_rate=1.0, num_retries=0, cache=False)
    ):
        dspy.Predict("question -> answer")(question="will this fail?")
except Exception:
    pass
_failed = [s for s in _tf.spans if s.error is not None]
assert {s.kind for s in _failed} >= {"lm", "module"}, (
    f"a failing call left failed spans of kinds {sorted({s.kind for s in _failed})}; "
    "expected the LM span and the module around it"
)
assert all(isinstance(s.error, BaseException) and s.duration is not None for s in _failed), (
    f"failed spans: {[(s.kind, type(s.error).__name__, s.duration) for s in _failed]}; each "
    "needs its exception in `error` and a duration"
)
# overlapping async calls keep separate trees
_tc = SpanTracer()
_questions = [f"concurrent question {i}" for i in range(4)]


async def _many():
    with dspy.context(callbacks=[_tc], lm=_sim_lm(latency=0.02, cache=False)):
        _cot = dspy.ChainOfThought("question -> answer")
        return await asyncio.gather(*(_cot.acall(question=q) for q in _questions))


_run_async(_many)
_ids3 = {s.id: s for s in _tc.spans}


def _root(s):
    while s.parent_id in _ids3:
        s = _ids3[s.parent_id]
    return s


_tops = [s for s in _tc.spans if s.parent_id is None]
assert len(_tops) == 4, f"4 overlapping calls gave {len(_tops)} root spans; expected 4 trees"
for _s in _tc.spans:
    if _s.kind == "lm":
        _asked = [q for q in _questions if q in str(_root(_s).inputs)]
        _sent = [q for q in _questions if q in str(_s.inputs)]
        assert _asked == _sent, (
            f"with 4 calls at once, the LM call that sent {_sent} hangs under the call that "
            f"asked {_asked}"
        )

# ### What your tracer sees
tracer = SpanTracer()
with dspy.context(callbacks=[tracer]):
    program(question="Why is the sky blue?")
tracing.spans_table(tracer.spans)

concurrent = SpanTracer()


async def ask_three() -> list:
    with dspy.context(callbacks=[concurrent]):
        qa = dspy.Predict("question -> answer")
        return await asyncio.gather(*(qa.acall(question=q) for q in ("Red?", "Green?", "Blue?")))


tracing.run_async(ask_three)
tree = tracing.children_of(concurrent.spans)  # parent id -> its children; roots under None
for root in tree[None]:
    print(f"{root.inputs['question']!r}: {root.name} -> {[s.kind for s in tree[root.id]]}")

failing_trace = SpanTracer()
try:
    with dspy.context(callbacks=[failing_trace]):
        draft = program.draft(question="What is 6 x 7?")
        with dspy.context(lm=wb.sim_lm(latency=0.01, error_rate=1.0, num_retries=0)):
            program.review(question="What is 6 x 7?", answer=draft.answer)
except Exception as exc:
    print("the program failed:", type(exc).__name__)
for span in failing_trace.spans:
    print(f"{span.kind:<6} {span.name:<40} {'ok' if span.ok else 'FAILED'}")

# ## Task 2 — redaction: secrets never reach a log *(9 min, 3 points)*
def redact(text: str) -> str:
    """`text` with API keys, bearer tokens and e-mail addresses masked."""
    text = re.sub(r"sk-[A-Za-z0-9_-]{16,}", "[REDACTED_KEY]", text)
    text = re.sub(r"(?i)bearer\s+[A-Za-z0-9._~+/-]+=*", "Bearer [REDACTED_TOKEN]", text)
    # The lookbehind lets an address start only where a run of address characters starts: a long
    # word is scanned once, not once per character.
    text = re.sub(r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)+", "[REDACTED_EMAIL]", text)
    return text

ex3.check_redact(redact)

assert redact("nothing secret here") == "nothing secret here", "text without secrets changed"
out = redact("Authorization: Bearer abc.DEF-123 and mail grace.hopper@navy.mil.example now")
assert out == "Authorization: Bearer [REDACTED_TOKEN] and mail [REDACTED_EMAIL] now", out
import importlib


def _r(text):
    got = redact(text)
    assert type(got) is str, f"`redact({text!r})` returned {type(got).__name__}, not a string"
    return got


assert _r("use sk-proj-AAAAbbbbCCCCdddd1234 please") == "use [REDACTED_KEY] please", (
    f"an API key gave {_r('use sk-proj-AAAAbbbbCCCCdddd1234 please')!r}"
)
for _text, _want in {
    "authorization: bearer tok123.x-y": "authorization: Bearer [REDACTED_TOKEN]",
    "BEARER \t\n mixed-token==": "Bearer [REDACTED_TOKEN]",
    "Bearer\ttab-token": "Bearer [REDACTED_TOKEN]",
    "Bearer\nline-token end": "Bearer [REDACTED_TOKEN] end",
    'x\\nBearer json-token"': 'x\\nBearer [REDACTED_TOKEN]"',
    "a+b/c~d_e.f": "a+b/c~d_e.f",
}.items():
    assert _r(_text) == _want, f"`redact({_text!r})` gave {_r(_text)!r}"
for _text, _want in {
    "mail zoë.ångström@exämple.se today": "mail [REDACTED_EMAIL] today",
    "联系 用户@例子.中国.": "联系 [REDACTED_EMAIL].",
    "to: a_b%c+d-e@sub-1.example.org, thanks": "to: [REDACTED_EMAIL], thanks",
}.items():
    assert _r(_text) == _want, f"`redact({_text!r})` gave {_r(_text)!r}"
for _plain in ("sk-short stays", "café @ 5pm, ask-me-later", "a@b", "naïve résumé", "x @y.z"):
    assert _r(_plain) == _plain, f"text without secrets changed: {_plain!r} -> {_r(_plain)!r}"
# linear time, measured afresh (a solution cell cannot replace the measuring code)
_growth = importlib.reload(importlib.import_module("dspy_workbook.tracing._growth"))
for _shape, _make in _growth.REDACTION_STRESS.items():
    _g = _growth.measure_growth(redact, _make)
    assert _g.linear, f"`redact` on {_shape}: {_g}"

# ### The trace file
JSONL, TEXT = tracing.trace_log_dir() / "trace.jsonl", tracing.trace_log_dir() / "trace.log"
logged = SpanTracer(sinks=[tracing.LogSink(JSONL, TEXT, redact=redact)])
before = len(tracing.read_jsonl(JSONL))
with dspy.context(callbacks=[logged]):
    program(
        question="My key is sk-live-0123456789abcdef, my token Bearer\teyJ0b2tlbi.x, my mail "
        "ada@example.org. What is 2 + 2?"
    )
records = tracing.read_jsonl(JSONL)[before:]
on_disk = JSONL.read_text() + TEXT.read_text()
print(f"{len(logged.spans)} spans -> {len(records)} new records in {JSONL.name}")
print("secrets on disk:", any(s in on_disk for s in ("0123456789abcdef", "eyJ0b2", "ada@")))
print(json.dumps(records[-1], indent=1, ensure_ascii=False)[:700], "…")

# ## Task 3 — find the bottleneck *(5 min, 3 points)*
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

ex3.check_bottleneck(find_bottleneck)

from dspy_workbook.tracing import Span as _Span

spans = [
    _Span(id="r", parent_id=None, kind="module", name="Root", start=0.0, duration=1.0),
    _Span(id="a", parent_id="r", kind="lm", name="fast", start=0.0, duration=0.2),
    _Span(id="b", parent_id="r", kind="lm", name="slow", start=0.2, duration=0.7),
]
found = find_bottleneck(spans)
assert found is not None and found.span.name == "slow", f"found {found}"
assert abs(found.share - 0.7) < 1e-9, f"share {found.share}; expected 0.7 of the root's 1.0 s"
from dspy_workbook.tracing import Bottleneck as _Bottleneck

assert isinstance(found, _Bottleneck), f"returned {type(found).__name__}, not a Bottleneck"
assert find_bottleneck([]) is None, f"an empty trace gave {find_bottleneck([])!r}, not None"
two_roots = spans + [
    _Span(id="r2", parent_id=None, kind="module", name="Root2", start=1.0, duration=1.0),
    _Span(id="c", parent_id="r2", kind="parse", name="slowest", start=1.0, duration=0.9),
    _Span(id="x", parent_id="c", kind="lm", name="running", start=1.0, duration=None),
]
found = find_bottleneck(two_roots)
assert found is not None and found.span.name == "slowest", (
    f"two roots and a running span: picked {found.span.name if found else None!r}"
)
assert abs(found.share - 0.45) < 1e-9, (
    f"share {found.share}; the total is the sum of the two roots' durations (2.0 s)"
)
# a running root is left out; its finished child becomes a root of what is left
partial = [
    _Span(id="p", parent_id=None, kind="module", name="still running", start=0.0),
    _Span(id="q", parent_id="p", kind="module", name="done", start=0.0, duration=0.4),
    _Span(id="q1", parent_id="q", kind="lm", name="leaf", start=0.0, duration=0.3),
]
found = find_bottleneck(partial)
assert found is not None and found.span.name == "leaf" and abs(found.share - 0.75) < 1e-9, (
    f"under a running root: {found}; expected the leaf, 0.3 s of the finished root's 0.4 s"
)
_only = [_Span(id="z", parent_id=None, kind="lm", name="z", start=0.0)]
assert find_bottleneck(_only) is None, "a trace whose spans all still run should give None"
deep = [
    _Span(id="m", parent_id=None, kind="module", name="M", start=0.0, duration=0.5),
    _Span(id="m1", parent_id="m", kind="module", name="M1", start=0.0, duration=0.45),
    _Span(id="m2", parent_id="m1", kind="format", name="tiny", start=0.0, duration=0.01),
    _Span(id="m3", parent_id="m", kind="parse", name="mid", start=0.0, duration=0.04),
]
found = find_bottleneck(deep)
assert found is not None and found.span.name == "mid", (
    f"picked {found.span.name if found else None!r}: M1 has a child, so it is not a leaf"
)

hot = find_bottleneck(tracer.spans)
print(hot)
fig = tracing.plot_timeline(tracer.spans, highlight=hot.span.id if hot else None)

# ## Going further *(optional, ungraded)*
import logging
from collections.abc import Callable
from pathlib import Path

from IPython.display import display

from dspy_workbook.tracing import TraceStepper, children_of, replay_lm

# ### Task 4 — print the trace as a tree *(10 min)*
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

ex3.check_render_tree(render_tree)

def print_trace(spans: Sequence[Span]) -> None:
    """Print the trace tree with secrets masked (error messages can echo them)."""
    print(redact(render_tree(spans)))


try:
    print_trace(tracer.spans)
    print()
    print_trace(concurrent.spans)  # three requests: each LM call under its own question
    print()
    print_trace(failing_trace.spans)  # the failure, and where it rose
except NotImplementedError:
    print("(Task 4 not done — no tree printed)")

# ### Task 5 — log files that do not duplicate lines *(8 min)*
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

ex3.check_trace_logger(get_trace_logger)

try:
    logs = tracing.trace_log_dir()
    for _ in range(3):  # as if the cell ran three times
        text_logger = get_trace_logger(
            "workbook.trace.text", logs / "logged.log", "%(asctime)s %(message)s"
        )
    handlers = [h for h in text_logger.handlers if isinstance(h, logging.FileHandler)]
    print("file handlers after three runs:", len(handlers))
    json_logger = get_trace_logger("workbook.trace.json", logs / "logged.jsonl")
    sink = tracing.LogSink(json_logger, text_logger, redact=redact)
    with dspy.context(callbacks=[SpanTracer(sinks=[sink])]):
        program(question="What is 3 + 4?")
    print((logs / "logged.log").read_text(encoding="utf-8").splitlines()[-1])
except NotImplementedError:
    print("(Task 5 not done — skipped)")

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

try:
    find_next([], -1, 1, bool)  # Task 6 done?
    stepper = TraceStepper(failing_trace.spans, redact=redact, find_next=find_next)
    stepper.jump(+1)  # the filter starts on "failed": jump to the first failure
    shown = stepper.current
    print(
        f"jumped to span {stepper.index + 1} of {len(stepper.spans)}: {shown.kind}, ok={shown.ok}"
    )
except NotImplementedError:
    stepper = TraceStepper(failing_trace.spans, redact=redact)
    print("(Task 6 not done — the stepper has no jump buttons; it opens on the first span)")

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
except NotImplementedError:  # the replay below works without it
    conditions = []
    print("(Task 7 not done — no breakpoints; the replay still runs)")
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

# ## Questionnaire
# ## Further research
# ## Check everything
ex3.check_all()

# ## How to submit
