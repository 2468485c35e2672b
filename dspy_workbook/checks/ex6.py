"""Self-checks for Exercise 6 (monitoring): `ex6.check_…(…)` after each task, `ex6.hint(key)`.

Every check builds its own simulated LM with DSPy's cache off (unless the check is about the
cache), so what a student ran before, or a re-run of the check, never turns a miss into a hit.
DSPy catches what a callback raises and only logs it; the collector check first calls the hooks
directly (so an error names the student's line) and then reports any error DSPy swallowed as the
verdict instead of letting a wall of warnings through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Iterator
from typing import Any

import dspy

from .._errors import WorkbookError
from ..lm import sim_lm
from ..monitoring import LabelledQuality, Observation
from ..threads import run_async
from ._core import call_student as _call
from ._core import expect, expect_callable, student_line
from ._exercise import Exercise

__all__ = [
    "TaskNotDone",
    "check_all",
    "check_collector",
    "check_detector",
    "ex",
    "hint",
    "stop_if_unfinished",
]

ex = Exercise("Exercise 6 · monitoring and observability")


class TaskNotDone(WorkbookError, NotImplementedError):
    """A graded cell reached a task whose code is still the starter stub (shown as one line)."""


@contextlib.contextmanager
def stop_if_unfinished(task: str, what: str) -> Iterator[None]:
    """In a graded cell: a stub that still raises `NotImplementedError` stops Run All here with
    one clear line, instead of a traceback (or, further on, model calls through unfinished code)."""
    try:
        yield
    except TaskNotDone:
        raise
    except NotImplementedError:
        raise TaskNotDone(
            f"{task} is not done yet: {what} still raises NotImplementedError. Write it, run its "
            "cell and its self-check, then run the notebook again from here."
        ) from None


_HOOKS = ("on_module_start", "on_module_end", "on_lm_start", "on_lm_end")


class _SwallowedErrors(logging.Handler):
    """What DSPy swallowed: the errors of watched hooks (with where they came from), and the
    warnings DSPy logs for them (kept off the screen while a check runs)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self.errors: list[tuple[str, BaseException]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def watch(self, collector: Any) -> Any:
        """Record every exception `collector`'s hooks raise, then let it propagate to DSPy."""
        for name in _HOOKS:
            hook = getattr(collector, name, None)
            if hook is None:
                continue

            def watched(*args: Any, _hook: Any = hook, _name: str = name, **kwargs: Any) -> Any:
                try:
                    return _hook(*args, **kwargs)
                except Exception as exc:
                    self.errors.append((_name, exc))
                    raise

            with contextlib.suppress(AttributeError, TypeError):  # e.g. a class with __slots__
                setattr(collector, name, watched)
        return collector

    def clear(self) -> None:
        self.messages.clear()
        self.errors.clear()


@contextlib.contextmanager
def _dspy_swallows() -> Iterator[_SwallowedErrors]:
    log = logging.getLogger("dspy.utils.callback")
    handler, propagate = _SwallowedErrors(), log.propagate
    log.addHandler(handler)
    log.propagate = False
    try:
        yield handler
    finally:
        log.removeHandler(handler)
        log.propagate = propagate


def _no_swallowed(swallowed: _SwallowedErrors, during: str) -> None:
    """Fail with the first error DSPy caught from the student's hooks during `during`."""
    if swallowed.errors:
        hook, exc = swallowed.errors[0]
        where = student_line(exc)
        raise AssertionError(
            f"during {during}, your `{hook}` raised {type(exc).__name__}: {exc}"
            f"{f' ({where})' if where else ''} — DSPy catches what a callback raises and only "
            "logs it, so the call went on without your hook"
        )
    if swallowed.messages:
        raise AssertionError(
            f"during {during}, one of your hooks raised and DSPy only logged it: "
            f"{swallowed.messages[0].split('>: ', 1)[-1]!r}"
        )


# -- Task 1 -------------------------------------------------------------------------------------
ITALY = "What is the capital of Italy?"


class _Ask(dspy.Module):
    """A custom module whose `forward` takes the question by position: `_Ask()(question)`."""

    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        return self.predict(question=question)


class _RecordingQuality:
    """The labelled metric, remembering which inputs it was given; a missing prediction (a
    failed call) still gets a number, as many real metrics do."""

    def __init__(self) -> None:
        self.metric = LabelledQuality([(ITALY, "Rome")])
        self.inputs: list[Any] = []

    def __call__(self, inputs: Any, prediction: Any) -> float:
        self.inputs.append(inputs)
        if prediction is None:
            return 0.0
        score = self.metric(inputs, prediction) if isinstance(inputs, dict) else None
        return 0.0 if score is None else score


def _run(collector: Any, lm: dspy.LM, program: Any, *args: Any, **kwargs: Any) -> Any:
    with dspy.context(lm=lm, callbacks=[collector], adapter=dspy.JSONAdapter()):
        return program(*args, **kwargs)


def _observations(collector: Any) -> list:
    return list(getattr(collector, "observations", []))


@ex.task(
    "collector",
    "Task 1 · metrics collector",
    points=3,
    needs=("MetricsCollector",),
    hints=(
        "`on_module_start` of a nested module finds `self._current.get()` already set (its outer "
        "module set it): return at once. `on_module_end` knows a top-level call by its `call_id` "
        "being in `self._open` (only `on_module_start` of a top-level call put it there).",
        "Start: a `wbm.PredictionState(started=time.perf_counter(), inputs=wbm.named_inputs("
        "instance, inputs))`; `state.token = self._current.set(state)`; remember `state` in "
        "`self._open[call_id]`. End: `state = self._open.pop(call_id, None)`; if it is None, "
        "return; `self._current.reset(state.token)`.",
        "Then `self.record(state.observation(latency=time.perf_counter() - state.started, "
        "error=None if exception is None else type(exception).__name__, quality=self.safely("
        "self.quality, state.inputs, outputs) if exception is None else None, confidence=…))`, "
        "with `confidence` like `quality` but `self.safely(self.confidence, outputs)`.",
    ),
)
def check_collector(MetricsCollector: type) -> str:
    expect_callable(MetricsCollector, "MetricsCollector")
    quality = _RecordingQuality()
    collector = _call("`MetricsCollector(quality=…)`", MetricsCollector, quality=quality)
    # 1. The hooks called directly, as DSPy calls them: an error names the student's own line.
    predict = dspy.Predict("question -> answer")
    inputs = {"args": (), "kwargs": {"question": ITALY}}
    _call("`on_module_start`", collector.on_module_start, "call-1", predict, inputs)
    _call(
        "`on_module_end`",
        collector.on_module_end,
        "call-1",
        dspy.Prediction(answer="Rome"),
        None,
    )
    got = _observations(collector)
    expect(
        len(got) == 1,
        f"`on_module_start` then `on_module_end` of one top-level call recorded {len(got)} "
        "observations — `on_module_end` calls `self.record(...)` once for the call it started",
    )
    expect(
        isinstance(got[0], Observation),
        f"`record` was given a {type(got[0]).__name__}, not the `wbm.Observation` that "
        "`state.observation(...)` returns",
    )
    expect(
        quality.inputs and quality.inputs[0] == {"question": ITALY},
        f"`quality` was called with inputs {quality.inputs[0] if quality.inputs else None!r} — "
        "DSPy hands `on_module_start` the inputs as `{'args': (…), 'kwargs': {…}}`; keep them by "
        "name in the state: `wbm.named_inputs(instance, inputs)` gives `{'question': …}`"
        if quality.inputs
        else "`quality` was never called for a prediction that succeeded — `quality=self.safely("
        "self.quality, state.inputs, outputs)`",
    )
    # 2. Real predictions through DSPy.
    with _dspy_swallows() as swallowed:
        collector = swallowed.watch(
            MetricsCollector(quality=_RecordingQuality(), confidence=lambda p: 0.75)
        )
        lm = sim_lm(latency=0.02, answers={"Italy": "Rome"}, cache=False)
        _run(collector, lm, dspy.Predict("question -> answer"), question=ITALY)
        _no_swallowed(swallowed, "one prediction")
        got = _observations(collector)
        expect(len(got) == 1, f"one prediction through DSPy gave {len(got)} observations")
        obs = got[0]
        expect(
            isinstance(obs.latency, float) and 0.02 <= obs.latency < 5,
            f"latency was {obs.latency!r} for a call that waits 0.02 s — record seconds: "
            "`time.perf_counter() - state.started`",
        )
        expect(
            obs.lm_calls == 1 and obs.input_tokens > 0,
            f"the prediction recorded lm_calls={obs.lm_calls}, input_tokens={obs.input_tokens} — "
            "the given `on_lm_end` counts each LM call in `self._current.get()`: put the state "
            "there in `on_module_start`, and record `state.observation(...)`, which carries them",
        )
        expect(
            obs.quality == 1.0 and obs.error is None,
            f"quality={obs.quality!r}, error={obs.error!r} for a right answer (expected 1.0 and "
            "None)",
        )
        expect(
            obs.confidence == 0.75,
            f"confidence={obs.confidence!r} from a `confidence` function that says 0.75 — "
            "record `self.safely(self.confidence, outputs)`",
        )
        left = len(getattr(collector, "_open", {}))
        expect(
            left == 0,
            f"after one finished prediction `self._open` still holds {left} state(s) — take the "
            "state out in `on_module_end` (`self._open.pop(call_id, None)`), or a server keeps "
            "one per prediction forever",
        )
        _run(collector, lm, dspy.Predict("question -> answer"), question=ITALY)
        _no_swallowed(swallowed, "a second prediction")
        expect(
            len(_observations(collector)) == 2,
            f"two predictions in a row gave {len(_observations(collector))} observations — "
            "`on_module_end` must reset `self._current` (`self._current.reset(state.token)`), "
            "or the next prediction looks nested",
        )
        nested = swallowed.watch(MetricsCollector())
        cot = dspy.ChainOfThought("question -> answer")
        _run(nested, sim_lm(latency=0.0, cache=False), cot, question="a nested question")
        _no_swallowed(swallowed, "a ChainOfThought")
        got = _observations(nested)
        expect(
            len(got) == 1 and got[0].lm_calls == 1,
            f"a ChainOfThought (a Predict inside) gave {len(got)} observations — a module that "
            "starts while `self._current.get()` is set is part of the same prediction",
        )
        quality = _RecordingQuality()
        positional = swallowed.watch(MetricsCollector(quality=quality))
        _run(positional, lm, _Ask(), ITALY)
        _no_swallowed(swallowed, "a module called as `program(question)`")
        expect(
            quality.inputs == [{"question": ITALY}],
            f"for `program(question)` (passed by position) `quality` got inputs "
            f"{quality.inputs[0] if quality.inputs else None!r} — DSPy puts positional arguments "
            "in `inputs['args']`; `wbm.named_inputs(instance, inputs)` names both kinds",
        )
        failing_lm = sim_lm(latency=0.0, error_rate=1.0, num_retries=0, cache=False)
        quality = _RecordingQuality()
        failing = swallowed.watch(MetricsCollector(quality=quality, confidence=lambda p: 0.5))
        raised: BaseException | None = None
        try:
            _run(failing, failing_lm, dspy.Predict("question -> answer"), question=ITALY)
        except Exception as exc:
            raised = exc
        _no_swallowed(swallowed, "a prediction that fails")
        got = _observations(failing)
        expect(
            len(got) == 1,
            f"a failing prediction gave {len(got)} observations — it must be recorded too",
        )
        expected = type(raised).__name__ if raised is not None else "?"
        expect(
            got[0].error == expected,
            f"a prediction that raised {expected} was recorded with error={got[0].error!r} — "
            "record the exception's type name, `type(exception).__name__`",
        )
        expect(
            got[0].quality is None and got[0].confidence is None,
            f"a failed prediction got quality={got[0].quality!r}, confidence="
            f"{got[0].confidence!r} — score only predictions that returned; both are None when "
            "the call failed",
        )

        def broken(inputs: Any, prediction: Any) -> float:
            raise RuntimeError("a bug in the quality metric")

        shielded = MetricsCollector(quality=broken)
        _run(shielded, lm, dspy.Predict("question -> answer"), question=ITALY)
        got = _observations(shielded)
        expect(
            len(got) == 1 and got[0].quality is None,
            f"a quality function that raises left {len(got)} observations — call user code "
            "through `self.safely(...)`, which turns its error into None",
        )
        swallowed.clear()
        concurrent = swallowed.watch(MetricsCollector())
        slow = sim_lm(latency=0.15, cache=False)

        async def many() -> None:
            with dspy.context(lm=slow, callbacks=[concurrent], adapter=dspy.JSONAdapter()):
                program = dspy.Predict("question -> answer")
                await asyncio.gather(*(program.acall(question=f"concurrent {i}") for i in range(5)))

        run_async(many, timeout=20)
        _no_swallowed(swallowed, "5 concurrent predictions")
        got = _observations(concurrent)
        calls = sorted(o.lm_calls for o in got)
        expect(
            calls == [1] * 5 and all(o.latency >= 0.15 for o in got),
            f"5 concurrent predictions recorded LM calls {calls} and latencies "
            f"{[round(o.latency, 3) for o in got]} s (each waits 0.15 s) — keep each prediction "
            "in the ContextVar `self._current`, never in a plain attribute",
        )
    return (
        "one observation per prediction, nested calls included, with latency, errors and quality "
        "— also called by position, failing, or concurrently."
    )


# -- Task 2 -------------------------------------------------------------------------------------
def _update(detector: Any, value: float) -> Any:
    try:
        return _call(f"`update({value!r})`", detector.update, value)
    except AssertionError as exc:
        if isinstance(exc.__cause__, ZeroDivisionError):
            raise AssertionError(
                f"{exc} — when the spread is 0, z is 0 for no change and +inf or -inf otherwise"
            ) from None
        raise


def _is_bool(verdict: Any, value: float) -> None:
    expect(
        verdict is True or verdict is False,
        f"`update({value!r})` returned {verdict!r}; return True (anomalous) or False",
    )


@ex.task(
    "detector",
    "Task 2 · adaptive detector",
    points=3,
    needs=("AdaptiveDetector",),
    hints=(
        "`diff = value - self.mean`, then `z = diff / self.spread` — except when the spread is 0: "
        "then z is 0.0 if diff is 0, else `math.copysign(math.inf, diff)`. Keep it in "
        "`self.last_z` before you change the baseline.",
        "`anomalous = self.seen > self.warmup and (z > self.threshold if self.direction == 'up' "
        "else z < -self.threshold)`.",
        "Only when not anomalous: `self.mean += self.alpha * diff` and `self.var = (1 - "
        "self.alpha) * (self.var + self.alpha * diff * diff)`; then `return anomalous`.",
    ),
)
def check_detector(AdaptiveDetector: type) -> str:
    expect_callable(AdaptiveDetector, "AdaptiveDetector")
    make = AdaptiveDetector
    detector = _call(
        "`AdaptiveDetector(...)`", make, alpha=0.1, threshold=4.0, warmup=10, min_spread=0.001
    )
    normal = [0.05 + 0.004 * ((i * 7) % 5 - 2) / 2 for i in range(40)]
    verdicts = [_update(detector, v) for v in normal]
    for verdict, value in zip(verdicts, normal, strict=True):
        _is_bool(verdict, value)
    flagged = [i for i, v in enumerate(verdicts) if v]
    expect(not flagged, f"normal jitter (50 ms ± 4 ms) was flagged at values {flagged}")
    mean, var = detector.mean, detector.var
    spike = _update(detector, 0.5)
    expect(spike is True, f"a 500 ms value after 50 ± 4 ms: `update` returned {spike!r}")
    expect(
        isinstance(detector.last_z, float) and detector.last_z > 4,
        f"after the 500 ms value `last_z` is {detector.last_z!r} — store this value's z-score "
        "(against the baseline before it) in `self.last_z`",
    )
    expect(
        detector.mean == mean and detector.var == var,
        f"the anomalous value moved the baseline (mean {mean:.5f} → {detector.mean:.5f}, var "
        f"{var:.3g} → {detector.var:.3g}) — update it only with normal values",
    )
    early = make(warmup=3, min_spread=0.1)
    verdicts = [_update(early, v) for v in (1.0, 1.0, 5.0)]
    expect(
        verdicts == [False, False, False],
        f"warmup=3: values 1.0, 1.0, 5.0 gave {verdicts} — only after *more than* `warmup` "
        "values (counting this one) can a value be anomalous",
    )
    late = make(warmup=3, min_spread=0.1)
    verdicts = [_update(late, v) for v in (1.0, 1.0, 1.0, 5.0)]
    expect(
        verdicts == [False, False, False, True],
        f"warmup=3: values 1.0, 1.0, 1.0, 5.0 gave {verdicts} — the fourth value is past the "
        "warm-up and 40 spreads away",
    )
    down = make(direction="down", warmup=3, min_spread=0.05)
    for v in (0.8, 0.8, 0.8, 0.8):
        _update(down, v)
    expect(_update(down, 0.99) is False, "direction='down' flagged a rise in quality")
    expect(_update(down, 0.2) is True, "direction='down' missed a drop from 0.8 to 0.2")
    up = make(warmup=3, min_spread=0.05)
    for v in (0.8, 0.8, 0.8, 0.8):
        _update(up, v)
    expect(_update(up, 0.2) is False, "direction='up' (the default) flagged a drop")
    ewma = make(alpha=0.5, warmup=0, min_spread=10.0)
    _update(ewma, 1.0)
    _update(ewma, 3.0)
    expect(
        isinstance(ewma.last_z, float) and abs(ewma.last_z - 0.2) < 1e-9,
        f"alpha=0.5, min_spread=10, values 1.0 then 3.0: last_z is {ewma.last_z!r} — z is the "
        "difference from the mean *before* this value, divided by `self.spread` (which is at "
        "least `min_spread`)",
    )
    expect(
        abs(ewma.mean - 2.0) < 1e-9 and abs(ewma.var - 1.0) < 1e-9,
        f"alpha=0.5, values 1.0 then 3.0 (a normal value): mean {ewma.mean!r}, var {ewma.var!r} "
        "— a normal value updates both, with the EWMA formulas from the text",
    )
    flat = make(warmup=0)
    verdicts = [_update(flat, 2.0), _update(flat, 2.0)]
    expect(
        verdicts == [False, False] and flat.last_z == 0.0,
        f"min_spread=0, values 2.0 then 2.0 (spread 0): verdicts {verdicts}, last_z "
        f"{flat.last_z!r} — with spread 0, a value equal to the mean has z = 0",
    )
    jump = _update(flat, 2.5)
    expect(
        jump is True and flat.last_z == math.inf,
        f"then 2.5 with spread 0: verdict {jump!r}, last_z {flat.last_z!r} — any change has "
        "z = +inf or -inf (the sign of the difference)",
    )
    drift = make(alpha=0.2, warmup=5, min_spread=0.001)
    flagged = [i for i in range(200) if _update(drift, 1.0 + 0.002 * i)]
    expect(
        not flagged,
        f"a slow drift (+2 ms per value) was flagged at values {flagged[:5]}… — a normal value "
        "always updates the baseline, so slow change is learned",
    )
    return (
        "jitter passes, spikes and drops are flagged in their direction after the warm-up, "
        "incidents don't move the baseline, and a flat series is handled."
    )


hint, check_all = ex.hint, ex.check_all
