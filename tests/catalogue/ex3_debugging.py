"""Exercise 3's catalogue: answers to the three graded tasks, right ones in other styles and wrong
ones that each break one behaviour the task states (tracer, redaction, bottleneck).

Each `source` is the whole solution cell as a student could leave it (the given lines included).
The names a cell uses come from the notebook's import cell, as in a student's kernel.
"""

from __future__ import annotations

from tests.catalogue import Submission

MASTER = "03_debugging"

# ---- Task 1: the tracer ------------------------------------------------------------------------
_TRACER_HEAD = '''
class SpanTracer(TracerHooks):
    """Record every DSPy module, LM and adapter call as a `Span` with its parent's id."""
'''


def _tracer(body: str, head: str = _TRACER_HEAD) -> str:
    return head.strip("\n") + "\n\n" + body.strip("\n") + "\n"


_START = """
    def _start(self, call_id, kind, instance, inputs):
        span = open_span(call_id, ACTIVE_CALL_ID.get(), kind, instance, inputs)
        with self._lock:
            self._open[call_id] = span
            self.spans.append(span)
"""
_END = """
    def _end(self, call_id, outputs, exception):
        with self._lock:
            span = self._open.pop(call_id, None)
        if span is None:
            return
        span.duration = time.perf_counter() - span.start
        span.outputs, span.error = outputs, exception
        self._finished(span)
"""

TRACER = [
    # -- right, in other styles
    Submission(
        "tracer",
        "student trial: span listed before it is kept in _open, its fields set one by one "
        "(✅ that once scored 0/4: the course's JSONAdapter subclass fired format three times)",
        _tracer(
            """
    def _start(self, call_id: str, kind: str, instance, inputs: dict) -> None:
        span = open_span(call_id, ACTIVE_CALL_ID.get(), kind, instance, inputs)
        with self._lock:
            self.spans.append(span)
            self._open[call_id] = span

    def _end(self, call_id: str, outputs, exception: BaseException | None) -> None:
        with self._lock:
            span = self._open.pop(call_id, None)
        if span is None:
            return
        span.duration = time.perf_counter() - span.start
        span.outputs = outputs
        span.error = exception
        self._finished(span)
"""
        ),
        True,
    ),
    Submission(
        "tracer",
        "parent read in _end (DSPy restores the parent's id before the end hooks)",
        _tracer(
            """
    def _start(self, call_id, kind, instance, inputs):
        span = open_span(call_id, None, kind, instance, inputs)
        with self._lock:
            self._open[call_id] = span
            self.spans.append(span)

    def _end(self, call_id, outputs, exception):
        with self._lock:
            span = self._open.pop(call_id, None)
        if span is None:
            return
        span.parent_id = ACTIVE_CALL_ID.get()
        span.duration = time.perf_counter() - span.start
        span.outputs, span.error = outputs, exception
        self._finished(span)
"""
        ),
        True,
    ),
    Submission(
        "tracer",
        "open spans in a list searched by id; spans recorded when they end",
        _tracer(
            """
    def _start(self, call_id, kind, instance, inputs):
        with self._lock:
            self._running = getattr(self, "_running", [])
            self._running.append(open_span(call_id, ACTIVE_CALL_ID.get(), kind, instance, inputs))

    def _end(self, call_id, outputs, exception):
        with self._lock:
            mine = [s for s in self._running if s.id == call_id]
            if not mine:
                return
            span = mine[0]
            self._running.remove(span)
            span.duration = time.perf_counter() - span.start
            span.outputs = outputs
            span.error = exception
            self.spans.append(span)
            self._finished(span)  # under the lock: it is re-entrant
"""
        ),
        True,
    ),
    Submission(
        "tracer",
        "own __init__, own lock and dict, Span built by hand, monotonic clock",
        """
import threading


class SpanTracer(TracerHooks):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.by_id = {}
        self.began = {}
        self.mutex = threading.Lock()

    def _start(self, call_id, kind, instance, inputs):
        span = Span(
            id=call_id,
            parent_id=ACTIVE_CALL_ID.get(),
            kind=kind,
            name=type(instance).__name__,
            start=time.perf_counter(),
            inputs=dict(inputs),
            instance=instance,
        )
        with self.mutex:
            self.by_id[call_id] = span
            self.began[call_id] = time.monotonic()
            self.spans.append(span)

    def _end(self, call_id, outputs, exception):
        with self.mutex:
            span = self.by_id.pop(call_id, None)
            began = self.began.pop(call_id, None)
        if span is not None:
            span.duration = time.monotonic() - began
            span.outputs = outputs
            span.error = exception
            self._finished(span)
""",
        True,
    ),
    # -- wrong: each breaks one stated behaviour
    Submission(
        "tracer",
        "parent from a stack of open calls (right one call at a time, wrong when they overlap)",
        _tracer(
            """
    def _start(self, call_id, kind, instance, inputs):
        with self._lock:
            stack = self.__dict__.setdefault("stack", [])
            span = open_span(call_id, stack[-1] if stack else None, kind, instance, inputs)
            stack.append(call_id)
            self._open[call_id] = span
            self.spans.append(span)

    def _end(self, call_id, outputs, exception):
        with self._lock:
            span = self._open.pop(call_id, None)
            if call_id in self.stack:
                self.stack.remove(call_id)
        if span is None:
            return
        span.duration = time.perf_counter() - span.start
        span.outputs, span.error = outputs, exception
        self._finished(span)
"""
        ),
        False,
    ),
    Submission(
        "tracer",
        "no parent: every span a root",
        _tracer(
            _START.replace("ACTIVE_CALL_ID.get()", "None") + _END,
        ),
        False,
    ),
    Submission(
        "tracer",
        "parent = the span started just before",
        _tracer(
            """
    def _start(self, call_id, kind, instance, inputs):
        with self._lock:
            parent = self.spans[-1].id if self.spans else None
            span = open_span(call_id, parent, kind, instance, inputs)
            self._open[call_id] = span
            self.spans.append(span)
"""
            + _END
        ),
        False,
    ),
    Submission(
        "tracer",
        "errors dropped",
        _tracer(_START + _END.replace("outputs, exception\n", "outputs, None\n")),
        False,
    ),
    Submission(
        "tracer",
        "no duration",
        _tracer(
            _START + _END.replace("        span.duration = time.perf_counter() - span.start\n", "")
        ),
        False,
    ),
    Submission(
        "tracer",
        "duration in milliseconds",
        _tracer(
            _START
            + _END.replace(
                "time.perf_counter() - span.start", "(time.perf_counter() - span.start) * 1000"
            )
        ),
        False,
    ),
    Submission(
        "tracer",
        "_finished never called (no tokens, nothing reaches the logs)",
        _tracer(_START + _END.replace("        self._finished(span)\n", "")),
        False,
    ),
    Submission(
        "tracer",
        "_finished called at the start and at the end",
        _tracer(_START + "        self._finished(span)\n" + _END),
        False,
    ),
    Submission(
        "tracer",
        "LM calls not traced",
        _tracer(
            _START.replace(
                "        span = open_span",
                "        if kind == 'lm':\n            return\n        span = open_span",
            )
            + _END
        ),
        False,
    ),
]

# ---- Task 2: redaction -------------------------------------------------------------------------
_KEY_RULE = 'text = re.sub(r"sk-[A-Za-z0-9_-]{16,}", "[REDACTED_KEY]", text)'
_BEARER = r'r"(?i)bearer\s+[A-Za-z0-9._~+/-]+=*"'
_EMAIL = r'r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)+"'


def _redact(
    bearer: str = _BEARER,
    email: str = _EMAIL,
    token_out: str = '"Bearer [REDACTED_TOKEN]"',
    key_rule: str = _KEY_RULE,
) -> str:
    return f'''
def redact(text: str) -> str:
    """`text` with API keys, bearer tokens and e-mail addresses masked."""
    {key_rule}
    text = re.sub({bearer}, {token_out}, text)
    text = re.sub({email}, "[REDACTED_EMAIL]", text)
    return text
'''


REDACT = [
    # -- right, in other styles
    Submission(
        "redact",
        "compiled patterns with flags, the e-mail rule first",
        r'''
BEARER = re.compile(r"bearer\s+[A-Za-z0-9._~+/-]+=*", re.IGNORECASE)
EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)+")


def redact(text: str) -> str:
    """`text` with API keys, bearer tokens and e-mail addresses masked."""
    text = re.sub(r"sk-[A-Za-z0-9_-]{16,}", "[REDACTED_KEY]", text)
    text = EMAIL.sub("[REDACTED_EMAIL]", text)
    return BEARER.sub("Bearer [REDACTED_TOKEN]", text)
''',
        True,
    ),
    Submission(
        "redact",
        "one alternation with a replacement function",
        r'''
SECRET = re.compile(
    r"(?P<token>(?i:bearer)\s+[A-Za-z0-9._~+/-]+=*)"
    r"|(?P<email>(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)+)"
)


def _mask(match: re.Match) -> str:
    return "Bearer [REDACTED_TOKEN]" if match.group("token") else "[REDACTED_EMAIL]"


def redact(text: str) -> str:
    """`text` with API keys, bearer tokens and e-mail addresses masked."""
    text = re.sub(r"sk-[A-Za-z0-9_-]{16,}", "[REDACTED_KEY]", text)
    return SECRET.sub(_mask, text)
''',
        True,
    ),
    Submission(
        "redact",
        "a scanner for addresses (no regex): walk out from each @",
        r'''
def _local(ch):
    return ch.isalnum() or ch in "_.%+-"


def _label(ch):
    return ch.isalnum() or ch in "_-"


def _addresses(text):
    out, i, n = [], 0, len(text)
    done = 0  # everything before `done` is already copied or replaced
    at = text.find("@")
    while at != -1:
        start = at
        while start > done and _local(text[start - 1]):
            start -= 1
        end, labels = at + 1, 0
        while True:
            j = end
            while j < n and _label(text[j]):
                j += 1
            if j == end:
                break
            labels, end = labels + 1, j
            if end < n - 1 and text[end] == "." and _label(text[end + 1]):
                end += 1
            else:
                break
        if start < at and labels >= 2:
            out.append(text[done:start] + "[REDACTED_EMAIL]")
            done = end
            at = text.find("@", end)
        else:
            at = text.find("@", at + 1)
    out.append(text[done:])
    return "".join(out)


def redact(text: str) -> str:
    """`text` with API keys, bearer tokens and e-mail addresses masked."""
    text = re.sub(r"sk-[A-Za-z0-9_-]{16,}", "[REDACTED_KEY]", text)
    text = re.sub(r"(?i)bearer\s+[A-Za-z0-9._~+/-]+=*", "Bearer [REDACTED_TOKEN]", text)
    return _addresses(text)
''',
        True,
    ),
    # -- wrong: each breaks one stated behaviour
    Submission(
        "redact",
        "Bearer followed by a space only",
        _redact(bearer=r'r"(?i)bearer [A-Za-z0-9._~+/-]+=*"'),
        False,
    ),
    Submission(
        "redact",
        "a word boundary before Bearer (misses `\\nBearer` in JSON text)",
        _redact(bearer=r'r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]+=*"'),
        False,
    ),
    Submission(
        "redact",
        "Bearer in one case only",
        _redact(bearer=r'r"Bearer\s+[A-Za-z0-9._~+/-]+=*"'),
        False,
    ),
    Submission(
        "redact",
        "the token as any run of non-space characters (eats a JSON quote)",
        _redact(bearer=r'r"(?i)bearer\s+\S+"'),
        False,
    ),
    Submission(
        "redact",
        "replacement drops the word Bearer",
        _redact(token_out='"[REDACTED_TOKEN]"'),
        False,
    ),
    Submission(
        "redact",
        "ASCII-only addresses",
        _redact(
            email=r'r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"'
        ),
        False,
    ),
    Submission(
        "redact",
        "Unicode addresses but quadratic (no lookbehind)",
        _redact(email=r'r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)+"'),
        False,
    ),
    Submission(
        "redact",
        "a domain of one label is an address too (`a@b` changes)",
        _redact(email=r'r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*"'),
        False,
    ),
    Submission(
        "redact",
        "the domain stops after two labels (the rest of the address stays)",
        _redact(email=r'r"(?<![\w.%+-])[\w.%+-]+@[\w-]+\.[\w-]+"'),
        False,
    ),
    Submission(
        "redact",
        "gaming: a quadratic pattern, and a growth measure that always says linear",
        r'''
import dspy_workbook.tracing as _tracing
import dspy_workbook.tracing._growth as _growth


def _always_linear(fn, make_input, sizes=(2_000, 16_000), **kwargs):
    return _growth.Growth(tuple(sizes), (0.0,) * len(sizes), True, 3.0)


_growth.measure_growth = _tracing.measure_growth = _always_linear


def redact(text: str) -> str:
    """`text` with API keys, bearer tokens and e-mail addresses masked."""
    text = re.sub(r"sk-[A-Za-z0-9_-]{16,}", "[REDACTED_KEY]", text)
    text = re.sub(r"(?i)bearer\s+[A-Za-z0-9._~+/-]+=*", "Bearer [REDACTED_TOKEN]", text)
    return re.sub(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)+", "[REDACTED_EMAIL]", text)
''',
        False,
    ),
    Submission(
        "redact",
        "the given key rule deleted",
        _redact(key_rule="pass"),
        False,
    ),
]

# ---- Task 3: the bottleneck --------------------------------------------------------------------
_BN_HEAD = '''
def find_bottleneck(spans: Sequence[Span]) -> Bottleneck | None:
    """The slowest finished leaf span and its share of the trace's total time."""
'''

BOTTLENECK = [
    # -- right, in other styles
    Submission(
        "bottleneck",
        "a recursive walk from the roots, with children_of",
        _BN_HEAD
        + """
    done = [s for s in spans if s.duration is not None]
    if not done:
        return None
    tree = tracing.children_of(done)
    best = None

    def walk(span):
        nonlocal best
        kids = tree.get(span.id, [])
        if not kids and (best is None or span.duration > best.duration):
            best = span
        for kid in kids:
            walk(kid)

    for root in tree[None]:
        walk(root)
    total = sum(root.duration for root in tree[None])
    return Bottleneck(best, best.duration / total if total else 1.0)
""",
        True,
    ),
    Submission(
        "bottleneck",
        "sorted leaves, totals in a loop",
        _BN_HEAD
        + """
    finished = {s.id: s for s in spans if s.duration is not None}
    has_child = set()
    total = 0.0
    for s in finished.values():
        if s.parent_id in finished:
            has_child.add(s.parent_id)
        else:
            total += s.duration
    leaves = sorted(
        (s for s in finished.values() if s.id not in has_child),
        key=lambda s: s.duration,
        reverse=True,
    )
    if not leaves:
        return None
    return Bottleneck(span=leaves[0], share=leaves[0].duration / total)
""",
        True,
    ),
    # -- wrong: each breaks one stated behaviour
    Submission(
        "bottleneck",
        "the slowest span, not the slowest leaf",
        _BN_HEAD
        + """
    done = [s for s in spans if s.duration is not None]
    if not done:
        return None
    ids = {s.id for s in done}
    total = sum(s.duration for s in done if s.parent_id not in ids)
    slowest = max(done, key=lambda s: s.duration)
    return Bottleneck(slowest, slowest.duration / total)
""",
        False,
    ),
    Submission(
        "bottleneck",
        "running spans still count as parents",
        _BN_HEAD
        + """
    ids = {s.id for s in spans if s.duration is not None}
    parents = {s.parent_id for s in spans}
    leaves = [s for s in spans if s.duration is not None and s.id not in parents]
    if not leaves:
        return None
    total = sum(s.duration for s in spans if s.duration is not None and s.parent_id not in ids)
    slowest = max(leaves, key=lambda s: s.duration)
    return Bottleneck(slowest, slowest.duration / total)
""",
        False,
    ),
    Submission(
        "bottleneck",
        "roots are only the spans without a parent id",
        _BN_HEAD
        + """
    done = [s for s in spans if s.duration is not None]
    parents = {s.parent_id for s in done}
    leaves = [s for s in done if s.id not in parents]
    if not leaves:
        return None
    total = sum(s.duration for s in done if s.parent_id is None)
    slowest = max(leaves, key=lambda s: s.duration)
    return Bottleneck(slowest, slowest.duration / total if total else 1.0)
""",
        False,
    ),
    Submission(
        "bottleneck",
        "the share of the first root only",
        _BN_HEAD
        + """
    done = [s for s in spans if s.duration is not None]
    ids = {s.id for s in done}
    parents = {s.parent_id for s in done}
    leaves = [s for s in done if s.id not in parents]
    if not leaves:
        return None
    first_root = next(s for s in done if s.parent_id not in ids)
    slowest = max(leaves, key=lambda s: s.duration)
    return Bottleneck(slowest, slowest.duration / first_root.duration)
""",
        False,
    ),
    Submission(
        "bottleneck",
        "the share as a percentage",
        _BN_HEAD
        + """
    done = [s for s in spans if s.duration is not None]
    ids = {s.id for s in done}
    parents = {s.parent_id for s in done}
    leaves = [s for s in done if s.id not in parents]
    if not leaves:
        return None
    total = sum(s.duration for s in done if s.parent_id not in ids)
    slowest = max(leaves, key=lambda s: s.duration)
    return Bottleneck(slowest, 100 * slowest.duration / total)
""",
        False,
    ),
    Submission(
        "bottleneck",
        "an empty trace gives a zero bottleneck instead of None",
        _BN_HEAD
        + """
    done = [s for s in spans if s.duration is not None]
    ids = {s.id for s in done}
    parents = {s.parent_id for s in done}
    leaves = [s for s in done if s.id not in parents]
    if not leaves:
        return Bottleneck(Span(id="-", parent_id=None, kind="module", name="-", start=0.0), 0.0)
    total = sum(s.duration for s in done if s.parent_id not in ids)
    slowest = max(leaves, key=lambda s: s.duration)
    return Bottleneck(slowest, slowest.duration / total)
""",
        False,
    ),
]

SUBMISSIONS = TRACER + REDACT + BOTTLENECK
