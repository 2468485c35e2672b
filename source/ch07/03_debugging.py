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
# A `ChainOfThought` calls a `Predict`, which asks an adapter to format a prompt, calls the LM,
# then asks the adapter to parse the reply. When an answer is wrong, slow or missing you want that
# whole story — which step ran inside which, for how long, with which inputs, where it broke — and
# a log of it that is safe to keep.
#
# **Learning objectives** — you will learn to
#
# * turn DSPy's callbacks into a *trace*: a tree of spans with parents, durations and errors;
# * keep secrets out of logs with redaction that is correct on real text and linear in time;
# * find where the time goes, on a timeline and by code.
#
# **Prerequisites:** Exercise 1 or 2 (self-checks, hints and graded cells work the same here);
# Python classes and regular expressions (`re.sub`, lookbehind — the
# [`re` HOWTO](https://docs.python.org/3/howto/regex.html) is enough).
#
# | part | what you do | time | points |
# |---|---|---|---|
# | Reading and demos | what DSPy records; your trace, its logs and its timeline | 9 min | |
# | Task 1 | `SpanTracer._start` / `_end`: spans with parents | 7 min | 4 |
# | Task 2 | `redact`: bearer tokens and e-mail addresses, in linear time | 9 min | 3 |
# | Task 3 | `find_bottleneck`: the slowest leaf and its share | 5 min | 3 |
# | **core** | | **~30 min** | **10** |
# | Going further | a tree printout, log handlers, a stepper, breakpoints, replay | ~30 min | none |
#
# Write each task in its `YOUR CODE HERE` cell and run the self-check below it (✅ means the
# hidden tests pass too). "Run All" stops at the first graded cell whose task is not done yet.

# %%
import dspy_workbook as wb

lm = wb.setup()

# %%
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

# %% [markdown]
# ## The program we will debug
#
# A `ChainOfThought` drafts an answer, then a `Predict` reviews it: small, but already a call tree
# three levels deep.


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
with dspy.context(trace=[]):
    program(question="Who wrote Hamlet?")
    flat = dspy.settings.trace
print("lm.history keys:", sorted(lm.history[-1]))
print("settings.trace:", [(type(p).__name__, sorted(i)) for p, i, _ in flat])

# %% [markdown]
# What DSPy already records, and where it stops:
#
# * `dspy.inspect_history(n)` prints the last *n* prompts and replies — as text on screen only.
# * `lm.history` keeps every LM call: messages, outputs, usage, cost, timestamp — LM calls only,
#   **no latency**, no parent, and one list shared by every request.
# * `settings.trace` (inside `dspy.context(trace=[])`) lists `(predictor, inputs, prediction)`
#   per `Predict` — flat, no timing, and a failed call leaves no entry.
# * `dspy.track_usage()` totals tokens per model — no steps, no time.
#
# None of them answers "what ran inside what, for how long, and where did it fail". DSPy's
# **callbacks** can: MLflow's `mlflow.dspy.autolog()` is built on them.

# %% [markdown]
# ## Task 1 — a tracer on DSPy's callbacks *(7 min, 4 points)*
#
# DSPy calls every registered callback around *every* module call, LM call and adapter
# `format`/`parse` step — including those inside `ChainOfThought` that you never wrote.
# `TracerHooks` (given, the base class) turns its hooks into two methods you write:
# `_start(call_id, kind, instance, inputs)` when a call begins (`kind`: `"module"`, `"lm"`,
# `"format"`, `"parse"`, `"tool"`) and `_end(call_id, outputs, exception)` when it returns
# (`exception` is `None`) or raises; the same `call_id` links the two. It also gives you
# `self.spans` (the recorded spans), `self._open` (an empty dict), `self._lock` and
# `self._finished(span)`.
#
# **The parent.** While a call runs, DSPy keeps its id in the context variable `ACTIVE_CALL_ID`.
# It sets the new call's id only *after* the start hooks ran, and restores the parent's id before
# the end hooks run. So in a hook, `ACTIVE_CALL_ID.get()` is the id of the call that runs this
# one: its parent (`None` at the top). Every asyncio task has its own copy of the context, so
# overlapping `acall`s keep their own parents.
#
# Write
#
# * `_start`: make the span with `open_span(call_id, parent_id, kind, instance, inputs)` (given:
#   a running `Span` with a name, tidy inputs and `start = time.perf_counter()`), put it in
#   `self.spans`, and keep it where `_end` finds it by `call_id`;
# * `_end`: set its `duration` (seconds since `start`), `outputs` and `error` (the exception, or
#   `None`), then call `self._finished(span)` once: it fills an LM span's `tokens` and feeds the
#   log sinks.
#
# Hooks of overlapping calls may run on several threads at once: hold `self._lock` while you
# change `self.spans` or `self._open`. Stuck? `ex3.hint("tracer")`.
#
# **Graded:** one program call gives one tree of module, LM, `format` and `parse` spans, each with
# a duration; an LM span hangs under its `Predict`, which hangs under its `ChainOfThought`; every
# span reaches `_finished` exactly once; a failing call leaves failed LM and module spans holding
# the exception; overlapping `acall`s give one tree each.


# %% nbgrader={"solution": true, "grade_id": "tracer"}
class SpanTracer(TracerHooks):
    """Record every DSPy module, LM and adapter call as a `Span` with its parent's id."""

    def _start(self, call_id: str, kind: str, instance, inputs: dict) -> None:
        """Open a span whose parent is the call running right now."""
        ### BEGIN SOLUTION
        span = open_span(call_id, ACTIVE_CALL_ID.get(), kind, instance, inputs)
        with self._lock:
            self._open[call_id] = span
            self.spans.append(span)
        ### END SOLUTION

    def _end(self, call_id: str, outputs, exception: BaseException | None) -> None:
        """Close the span: its duration, and its outputs or exception."""
        ### BEGIN SOLUTION
        with self._lock:
            span = self._open.pop(call_id, None)
        if span is None:  # a call that began before this tracer was active
            return
        span.duration = time.perf_counter() - span.start
        span.outputs, span.error = outputs, exception
        self._finished(span)
        ### END SOLUTION


# %%
ex3.check_tracer(SpanTracer)

# %% nbgrader={"grade": true, "grade_id": "test_tracer", "points": 4}
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
### BEGIN HIDDEN TESTS
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
### END HIDDEN TESTS

# %% [markdown]
# ### What your tracer sees
#
# One call of the program, as a table (`spans_table`, given: one row per span in start order,
# names indented by depth):

# %% tags=["nbval-ignore-output"]
tracer = SpanTracer()
with dspy.context(callbacks=[tracer]):
    program(question="Why is the sky blue?")
tracing.spans_table(tracer.spans)

# %% [markdown]
# `ChainOfThought` adds a `reasoning` output to your signature, so its inner `Predict` shows
# `question -> reasoning, answer`; each `Predict` formats, calls the LM and parses once. (DSPy 3.4
# wraps an adapter's `format` in the callbacks once per class that inherits it — `ChatAdapter`,
# `JSONAdapter`, the course's subclass of it — so each format step fires the hooks several times,
# nested; `TracerHooks` passes it on once.)
#
# **Overlapping calls.** Three questions at once through `acall`, interleaved on one event loop
# (`run_async` runs it in a helper thread, so the line works in a notebook and a script):

# %%
concurrent = SpanTracer()


async def ask_three() -> list:
    with dspy.context(callbacks=[concurrent]):
        qa = dspy.Predict("question -> answer")
        return await asyncio.gather(*(qa.acall(question=q) for q in ("Red?", "Green?", "Blue?")))


tracing.run_async(ask_three)
tree = tracing.children_of(concurrent.spans)  # parent id -> its children; roots under None
for root in tree[None]:
    print(f"{root.inputs['question']!r}: {root.name} -> {[s.kind for s in tree[root.id]]}")

# %% [markdown]
# Their calls started interleaved, yet each question has its own tree. `dspy.context(...)`
# applies inside its block and to the asyncio tasks started there (each copies the context), and
# DSPy copies it into `asyncify`'s worker threads — but, as in Exercise 2, a plain
# `threading.Thread` you start yourself begins with an empty context: it would see neither the
# tracer nor the parent.
#
# **Failures.** Now the review step fails (a provider that always errors):

# %%
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

# %% [markdown]
# The trace says *where*: the LM call inside the review's `Predict` failed, and the failure rose
# through that `Predict`; the draft's spans are fine.
#
# ## Task 2 — redaction: secrets never reach a log *(9 min, 3 points)*
#
# A trace records whatever a user typed, pasted keys included, and error messages, which may
# echo a key. A log outlives the request, so the logs pass every string through `redact(text)`
# before writing it. The first rule is given; add the other two:
#
# | secret | what matches | becomes |
# |---|---|---|
# | API key *(given)* | `sk-`, then 16 or more of `A–Z a–z 0–9 _ -` | `[REDACTED_KEY]` |
# | bearer token | `Bearer` in any case; one or more whitespace characters (`\s`: space, tab, newline…); the token: one or more of `A–Z a–z 0–9 - . _ ~ + /`, then any number of `=` | `Bearer [REDACTED_TOKEN]` |
# | e-mail address | one or more of `\w` (letters of any alphabet, digits, `_`) or `. % + -`; then `@`; then two or more labels of `\w` or `-`, joined by single dots | `[REDACTED_EMAIL]` |
#
# Each match is replaced whole; all other text stays as it was (`sk-short`, `ask-me-later`,
# `café @ 5pm`, `a@b`). `Bearer` counts wherever it appears, even right after a letter: an LM's
# reply is JSON text, where a line break is the two characters `\n` (`\bBearer` misses
# `…\nBearer xyz`).
#
# **Linear time.** One pasted log line can be a megabyte. `[\w.]+@…` has a trap: in a long word
# with no `@`, the regex engine starts at the first character, scans to the word's end, fails,
# starts again at the second … — *n*²/2 steps; 80,000 characters take seconds. The cure: let a
# match start only where a run of such characters starts, with a lookbehind such as
# `(?<![\w.])`. The checks time `redact` on 2,000 and 16,000 characters of such text: about 8×
# slower is linear, 64× quadratic. Stuck? `ex3.hint("redact")`.
#
# **Graded:** each rule of the table (any case, any whitespace, right after a letter, non-ASCII
# addresses, whole matches), other text unchanged, and linear growth.


# %% nbgrader={"solution": true, "grade_id": "redact"}
def redact(text: str) -> str:
    """`text` with API keys, bearer tokens and e-mail addresses masked."""
    text = re.sub(r"sk-[A-Za-z0-9_-]{16,}", "[REDACTED_KEY]", text)
    ### BEGIN SOLUTION
    text = re.sub(r"(?i)bearer\s+[A-Za-z0-9._~+/-]+=*", "Bearer [REDACTED_TOKEN]", text)
    # The lookbehind lets an address start only where a run of address characters starts: a long
    # word is scanned once, not once per character.
    text = re.sub(r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)+", "[REDACTED_EMAIL]", text)
    return text
    ### END SOLUTION


# %%
ex3.check_redact(redact)

# %% nbgrader={"grade": true, "grade_id": "test_redact", "points": 3}
assert redact("nothing secret here") == "nothing secret here", "text without secrets changed"
out = redact("Authorization: Bearer abc.DEF-123 and mail grace.hopper@navy.mil.example now")
assert out == "Authorization: Bearer [REDACTED_TOKEN] and mail [REDACTED_EMAIL] now", out
### BEGIN HIDDEN TESTS
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
### END HIDDEN TESTS

# %% [markdown]
# ### The trace file
#
# `LogSink` (given) writes each finished span as one JSON line (inputs, outputs, error, tokens,
# times) and one readable line, to `traces/` in the workbook's cache folder (`.workbook_cache/`),
# never next to the notebook. It redacts every string *value* before encoding it as JSON:
# encoding first would turn the tab in `Bearer\t…` into the two characters `\t`, where `\s` no
# longer matches.

# %% tags=["nbval-ignore-output"]
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

# %% [markdown]
# ## Task 3 — find the bottleneck *(5 min, 3 points)*
#
# "It's slow" is not actionable; "the review's LM call takes 60 % of the time" is. A parent's
# duration includes its children's, so look at the **leaves** — spans with no children.
#
# Write `find_bottleneck(spans)` returning `Bottleneck(span, share)` (given dataclass): the leaf
# with the longest duration, and its share of the total — the sum of the durations of the *root*
# spans (spans whose parent is not in the trace; a trace may hold several requests).
#
# **Spans still running** (`duration is None`) are left out *first*, as if they were not in the
# trace: a finished span is a leaf or a root by the spans that are left. If no finished span is
# left, return `None`. Stuck? `ex3.hint("bottleneck")`.
#
# **Graded:** the slowest leaf, not a parent; the share over several roots; running spans left
# out; `None` for an empty or all-running trace.


# %% nbgrader={"solution": true, "grade_id": "bottleneck"}
def find_bottleneck(spans: Sequence[Span]) -> Bottleneck | None:
    """The slowest finished leaf span and its share of the trace's total time."""
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


# %%
ex3.check_bottleneck(find_bottleneck)

# %% nbgrader={"grade": true, "grade_id": "test_bottleneck", "points": 3}
from dspy_workbook.tracing import Span as _Span

spans = [
    _Span(id="r", parent_id=None, kind="module", name="Root", start=0.0, duration=1.0),
    _Span(id="a", parent_id="r", kind="lm", name="fast", start=0.0, duration=0.2),
    _Span(id="b", parent_id="r", kind="lm", name="slow", start=0.2, duration=0.7),
]
found = find_bottleneck(spans)
assert found is not None and found.span.name == "slow", f"found {found}"
assert abs(found.share - 0.7) < 1e-9, f"share {found.share}; expected 0.7 of the root's 1.0 s"
### BEGIN HIDDEN TESTS
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
### END HIDDEN TESTS

# %% [markdown]
# On the timeline each bar is one span, indented like the tree; the bottleneck is red, and a
# failed span would be hatched.

# %% tags=["nbval-ignore-output"]
hot = find_bottleneck(tracer.spans)
print(hot)
fig = tracing.plot_timeline(tracer.spans, highlight=hot.span.id if hot else None)

# %% [markdown]
# That is the core: a trace, its safe log file, its failures and its bottleneck.
#
# ## Going further *(optional, ungraded)*
#
# Four more tools a debugger wants, each with a self-check (shown as optional in
# `ex3.check_all()`) and no graded cell. Skip any of them: the cells after them say so and go on.

# %%
import logging
from collections.abc import Callable
from pathlib import Path

from IPython.display import display

from dspy_workbook.tracing import TraceStepper, children_of, replay_lm

# %% [markdown]
# ### Task 4 — print the trace as a tree *(10 min)*
#
# A table in start order misleads as soon as calls overlap: two concurrent requests *start*
# interleaved, so one request's LM call would sit under the other request's header. A tree walked
# depth first keeps each call under its parent.
#
# Write `render_tree(spans)` returning one line per span, reading
# `"<kind> <name> <duration in ms, 1 decimal> ms"` (or `"<kind> <name> running"` when `duration`
# is `None`), indented by two spaces per level, with `"  FAILED <ExceptionType>: <message>"` at
# the end of a failed span's line. Each span comes right after its parent (and that parent's
# earlier children's subtrees); siblings and roots in start order. A span whose parent is not in
# the trace (an *orphan*) is a root. An empty trace gives `"(no spans)"`. `children_of(spans)`
# (given) builds `{parent_id: [children in start order]}`, roots and orphans under `None`.
# Stuck? `ex3.hint("tree")`.
#
# ```
# module DraftAndReview 21.3 ms
#   module ChainOfThought 11.0 ms
#     module Predict(question -> reasoning, answer) 10.8 ms
#       format JSONAdapter 0.3 ms
# ```


# %% nbgrader={"solution": true, "grade_id": "render_tree"}
def render_tree(spans: Sequence[Span]) -> str:
    """The trace as an indented tree, one line per span, depth first."""
    ### BEGIN SOLUTION
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
    ### END SOLUTION


# %%
ex3.check_render_tree(render_tree)


# %% tags=["nbval-ignore-output"]
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

# %% [markdown]
# ### Task 5 — log files that do not duplicate lines *(8 min)*
#
# The seed's starter code sets up logging like this — and has the classic notebook bug:
# `logging.getLogger(name)` returns the *same* logger every time, so each run of the cell that
# calls `logger.addHandler(FileHandler(...))` adds another handler, and from then on every line
# is written twice (three times after the third run, …).
#
# Write `get_trace_logger(name, path, fmt)` that returns the logger `name`, writing to the file
# `path` (create its folder) with a `logging.Formatter(fmt)`, at level `INFO`, with
# `propagate = False` (lines do not also reach the root logger). Calling it again with the same
# arguments leaves exactly **one** file handler; calling it with another `path` replaces the old
# file handler (close it). Leave handlers that are not `FileHandler`s alone. `LogSink` accepts
# such loggers instead of file paths. Stuck? `ex3.hint("logger")`.


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
ex3.check_trace_logger(get_trace_logger)

# %% tags=["nbval-ignore-output"]
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

# %% [markdown]
# ### Task 6 — step through a trace *(5 min)*
#
# To debug you also want to look inside each step. `TraceStepper` (given) is a small ipywidgets
# app over your spans in start order: **◀ previous / next ▶** buttons and a slider, showing the
# selected span's inputs, outputs, timing and error (failed spans in red). It takes your `redact`
# and redacts *before* it cuts long values short, so it never shows half a key.
#
# Its **◀◀ / ▶▶** buttons jump to the previous/next span that matches a filter ("failed", "lm",
# …). That search is yours: write `find_next(spans, index, step, where)` returning the position
# of the nearest span strictly after `index` in direction `step` (`+1` forward, `-1` backward)
# for which `where(span)` is true, or `None` if there is none. `index` may be `-1` or `len(spans)`
# (searching from just outside either end); a `step` other than `1` or `-1` raises `ValueError`.
# Stuck? `ex3.hint("navigation")`.


# %% nbgrader={"solution": true, "grade_id": "find_next"}
def find_next(
    spans: Sequence[Span], index: int, step: int, where: Callable[[Span], bool]
) -> int | None:
    """Position of the nearest span past `index` in direction `step` with `where(span)`, or None."""
    ### BEGIN SOLUTION
    if step not in (1, -1):
        raise ValueError(f"step must be 1 (forward) or -1 (backward), got {step!r}")
    position = index + step
    while 0 <= position < len(spans):
        if where(spans[position]):
            return position
        position += step
    return None
    ### END SOLUTION


# %%
ex3.check_find_next(find_next)

# %% [markdown]
# The stepper on the failing run from the core. Widgets need a live kernel to click, but their
# *state* is plain Python: `stepper.jump(+1)` is what the ▶▶ button does.

# %%
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

# %% tags=["no-script", "nbval-ignore-output"]
display(stepper)

# %% [markdown]
# ### Task 7 — breakpoints and replay *(10 min)*
#
# **Breakpoints.** A debugger stops where a condition holds. The tracer's `breakpoints` are
# conditions on a finished span; when one holds, the tracer captures that span's inputs, outputs
# and error into `tracer.hits` for you to inspect after the run. (To *pause* instead, a condition
# may call `breakpoint()` itself, opening the debugger with the span in hand — try it
# interactively, not in a cell you run with "Run All".)
#
# Write `break_when(module=None, where=None)` returning a condition `Callable[[Span], bool]` that
# holds when the span's name contains `module` (if given) **and** `where(span)` is true (if given).
# With neither, it holds for every span. A `where` that raises counts as false — a buggy
# condition must not hide the spans it could not judge. Stuck? `ex3.hint("breakpoints")`.
#
# **Replay.** Once a trace is recorded, `replay_lm(spans)` (given) builds an LM that answers each
# prompt from the trace: the same program runs again, step by step, without a single provider
# call — useful to reproduce a bug after the fact, offline, and for free.


# %% nbgrader={"solution": true, "grade_id": "breakpoints"}
def break_when(
    module: str | None = None, where: Callable[[Span], bool] | None = None
) -> Callable[[Span], bool]:
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


# %%
ex3.check_break_when(break_when)

# %% tags=["nbval-ignore-output"]
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

# %% [markdown]
# ## Questionnaire
#
# 1. Inside `on_module_start`, why is `ACTIVE_CALL_ID.get()` the *parent's* id and not the id of
#    the call that is starting? What does it return inside `on_module_end`, and why?
# 2. Why do three concurrent `acall`s give three separate trees, while three calls started with a
#    plain `threading.Thread` each might not (what does a new thread's context contain)?
# 3. Two requests overlap. Why does a list of spans in start order mislead, and how does a
#    depth-first walk fix it?
# 4. Why must redaction run on each value *before* it is encoded as JSON? Give an input that leaks
#    otherwise.
# 5. What makes `[\w.]+@` quadratic on a long word, and why does a lookbehind make it linear?
# 6. Re-running a cell that calls `logger.addHandler(...)` doubles every log line. Why, and what
#    two facts about `logging.getLogger` make it happen?
# 7. Why is the bottleneck a *leaf* span, and why can the root's duration not be the total when a
#    trace holds several requests?
# 8. Which of DSPy's built-ins (`inspect_history`, `lm.history`, `settings.trace`,
#    `track_usage`) would you use to answer "how many tokens did this request cost?", and which
#    cannot answer "how long did the parse step take?"
#
# ## Further research
#
# * DSPy's callback API: `dspy/utils/callback.py` (`BaseCallback`, `with_callbacks`) and
#   `dspy/utils/callback_context.py` in the installed package — and `Adapter.__init_subclass__`
#   in `dspy/adapters/base.py`, which wraps `format` once per subclass.
# * [MLflow tracing for DSPy](https://mlflow.org/docs/latest/llms/tracing/index.html)
#   (`mlflow.dspy.autolog`) — a production tracer on the same callbacks.
# * [OpenTelemetry's semantic conventions for GenAI](https://opentelemetry.io/docs/specs/semconv/gen-ai/)
#   and the OpenInference DSPy instrumentation, which patches DSPy's methods (`LM.__call__`,
#   `Predict.forward`, adapter calls) instead of using callbacks.
# * Python's [`contextvars`](https://docs.python.org/3/library/contextvars.html): why asyncio
#   tasks copy the context, and threads do not.
# * [Regular-expression denial of service (ReDoS)](https://owasp.org/www-community/attacks/Regular_expression_Denial_of_Service_-_ReDoS),
#   and Python's [`re` HOWTO](https://docs.python.org/3/howto/regex.html) on lookbehind.
# * The [logging cookbook](https://docs.python.org/3/howto/logging-cookbook.html): handlers,
#   propagation, and logging from several threads.
#
# ## Check everything
#
# `ex3.check_all()` runs every self-check again on what your notebook defines now: the core tasks
# (graded) and the optional ones apart.

# %%
ex3.check_all()

# %% [markdown]
# ## How to submit
#
# 1. Save the notebook (**File → Save**, or Ctrl-S).
# 2. **Kernel → Restart Kernel and Run All Cells…**: the grader runs your notebook top to bottom in a
#    fresh kernel, so this shows what it will see. It must reach `check_all()` without stopping; if
#    it stops at a graded cell, that task is unfinished.
# 3. Press **Validate** in the notebook's toolbar: it runs the notebook the way the grader does and
#    reports any test cell that fails.
# 4. Hand it in: on the course JupyterHub, **Nbgrader → Assignment List**, then **Submit** next to
#    `ch07`; working on your own machine (`make lab`), upload the saved `03_debugging.ipynb` where your
#    instructor asked.
