"""Exercise 6's catalogue: answers to the two graded tasks (the collector's hooks, the adaptive
detector), right ones in other styles and wrong ones that each break one behaviour the task
states.

Each `source` is the whole solution cell as a student could leave it (the given lines included).
The names a cell uses (`wbm`, `time`, `math`, `dspy`) come from the notebook's import cell, as in
a student's kernel.
"""

from __future__ import annotations

from tests.catalogue import Submission

MASTER = "06_monitoring"

# ---- Task 1: the collector's hooks ------------------------------------------------------------
_HEAD = '''
class MetricsCollector(wbm.CollectorBase):
    """One `wbm.Observation` per top-level prediction, kept in a bounded ring buffer."""

    def on_lm_end(self, call_id: str, outputs, exception=None) -> None:
        usage = self.end_lm_call(call_id, exception)  # this call's tokens, cache hit and model
        state = self._current.get()  # the prediction running in *this* thread or task
        if usage is not None and state is not None:
            state.add(usage)
'''

_START = """
    def on_module_start(self, call_id: str, instance, inputs: dict) -> None:
        if self._current.get() is not None:
            return
        state = wbm.PredictionState(
            started=time.perf_counter(), inputs=wbm.named_inputs(instance, inputs)
        )
        state.token = self._current.set(state)
        self._open[call_id] = state
"""

_END = """
    def on_module_end(self, call_id: str, outputs, exception=None) -> None:
        state = self._open.pop(call_id, None)
        if state is None:
            return
        self._current.reset(state.token)
        ok = exception is None
        self.record(
            state.observation(
                latency=time.perf_counter() - state.started,
                error=None if ok else type(exception).__name__,
                quality=self.safely(self.quality, state.inputs, outputs) if ok else None,
                confidence=self.safely(self.confidence, outputs) if ok else None,
            )
        )
"""


def _collector(start: str = _START, end: str = _END, head: str = _HEAD) -> str:
    return "\n".join(part.strip("\n") + "\n" for part in (head, start, end))


def _end_with(old: str, new: str) -> str:
    assert old in _END, old
    return _END.replace(old, new)


def _start_with(old: str, new: str) -> str:
    assert old in _START, old
    return _START.replace(old, new)


COLLECTOR = [
    # -- right, in other styles
    Submission(
        "collector",
        "student trial: a failed prediction recorded early, then quality and confidence",
        _collector(
            end="""
    def on_module_end(self, call_id: str, outputs, exception=None) -> None:
        state = self._open.pop(call_id, None)
        if state is None:
            return
        self._current.reset(state.token)
        latency = time.perf_counter() - state.started
        if exception is not None:
            self.record(state.observation(latency=latency, error=type(exception).__name__))
            return
        quality = self.safely(self.quality, state.inputs, outputs)
        confidence = self.safely(self.confidence, outputs)
        self.record(
            state.observation(latency=latency, error=None, quality=quality, confidence=confidence)
        )
""",
        ),
        True,
    ),
    Submission(
        "collector",
        "call id kept in the state; on_module_end compares it instead of using self._open",
        _collector(
            start="""
    def on_module_start(self, call_id, instance, inputs):
        if self._current.get():
            return
        state = wbm.PredictionState(time.perf_counter(), wbm.named_inputs(instance, inputs))
        state.call_id = call_id
        state.token = self._current.set(state)
""",
            end="""
    def on_module_end(self, call_id, outputs, exception=None):
        state = self._current.get()
        if state is None or state.call_id != call_id:
            return
        self._current.reset(state.token)
        if exception is not None:
            self.record(
                state.observation(
                    latency=time.perf_counter() - state.started,
                    error=exception.__class__.__name__,
                )
            )
            return
        self.record(
            state.observation(
                latency=time.perf_counter() - state.started,
                quality=self.safely(self.quality, state.inputs, outputs),
                confidence=self.safely(self.confidence, outputs),
            )
        )
""",
        ),
        True,
    ),
    Submission(
        "collector",
        "set(None) instead of reset, time.monotonic, inputs filled in after",
        _collector(
            start="""
    def on_module_start(self, call_id, instance, inputs):
        if self._current.get() is not None:  # nested: part of the running prediction
            return
        state = wbm.PredictionState(started=time.monotonic(), inputs={})
        state.inputs = wbm.named_inputs(instance, inputs)
        self._current.set(state)
        self._open[call_id] = state
""",
            end="""
    def on_module_end(self, call_id, outputs, exception=None):
        if call_id not in self._open:
            return
        state = self._open.pop(call_id)
        self._current.set(None)
        failed = exception is not None
        quality = None if failed else self.safely(self.quality, state.inputs, outputs)
        confidence = None if failed else self.safely(self.confidence, outputs)
        observation = state.observation(
            latency=time.monotonic() - state.started,
            error=type(exception).__name__ if failed else None,
            quality=quality,
            confidence=confidence,
        )
        self.record(observation)
""",
        ),
        True,
    ),
    Submission(
        "collector",
        "a helper method builds the observation; try/finally resets the ContextVar",
        _collector(
            end="""
    def _finish(self, state, outputs, exception):
        latency = time.perf_counter() - state.started
        if exception is not None:
            return state.observation(latency=latency, error=type(exception).__name__)
        return state.observation(
            latency=latency,
            quality=self.safely(self.quality, state.inputs, outputs),
            confidence=self.safely(self.confidence, outputs),
        )

    def on_module_end(self, call_id, outputs, exception=None):
        state = self._open.pop(call_id, None)
        if state is None:
            return
        try:
            self.record(self._finish(state, outputs, exception))
        finally:
            self._current.reset(state.token)
""",
        ),
        True,
    ),
    Submission(
        "collector",
        "the Observation built by hand from the state's counts",
        _collector(
            end="""
    def on_module_end(self, call_id, outputs, exception=None):
        state = self._open.pop(call_id, None)
        if state is None:
            return
        self._current.reset(state.token)
        ok = exception is None
        self.record(
            wbm.Observation(
                latency=time.perf_counter() - state.started,
                input_tokens=state.input_tokens,
                output_tokens=state.output_tokens,
                lm_calls=state.lm_calls,
                cache_hit=state.lm_calls > 0 and state.hits == state.lm_calls,
                error=None if ok else type(exception).__name__,
                quality=self.safely(self.quality, state.inputs, outputs) if ok else None,
                confidence=self.safely(self.confidence, outputs) if ok else None,
                cost=state.cost,
                model=state.model,
            )
        )
""",
        ),
        True,
    ),
    # -- wrong: each breaks one stated behaviour
    Submission(
        "collector",
        "an Observation built by hand without the state's LM calls and tokens",
        _collector(end=_end_with("state.observation(", "wbm.Observation(")),
        False,
    ),
    Submission(
        "collector",
        "nested module calls are not skipped (a ChainOfThought counts twice)",
        _collector(
            start=_start_with(
                """        if self._current.get() is not None:
            return
""",
                "",
            )
        ),
        False,
    ),
    Submission(
        "collector",
        "the callback's raw inputs kept ({'args', 'kwargs'}): quality never sees the question",
        _collector(
            start=_start_with("inputs=wbm.named_inputs(instance, inputs)", "inputs=dict(inputs)")
        ),
        False,
    ),
    Submission(
        "collector",
        "reads inputs from kwargs only: a question passed by position is lost",
        _collector(
            start=_start_with(
                "inputs=wbm.named_inputs(instance, inputs)", 'inputs=dict(inputs["kwargs"])'
            )
        ),
        False,
    ),
    Submission(
        "collector",
        "the state is read from self._open but never taken out (it grows with every prediction)",
        _collector(
            end=_end_with(
                "state = self._open.pop(call_id, None)", "state = self._open.get(call_id)"
            )
        ),
        False,
    ),
    Submission(
        "collector",
        "the ContextVar is never reset: the next prediction looks nested",
        _collector(end=_end_with("        self._current.reset(state.token)\n", "")),
        False,
    ),
    Submission(
        "collector",
        "latency in milliseconds",
        _collector(
            end=_end_with(
                "latency=time.perf_counter() - state.started,",
                "latency=(time.perf_counter() - state.started) * 1000,",
            )
        ),
        False,
    ),
    Submission(
        "collector",
        "latency is the end time, not the time since the start",
        _collector(end=_end_with("time.perf_counter() - state.started", "time.perf_counter()")),
        False,
    ),
    Submission(
        "collector",
        "error is the exception's message, not its type name",
        _collector(end=_end_with("type(exception).__name__", "str(exception)")),
        False,
    ),
    Submission(
        "collector",
        "a failed prediction is not recorded",
        _collector(
            end=_end_with(
                "        ok = exception is None\n",
                "        ok = exception is None\n        if not ok:\n            return\n",
            )
        ),
        False,
    ),
    Submission(
        "collector",
        "quality and confidence are scored even when the prediction failed",
        _collector(end=_end_with(") if ok else None,", "),")),
        False,
    ),
    Submission(
        "collector",
        "the quality function is called directly, not through self.safely",
        _collector(
            end=_end_with(
                "quality=self.safely(self.quality, state.inputs, outputs) if ok else None,",
                "quality=self.quality(state.inputs, outputs) if ok and self.quality else None,",
            )
        ),
        False,
    ),
    Submission(
        "collector",
        "confidence is never recorded",
        _collector(
            end=_end_with(
                "confidence=self.safely(self.confidence, outputs) if ok else None,",
                "confidence=None,",
            )
        ),
        False,
    ),
    Submission(
        "collector",
        "the running prediction in a plain attribute (concurrent predictions collide)",
        _collector(
            head=_HEAD.replace("state = self._current.get()", 'state = getattr(self, "now", None)'),
            start="""
    def on_module_start(self, call_id, instance, inputs):
        if getattr(self, "now", None) is not None:
            return
        self.now = wbm.PredictionState(
            started=time.perf_counter(), inputs=wbm.named_inputs(instance, inputs)
        )
        self._open[call_id] = self.now
""",
            end="""
    def on_module_end(self, call_id, outputs, exception=None):
        state = self._open.pop(call_id, None)
        if state is None:
            return
        self.now = None
        ok = exception is None
        self.record(
            state.observation(
                latency=time.perf_counter() - state.started,
                error=None if ok else type(exception).__name__,
                quality=self.safely(self.quality, state.inputs, outputs) if ok else None,
                confidence=self.safely(self.confidence, outputs) if ok else None,
            )
        )
""",
        ),
        False,
    ),
]

# ---- Task 2: the adaptive detector -------------------------------------------------------------
_DETECTOR_HEAD = '''
class AdaptiveDetector:
    """Flags values more than `threshold` spreads from an EWMA baseline, in one direction."""

    def __init__(self, *, alpha=0.1, threshold=4.0, warmup=20, direction="up", min_spread=0.0):
        if not (0 < alpha <= 1 and threshold > 0 and warmup >= 0 and min_spread >= 0):
            raise ValueError("need 0 < alpha <= 1, threshold > 0, warmup and min_spread >= 0")
        if direction not in ("up", "down"):
            raise ValueError(f"direction is 'up' or 'down', got {direction!r}")
        self.alpha, self.threshold, self.warmup = alpha, threshold, warmup
        self.direction, self.min_spread = direction, min_spread
        self.mean: float | None = None
        self.var, self.seen, self.last_z = 0.0, 0, 0.0

    @property
    def spread(self) -> float:
        return max(math.sqrt(self.var), self.min_spread)

    def update(self, value: float) -> bool:
        """Take one value; True when it is anomalous against the baseline so far."""
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"a metric value must be a finite number, got {value}")
        self.seen += 1
        if self.mean is None:
            self.mean = value
            return False
'''

_UPDATE = """
        diff, spread = value - self.mean, self.spread
        if spread > 0:
            z = diff / spread
        else:
            z = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        self.last_z = z
        beyond = z > self.threshold if self.direction == "up" else z < -self.threshold
        anomalous = self.seen > self.warmup and beyond
        if not anomalous:
            self.mean += self.alpha * diff
            self.var = (1 - self.alpha) * (self.var + self.alpha * diff * diff)
        return anomalous
"""


def _detector(body: str = _UPDATE) -> str:
    return _DETECTOR_HEAD.strip("\n") + "\n" + body.strip("\n") + "\n"


def _update_with(old: str, new: str) -> str:
    assert old in _UPDATE, old
    return _UPDATE.replace(old, new)


DETECTOR = [
    # -- right, in other styles
    Submission(
        "detector",
        "student trial: nested ifs for the direction, anomalous False until past the warm-up",
        _detector(
            """
        diff = value - self.mean
        spread = self.spread
        if spread > 0:
            z = diff / spread
        elif diff == 0:
            z = 0.0
        else:
            z = math.copysign(math.inf, diff)
        self.last_z = z
        anomalous = False
        if self.seen > self.warmup:
            if self.direction == "up":
                anomalous = z > self.threshold
            else:
                anomalous = z < -self.threshold
        if not anomalous:
            self.mean = self.mean + self.alpha * diff
            self.var = (1 - self.alpha) * (self.var + self.alpha * diff**2)
        return anomalous
"""
        ),
        True,
    ),
    Submission(
        "detector",
        "signed z and early returns; the variance update expanded",
        _detector(
            """
        diff = value - self.mean
        if self.spread == 0:
            z = 0.0 if diff == 0 else (float("inf") if diff > 0 else float("-inf"))
        else:
            z = diff / self.spread
        self.last_z = z
        signed = z if self.direction == "up" else -z
        if self.seen > self.warmup and signed > self.threshold:
            return True
        a = self.alpha
        self.mean = self.mean + a * diff
        self.var = (1 - a) * self.var + a * (1 - a) * diff**2
        return False
"""
        ),
        True,
    ),
    Submission(
        "detector",
        "a helper for z and a match on the direction",
        _detector(
            """
        z = self._z(value - self.mean)
        self.last_z = z
        match self.direction:
            case "up":
                far = z > self.threshold
            case _:
                far = z < -self.threshold
        anomalous = bool(far) and self.seen > self.warmup
        if not anomalous:
            diff = value - self.mean
            self.mean += self.alpha * diff
            self.var = (1 - self.alpha) * (self.var + self.alpha * diff * diff)
        return anomalous

    def _z(self, diff):
        spread = self.spread
        if spread:
            return diff / spread
        if diff == 0:
            return 0.0
        return math.inf if diff > 0 else -math.inf
"""
        ),
        True,
    ),
    # -- wrong: each breaks one stated behaviour
    Submission(
        "detector",
        "z not 0 for zero spread: a repeated value is infinitely far",
        _detector(
            _update_with(
                "z = 0.0 if diff == 0 else math.copysign(math.inf, diff)",
                "z = math.copysign(math.inf, diff)",
            )
        ),
        False,
    ),
    Submission(
        "detector",
        "no case for zero spread: 0/0 raises ZeroDivisionError",
        _detector(
            _update_with(
                """        if spread > 0:
            z = diff / spread
        else:
            z = 0.0 if diff == 0 else math.copysign(math.inf, diff)
""",
                "        z = diff / spread\n",
            )
        ),
        False,
    ),
    Submission(
        "detector",
        "warm-up off by one (>= instead of >)",
        _detector(_update_with("self.seen > self.warmup", "self.seen >= self.warmup")),
        False,
    ),
    Submission(
        "detector",
        "both directions flagged (abs(z))",
        _detector(
            _update_with(
                'beyond = z > self.threshold if self.direction == "up" else z < -self.threshold',
                "beyond = abs(z) > self.threshold",
            )
        ),
        False,
    ),
    Submission(
        "detector",
        "anomalies update the baseline too",
        _detector(_update_with("        if not anomalous:\n", "        if True:\n")),
        False,
    ),
    Submission(
        "detector",
        "the baseline freezes after the warm-up (slow drift gets flagged)",
        _detector(
            _update_with("        if not anomalous:\n", "        if self.seen <= self.warmup:\n")
        ),
        False,
    ),
    Submission(
        "detector",
        "z against the baseline after this value",
        _detector(
            """
        diff = value - self.mean
        self.mean += self.alpha * diff
        self.var = (1 - self.alpha) * (self.var + self.alpha * diff * diff)
        spread = self.spread
        new_diff = value - self.mean
        if spread > 0:
            z = new_diff / spread
        else:
            z = 0.0 if new_diff == 0 else math.copysign(math.inf, new_diff)
        self.last_z = z
        beyond = z > self.threshold if self.direction == "up" else z < -self.threshold
        anomalous = self.seen > self.warmup and beyond
        if anomalous:
            self.mean -= self.alpha * diff
        return anomalous
"""
        ),
        False,
    ),
    Submission(
        "detector",
        "last_z is never stored",
        _detector(_update_with("        self.last_z = z\n", "")),
        False,
    ),
    Submission(
        "detector",
        "another variance update (var = (1-a)·var + a·diff²)",
        _detector(
            _update_with(
                "self.var = (1 - self.alpha) * (self.var + self.alpha * diff * diff)",
                "self.var = (1 - self.alpha) * self.var + self.alpha * diff * diff",
            )
        ),
        False,
    ),
    Submission(
        "detector",
        "the spread ignores min_spread",
        _detector(_update_with("self.spread\n", "math.sqrt(self.var)\n")),
        False,
    ),
    Submission(
        "detector",
        "returns None instead of False for a normal value",
        _detector(_update_with("        return anomalous\n", "        return anomalous or None\n")),
        False,
    ),
]

SUBMISSIONS = COLLECTOR + DETECTOR
