"""Exercise 3's graded cells, run on wrong submissions: each must lose exactly the points it should.

A graded cell (visible and hidden tests) runs here in a namespace made of the master's solution
cells (`tools/answer_key.py`) with one solution swapped for a plausible wrong one — the way a
class of synthetic submissions was graded for issue 13. Every wrong solution must fail its own
task's cell; a wrong *earlier* task must not cost a later task's cell; the reference passes all.
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dspy
import jupytext
import pytest
from answer_key import load_solutions  # tools/ is on sys.path: see conftest

ROOT = Path(__file__).resolve().parents[1]
MASTER = ROOT / "source" / "ch07" / "03_debugging.py"
SOLUTIONS = (
    "tracer",
    "render_tree",
    "redact",
    "trace_logger",
    "bottleneck",
    "find_next",
    "breakpoints",
)


def graded_cells() -> dict[str, str]:
    """grade_id -> source of each graded test cell of the master (hidden tests included)."""
    cells = jupytext.read(MASTER, fmt="py:percent").cells
    return {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
    }


@pytest.fixture(scope="module")
def reference() -> dict:
    return vars(load_solutions("03_debugging", *SOLUTIONS, definitions=["DraftAndReview"]))


def passes(grade_id: str, reference: dict, **swapped) -> bool:
    """Does graded cell `grade_id` pass with the reference, some names replaced by `swapped`?"""
    namespace = {**reference, **swapped, "__name__": "__main__"}
    try:
        with dspy.context(adapter=dspy.JSONAdapter()):
            exec(compile(graded_cells()[grade_id], f"<{grade_id}>", "exec"), namespace)
    except Exception:  # an AssertionError, or the submission's own error: the cell scores 0
        return False
    return True


def _blank(*args, **kwargs):
    raise NotImplementedError()


def test_every_graded_task_is_tested_here() -> None:
    assert set(graded_cells()) == {
        "test_tracer",
        "test_render_tree",
        "test_redact",
        "test_trace_logger",
        "test_bottleneck",
    }


@pytest.mark.parametrize("grade_id", sorted(graded_cells()))
def test_the_reference_passes(reference: dict, grade_id: str) -> None:
    assert passes(grade_id, reference)


# ---- Task 1 -----------------------------------------------------------------------------------


def _tracer_variants(base: type) -> dict[str, type]:
    class StackParent(base):
        """Parent = top of a stack: right one call at a time, wrong when calls overlap."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._stack: list[str] = []

        def _start(self, call_id, kind, instance, inputs):
            super()._start(call_id, kind, instance, inputs)
            self.spans[-1].parent_id = self._stack[-1] if self._stack else None
            self._stack.append(call_id)

        def _end(self, call_id, outputs, exception):
            if call_id in self._stack:
                self._stack.remove(call_id)
            super()._end(call_id, outputs, exception)

    class NoUsage(base):
        def _end(self, call_id, outputs, exception):
            with self._lock:
                span = self._open.pop(call_id, None)
            if span is not None:
                span.duration, span.outputs, span.error = (
                    time.perf_counter() - span.start,
                    outputs,
                    exception,
                )
                self._finished(span)

    class ForgetsErrors(base):
        def _end(self, call_id, outputs, exception):
            super()._end(call_id, outputs, None)

    class Blank(base):
        _start = _blank
        _end = _blank

    return {
        "parent from a stack": StackParent,
        "no token usage": NoUsage,
        "errors dropped": ForgetsErrors,
        "blank": Blank,
    }


@pytest.mark.parametrize(
    "variant", ["parent from a stack", "no token usage", "errors dropped", "blank"]
)
def test_wrong_tracers_fail_task_1(reference: dict, variant: str) -> None:
    wrong = _tracer_variants(reference["SpanTracer"])[variant]
    assert not passes("test_tracer", reference, SpanTracer=wrong)


# ---- Task 2 -----------------------------------------------------------------------------------


def _start_order_tree(spans) -> str:
    """The previous reference: start order, indented by depth — wrong for overlapping calls."""
    if not spans:
        return "(no spans)"
    by_id = {s.id: s for s in spans}
    lines = []
    for span in sorted(spans, key=lambda s: s.start):
        depth, parent = 0, span.parent_id
        while parent in by_id:
            depth, parent = depth + 1, by_id[parent].parent_id
        took = "running" if span.duration is None else f"{span.duration * 1000:.1f} ms"
        line = f"{'  ' * depth}{span.kind} {span.name} {took}"
        if span.error is not None:
            line += f"  FAILED {type(span.error).__name__}: {span.error}"
        lines.append(line)
    return "\n".join(lines)


def _zero_for_running(reference: dict) -> Callable:
    def render(spans):
        return reference["render_tree"](
            [
                s if s.duration is not None else type(s)(**{**s.__dict__, "duration": 0.0})
                for s in spans
            ]
        )

    return render


def _orphans_indented(reference: dict) -> Callable:
    def render(spans):
        text = reference["render_tree"](spans)
        ids = {s.id for s in spans}
        orphans = {s.name for s in spans if s.parent_id is not None and s.parent_id not in ids}
        return "\n".join(
            ("  " + line) if line.split(" ")[1:2] and line.split(" ")[1] in orphans else line
            for line in text.splitlines()
        )

    return render


@pytest.mark.parametrize(
    "variant", ["start order", "running as 0.0 ms", "orphans indented", "blank"]
)
def test_wrong_trees_fail_task_2(reference: dict, variant: str) -> None:
    wrong = {
        "start order": _start_order_tree,
        "running as 0.0 ms": _zero_for_running(reference),
        "orphans indented": _orphans_indented(reference),
        "blank": _blank,
    }[variant]
    assert not passes("test_render_tree", reference, render_tree=wrong)


# ---- Task 3 -----------------------------------------------------------------------------------


def _redactor(key: str, bearer: str, email: str) -> Callable:
    def redact(text, extra_patterns=()):
        text = re.sub(key, "[REDACTED_KEY]", text)
        text = re.sub(bearer, "Bearer [REDACTED_TOKEN]", text)
        text = re.sub(email, "[REDACTED_EMAIL]", text)
        for pattern in extra_patterns:
            try:
                text = re.sub(pattern, "[REDACTED]", text)
            except re.error as exc:
                raise ValueError(f"bad pattern {pattern!r}") from exc
        return text

    return redact


KEY = r"sk-[A-Za-z0-9_\-]{16,}"
GOOD_BEARER = r"(?i)bearer\s+[\w.~+/\-]+=*"
GOOD_EMAIL = r"(?<![\w.%+\-])[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)+"
WRONG_REDACTIONS = {
    # the previous reference: ASCII-only addresses, quadratic on a long word
    "previous reference": _redactor(
        KEY,
        r"(?i)bearer\s+[A-Za-z0-9._~+/\-]+=*",
        r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+",
    ),
    "Unicode but quadratic": _redactor(KEY, GOOD_BEARER, r"[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)+"),
    "Bearer followed by a space only": _redactor(KEY, r"(?i)bearer [\w.~+/\-]+=*", GOOD_EMAIL),
    "word boundary before Bearer": _redactor(KEY, r"(?i)\bbearer\s+[\w.~+/\-]+=*", GOOD_EMAIL),
    "ASCII-only addresses": _redactor(
        KEY,
        GOOD_BEARER,
        r"(?<![\w.%+\-])[A-Za-z0-9.%+\-]+@[A-Za-z0-9\-]+"
        r"(?:\.[A-Za-z0-9\-]+)+",
    ),
    "blank": _blank,
}


@pytest.mark.parametrize("variant", list(WRONG_REDACTIONS))
def test_wrong_redactions_fail_task_3(reference: dict, variant: str) -> None:
    assert not passes("test_redact", reference, redact=WRONG_REDACTIONS[variant])


def test_a_solution_cell_cannot_fake_the_growth_measurement(reference: dict) -> None:
    import dspy_workbook.tracing as tracing
    import dspy_workbook.tracing._growth as growth

    saved = growth.measure_growth

    def always_linear(fn, make_input, sizes=(1, 2), **kwargs):
        return growth.Growth(tuple(sizes), (0.0,) * len(sizes), True, 3.0)

    try:  # what a solution cell could do before the graded cell runs
        growth.measure_growth = tracing.measure_growth = always_linear
        assert not passes(
            "test_redact", reference, redact=WRONG_REDACTIONS["Unicode but quadratic"]
        )
    finally:
        growth.measure_growth = tracing.measure_growth = saved


# ---- Task 4 -----------------------------------------------------------------------------------


def _adds_a_handler_each_time(name, path, fmt="%(message)s"):
    import logging

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(fmt))
    logger.addHandler(handler)
    return logger


def _keeps_the_first_path(reference: dict) -> Callable:
    import logging

    def get(name, path, fmt="%(message)s"):
        logger = logging.getLogger(name)
        if any(isinstance(h, logging.FileHandler) for h in logger.handlers):
            return logger  # "already set up": ignores a new path and format
        return reference["get_trace_logger"](name, path, fmt)

    return get


@pytest.mark.parametrize("variant", ["a handler per call", "keeps the first path", "blank"])
def test_wrong_loggers_fail_task_4(reference: dict, variant: str) -> None:
    wrong = {
        "a handler per call": _adds_a_handler_each_time,
        "keeps the first path": _keeps_the_first_path(reference),
        "blank": _blank,
    }[variant]
    assert not passes("test_trace_logger", reference, get_trace_logger=wrong)


def test_a_wrong_redact_or_tracer_does_not_cost_the_logger_task(reference: dict) -> None:
    blank_tracer = _tracer_variants(reference["SpanTracer"])["blank"]
    assert passes(
        "test_trace_logger",
        reference,
        redact=lambda text, extra_patterns=(): text,
        SpanTracer=blank_tracer,
    )


def test_the_logger_cell_leaves_no_temporary_folder(reference: dict) -> None:
    before = set(Path(tempfile.gettempdir()).glob("ex3-grade-*"))
    assert passes("test_trace_logger", reference)
    assert not passes("test_trace_logger", reference, get_trace_logger=_adds_a_handler_each_time)
    assert set(Path(tempfile.gettempdir()).glob("ex3-grade-*")) == before


# ---- Task 5 -----------------------------------------------------------------------------------


def _running_spans_count_as_children(spans):
    from dspy_workbook.tracing import Bottleneck

    ids = {s.id for s in spans}
    parents = {s.parent_id for s in spans}
    leaves = [s for s in spans if s.id not in parents and s.duration is not None]
    if not leaves:
        return None
    total = sum(s.duration for s in spans if s.parent_id not in ids and s.duration is not None)
    slowest = max(leaves, key=lambda s: s.duration)
    return Bottleneck(slowest, slowest.duration / total if total else 1.0)


def _slowest_span(spans):
    from dspy_workbook.tracing import Bottleneck

    done = [s for s in spans if s.duration is not None]
    if not done:
        return None
    slowest = max(done, key=lambda s: s.duration)
    return Bottleneck(slowest, 1.0)


def _share_of_first_root(reference: dict) -> Callable:
    def find(spans):
        found = reference["find_bottleneck"](spans)
        if found is None:
            return None
        roots = [s for s in spans if s.parent_id is None and s.duration]
        return type(found)(found.span, found.span.duration / roots[0].duration if roots else 1.0)

    return find


@pytest.mark.parametrize(
    "variant", ["running spans kept", "slowest span, not leaf", "first root's share", "blank"]
)
def test_wrong_bottlenecks_fail_task_5(reference: dict, variant: str) -> None:
    wrong = {
        "running spans kept": _running_spans_count_as_children,
        "slowest span, not leaf": _slowest_span,
        "first root's share": _share_of_first_root(reference),
        "blank": _blank,
    }[variant]
    assert not passes("test_bottleneck", reference, find_bottleneck=wrong)


def test_a_blank_tracer_does_not_cost_the_later_tasks(reference: dict) -> None:
    blank_tracer = _tracer_variants(reference["SpanTracer"])["blank"]
    for grade_id in ("test_render_tree", "test_redact", "test_trace_logger", "test_bottleneck"):
        assert passes(grade_id, reference, SpanTracer=blank_tracer), grade_id


def test_graded_cells_finish_quickly_even_for_a_quadratic_redaction(reference: dict) -> None:
    # the grader stops a cell at 120 s; a quadratic submission must fail in seconds, not hang
    result: list[bool] = []
    worker = threading.Thread(
        target=lambda: result.append(
            passes("test_redact", reference, redact=WRONG_REDACTIONS["previous reference"])
        ),
        daemon=True,
    )
    worker.start()
    worker.join(120)
    assert result == [False], "the graded cell did not finish within the grader's 120 s"
