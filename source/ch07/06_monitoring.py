# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 6 — Monitoring and observability
#
# A DSPy program can fail in production without raising anything. The provider slows down at
# 3 a.m. A prompt change halves the share of right answers while every request still returns
# HTTP 200. Monitoring turns this into numbers you watch and alerts that wake the right person,
# once.
#
# **Objectives.** You will
#
# * record latency, errors, tokens, cost and quality of real predictions with DSPy callbacks,
#   correctly under concurrency (Task 1);
# * read them as statistics, business numbers and system health (CPU, memory);
# * detect anomalies against a baseline that adapts (Task 2), turned into one alert per incident;
# * read a dashboard of an incident you cause on purpose.
#
# **Prerequisites.** Exercise 3 (DSPy callbacks) helps; a little pandas.
#
# | Part | What you do | Time | Points |
# |---|---|---|---|
# | Start | read this, set up | 2 min | |
# | Task 1 | `MetricsCollector`: two callback hooks | 10 min | 3 |
# | Measure | run and read: statistics, business numbers, system health | 2 min | |
# | Task 2 | `AdaptiveDetector.update`: a baseline that adapts | 9 min | 3 |
# | Drill | run and read: faults, alerts, a dashboard | 2 min | |
# | **Core** | **reading included** | **25 min** | **6** |
#
# After each task run its **self-check**: ✅ means the hidden tests pass too. "Run All" stops at
# the first graded cell whose task is not done yet, with one line saying so.

# %%
import dspy_workbook as wb

lm = wb.setup()

# %%
import math
import time

import dspy
import pandas as pd
from IPython.display import display

from dspy_workbook import monitoring as wbm
from dspy_workbook.checks import ex6

# %% [markdown]
# ## What the classic starter gets wrong
#
# The seed's starter keeps a dict of lists and calls a `logger` that is never defined:
#
# | In the starter | Why it hurts | Here |
# |---|---|---|
# | Latency and accuracy are **made up** | The report describes a formula | Task 1 |
# | `defaultdict(list)` grows forever | A month-old server runs out of memory | a ring buffer |
# | Mean, median, stdev only | Users feel the tail: SLOs use p95/p99 | the report |
# | A fixed 5-second threshold | Too loose for 50 ms, too tight for a slow model | Task 2 |
# | A warning per slow request | Hundreds a minute; nobody reads them | one alert per incident |

# %% [markdown]
# ## Task 1 — a metrics collector on DSPy callbacks
#
# DSPy calls a callback's `on_module_start(call_id, instance, inputs)` before every module call
# and `on_module_end(call_id, outputs, exception)` after it (`on_lm_start`/`on_lm_end` around LM
# calls), in the thread or asyncio task of the call. Registered with
# `dspy.context(callbacks=[collector])`, a collector measures real traffic.
#
# One **prediction** is one *top-level* module call: the `Predict` inside a `ChainOfThought` is
# part of it. Several predictions can be in flight at once, so the current one lives in a
# `ContextVar`, `self._current`: it has one value per thread and per asyncio task, where a plain
# attribute would be overwritten by whichever prediction started last. The given `on_lm_end`
# adds each LM call's tokens and cache hit to `self._current.get()`.
#
# `wbm.CollectorBase` (given) provides `self._current` (default `None`), `self._open` (a dict for
# your top-level call ids), `self.record(observation)`, `self.quality(inputs, prediction)` and
# `self.confidence(prediction)` (functions, or `None`), and `self.safely(fn, *args)`, which
# calls user code and gives `None` instead of an exception. Write two hooks:
#
# **`on_module_start`** — nested call (`self._current.get()` is set): do nothing. Top-level: make
# a `wbm.PredictionState(started=time.perf_counter(), inputs=…)`, set it in `self._current`
# (keep the token in `state.token`), and remember it in `self._open` under `call_id`. DSPy
# passes `inputs` as `{"args": (…), "kwargs": {…}}`: `wbm.named_inputs(instance, inputs)` gives
# them by name (`{"question": …}`), whether the caller wrote `program(question=q)` or
# `program(q)`.
#
# **`on_module_end`** — a `call_id` not in `self._open` is nested: do nothing. Otherwise take
# its state out of `self._open` (left in, the dict grows with every prediction: the leak from the
# table above), reset `self._current` with the token and `self.record(state.observation(...))` with
#
# * `latency`: seconds since `state.started` (`time.perf_counter()` is monotonic);
# * `error`: the exception's type name (`type(exception).__name__`), or `None`;
# * `quality`: `self.quality(state.inputs, outputs)`, and `confidence`: `self.confidence(outputs)`,
#   both through `self.safely` — and both `None` when the prediction failed.
#
# `state.observation` adds the tokens, LM calls, cache hit, model and cost. Stuck?
# `ex6.hint("collector")`.


# %% nbgrader={"solution": true, "grade_id": "collector"}
class MetricsCollector(wbm.CollectorBase):
    """One `wbm.Observation` per top-level prediction, kept in a bounded ring buffer."""

    def on_lm_end(self, call_id: str, outputs, exception=None) -> None:
        usage = self.end_lm_call(call_id, exception)  # this call's tokens, cache hit and model
        state = self._current.get()  # the prediction running in *this* thread or task
        if usage is not None and state is not None:
            state.add(usage)

    def on_module_start(self, call_id: str, instance, inputs: dict) -> None:
        """A top-level module call starts a prediction; a nested one is part of it."""
        ### BEGIN SOLUTION
        if self._current.get() is not None:
            return
        state = wbm.PredictionState(
            started=time.perf_counter(), inputs=wbm.named_inputs(instance, inputs)
        )
        state.token = self._current.set(state)
        self._open[call_id] = state
        ### END SOLUTION

    def on_module_end(self, call_id: str, outputs, exception=None) -> None:
        """The top-level call ended: record its observation."""
        ### BEGIN SOLUTION
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
        ### END SOLUTION


# %%
ex6.check_collector(MetricsCollector)

# %% nbgrader={"grade": true, "grade_id": "test_collector", "points": 3}
# Visible tests: your hooks called directly, then one prediction through DSPy.
from dspy_workbook.checks.ex6 import stop_if_unfinished as _unfinished
from dspy_workbook.lm import sim_lm as _sim_lm
from dspy_workbook.monitoring import LabelledQuality as _Quality

_probe = MetricsCollector()
with _unfinished("Task 1", "`MetricsCollector.on_module_start` or `on_module_end`"):
    _probe.on_module_start("probe", dspy.Predict("q -> a"), {"args": (), "kwargs": {"q": "?"}})
    _probe.on_module_end("probe", dspy.Prediction(a="!"), None)
_c = MetricsCollector(quality=_Quality([("What is 2+2?", "4")]))
_lm = _sim_lm(latency=0.01, answers={"2+2": "4"}, cache=False)
with dspy.context(lm=_lm, callbacks=[_c], adapter=dspy.JSONAdapter()):
    dspy.Predict("question -> answer")(question="What is 2+2?")
assert len(_c.observations) == 1, f"one prediction gave {len(_c.observations)} observations"
_o = _c.observations[0]
assert _o.latency >= 0.01, f"latency {_o.latency!r} s for a call that waits 0.01 s"
assert _o.quality == 1.0, f"quality {_o.quality!r} for a right answer"
### BEGIN HIDDEN TESTS
import asyncio as _asyncio
import time as _time

from dspy_workbook.monitoring import Observation as _Obs
from dspy_workbook.threads import run_async as _run_async

assert type(_o) is _Obs, f"`record` was given a {type(_o).__name__}, not a `wbm.Observation`"
assert _o.error is None and _o.lm_calls == 1, (
    f"a successful prediction was recorded with error={_o.error!r}, lm_calls={_o.lm_calls}"
)
_left = len(getattr(_c, "_open", {}))
assert _left == 0, f"after one finished prediction `self._open` still holds {_left} state(s)"
_seen: list = []


def _quality(inputs, prediction):
    _seen.append(inputs)
    return 0.0 if prediction is None else 1.0


_c = MetricsCollector(quality=_quality, confidence=lambda prediction: 0.25)
_fresh = f"hidden {_time.time_ns()}"
with dspy.context(lm=_sim_lm(latency=0.0, cache=False), callbacks=[_c]):
    dspy.ChainOfThought("question -> answer")(question=_fresh)
    dspy.Predict("question -> answer")(question=_fresh)
assert len(_c.observations) == 2, (
    f"a ChainOfThought then a Predict gave {len(_c.observations)} observations; expected 2 "
    "(nested calls are part of their prediction; the ContextVar is reset after each)"
)
assert _seen == [{"question": _fresh}] * 2, f"`quality` was called with inputs {_seen!r}"
assert [o.confidence for o in _c.observations] == [0.25, 0.25], (
    f"confidence recorded {[o.confidence for o in _c.observations]}; the function says 0.25"
)


class _Reader(dspy.Module):
    def __init__(self):
        super().__init__()
        self.inner = dspy.Predict("question, context -> answer")

    def forward(self, question, context=""):
        return self.inner(question=question, context=context)


_seen.clear()
with dspy.context(lm=_sim_lm(latency=0.0, cache=False), callbacks=[_c]):
    _Reader()(_fresh, context="ctx")
assert _seen == [{"question": _fresh, "context": "ctx"}], (
    f"`program(question, context=…)` gave `quality` the inputs {_seen!r}"
)
_seen.clear()
_failing = _sim_lm(latency=0.0, error_rate=1.0, num_retries=0, cache=False)
_raised = None
with dspy.context(lm=_failing, callbacks=[_c]):
    try:
        dspy.Predict("question -> answer")(question="fails")
    except Exception as _exc:
        _raised = _exc
assert len(_c.observations) == 4, (
    f"a failing prediction added {len(_c.observations) - 3} observations; it is recorded too"
)
_last = _c.observations[-1]
assert _last.error == type(_raised).__name__, (
    f"a prediction that raised {type(_raised).__name__} was recorded as error={_last.error!r}"
)
assert _last.quality is None and _last.confidence is None and _seen == [], (
    f"a failed prediction got quality={_last.quality!r}, confidence={_last.confidence!r}"
)


def _bad_quality(inputs, prediction):
    raise ValueError("metric bug")


_s = MetricsCollector(quality=_bad_quality)
with dspy.context(lm=_sim_lm(latency=0.0, cache=False), callbacks=[_s]):
    dspy.Predict("question -> answer")(question=_fresh)
assert len(_s.observations) == 1 and _s.observations[0].quality is None, (
    f"a quality function that raises left {len(_s.observations)} observations"
)
_m = MetricsCollector()
_slow = _sim_lm(latency=0.2, jitter=0.0, cache=False)


async def _many():
    with dspy.context(lm=_slow, callbacks=[_m], adapter=dspy.JSONAdapter()):
        _p = dspy.Predict("question -> answer")
        await _asyncio.gather(*[_p.acall(question=f"c{_i} {_fresh}") for _i in range(6)])


_run_async(_many, timeout=20)
_calls = sorted(o.lm_calls for o in _m.observations)
assert _calls == [1] * 6, f"6 concurrent predictions recorded LM calls {_calls}"
_lat = [round(o.latency, 3) for o in _m.observations]
assert all(0.2 <= x < 2.0 for x in _lat), f"6 concurrent 0.2 s predictions took {_lat} s"
### END HIDDEN TESTS

# %% [markdown]
# ## Measure real predictions
#
# Twenty labelled questions on the course model, then the first five again: DSPy's cache answers
# those (`wbm.fresh_cache()` starts it empty, so a re-run measures the model again), while
# `wbm.SystemSampler` samples this process and the machine in a background thread.
# Quality comes from the workbook's labelled set: `wbm.LabelledQuality()` scores 1 when the gold
# answer appears in the prediction.

# %% tags=["nbval-ignore-output"]
pairs = wbm.labelled_pairs()
questions = [q for q, _ in pairs[:20]] + [q for q, _ in pairs[:5]]
qa = dspy.Predict("question -> answer")
collector = MetricsCollector(quality=wbm.LabelledQuality())
with wbm.SystemSampler(interval=0.2) as sampler, wbm.fresh_cache():  # an empty cache: see text
    with dspy.context(callbacks=[collector]):
        wbm.run_workload(qa, questions)  # a progress bar in JupyterLab
display(wbm.metric_stats(collector.observations).round(3))
display(pd.Series(wbm.business_metrics(collector.observations), name="business").to_frame())
health = sampler.frame()[["cpu_percent", "system_cpu_percent", "rss_mb", "threads"]]
display(health.describe().loc[["mean", "max"]].round(1))

# %% [markdown]
# How to read it:
#
# * **Statistics.** Users feel the tail, so service levels say "p95 under 800 ms", not a mean.
#   Percentiles need many samples: with 25 requests the p95 and p99 are simply the slowest few.
#   The five repeats were cache hits: no tokens, about a millisecond (the `min`).
# * **Business numbers.** `cache_hit_rate` is 5 of 25. The local model is free (`total_cost` 0;
#   a hosted model missing from `wbm.PRICES` has an unknown cost, never 0); on a priced
#   provider `cost_saved_by_cache` is the hits times what a paid answer costs.
#   Quality on SmolLM2-135M is **low**: a real measurement, not a bug. Monitoring watches
#   *changes*, and a baseline of 0.2 can drop just like one of 0.9.
# * **System health.** The process's CPU (100 % is one core) while the model generates, its
#   memory (the model is inside it) and its threads. A thread or memory count that only grows is
#   a leak, long before it is an outage.

# %% [markdown]
# ## Task 2 — anomaly detection that adapts
#
# A fixed threshold is too loose for a 50 ms service and too tight for a slow model. You want
# "unusual *for this system*": a **baseline** learned from recent traffic, and an alarm when a
# value is far from it.
#
# An **exponentially weighted moving average** (EWMA) keeps that baseline in constant memory.
# Each value moves the mean a fraction α of the way towards itself, and the variance the same way:
#
# ```
# diff = x - mean
# mean = mean + α·diff
# var  = (1 - α)·(var + α·diff²)
# ```
#
# The **z-score** `diff / spread` says how many usual deviations away x is, with
# `spread = max(sqrt(var), min_spread)` (given: `self.spread`). The floor `min_spread` keeps a
# very steady series from turning a millisecond of noise into an alarm. When the spread is 0 (a
# constant series and `min_spread=0`), z is 0 for a value equal to the mean, and +∞ or −∞ (the
# sign of diff) for any other.
#
# The given start of `update` raises `ValueError` for `nan`/`inf`, counts the value in
# `self.seen`, and lets the first value only set `self.mean`. Write the rest:
#
# 1. Compute z against the baseline *before* this value, and store it in `self.last_z`.
# 2. The value is anomalous when more than `self.warmup` values were seen (counting this one) and
#    `z > threshold` for `direction="up"` (latency spikes), or `z < -threshold` for `"down"`
#    (quality drops).
# 3. Update `mean` and `var` **only if the value was not anomalous**: an incident must not teach
#    the baseline that slow is normal. Slow drift is still learned, one normal value at a time.
# 4. Return `True` or `False`.
#
# Stuck? `ex6.hint("detector")`.


# %% nbgrader={"solution": true, "grade_id": "detector"}
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
        ### BEGIN SOLUTION
        diff, spread = value - self.mean, self.spread
        if spread > 0:
            z = diff / spread
        else:  # a flat series: no change is no news, any change is infinitely surprising
            z = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        self.last_z = z
        beyond = z > self.threshold if self.direction == "up" else z < -self.threshold
        anomalous = self.seen > self.warmup and beyond
        if not anomalous:
            self.mean += self.alpha * diff
            self.var = (1 - self.alpha) * (self.var + self.alpha * diff * diff)
        return anomalous
        ### END SOLUTION


# %%
ex6.check_detector(AdaptiveDetector)

# %% nbgrader={"grade": true, "grade_id": "test_detector", "points": 3}
# Visible tests: normal jitter passes, a spike is flagged.
from dspy_workbook.checks.ex6 import stop_if_unfinished as _unfinished

_d = AdaptiveDetector(alpha=0.1, threshold=4.0, warmup=5)
_normal = [0.100, 0.104, 0.098, 0.101, 0.097, 0.103, 0.099, 0.102, 0.100, 0.098] * 3
with _unfinished("Task 2", "`AdaptiveDetector.update`"):
    _flags = [_d.update(_v) for _v in _normal]
assert not any(_flags), f"normal jitter was flagged at {[i for i, f in enumerate(_flags) if f]}"
_r = _d.update(0.5)
assert _r is True, f"a 500 ms value after 100 ± 4 ms: `update` returned {_r!r}"
### BEGIN HIDDEN TESTS
import math as _math

assert _d.last_z > 4, f"after the spike `last_z` is {_d.last_z!r}"
_mean, _var = _d.mean, _d.var
_r = _d.update(0.6)
assert _r is True, f"a second spike (0.6): `update` returned {_r!r}"
assert (_d.mean, _d.var) == (_mean, _var), (
    f"an anomaly moved the baseline: mean {_mean} → {_d.mean}, var {_var} → {_d.var}"
)
_r = _d.update(0.101)
assert _r is False, f"a normal value (0.101) after the incident: `update` returned {_r!r}"
_w1 = AdaptiveDetector(warmup=6, min_spread=0.1)
_w = [_w1.update(_v) for _v in [1.0] * 5 + [100.0]]
assert _w == [False] * 6, f"warmup=6: five 1.0 then 100.0 gave {_w}"
_w2 = AdaptiveDetector(warmup=6, min_spread=0.1)
_w = [_w2.update(_v) for _v in [1.0] * 6 + [100.0]]
assert _w == [False] * 6 + [True], f"warmup=6: six 1.0 then 100.0 gave {_w}"
_q = AdaptiveDetector(direction="down", warmup=3, min_spread=0.05)
_v = [_q.update(_x) for _x in [0.8, 0.82, 0.79, 0.81, 0.8, 0.8, 0.95]]
assert _v == [False] * 7, f"direction='down': a rise to 0.95 gave {_v}"
assert _q.update(0.3) is True and _q.last_z < -4, f"a drop: last_z {_q.last_z!r}"
_u = AdaptiveDetector(warmup=3, min_spread=0.05)
_v = [_u.update(_x) for _x in [0.8, 0.82, 0.79, 0.81, 0.3]]
assert _v == [False] * 5, f"direction='up' flagged a drop: {_v}"
_a = AdaptiveDetector(alpha=0.25, warmup=0, min_spread=4.0)
_a.update(2.0)
_a.update(6.0)
assert max(abs(_a.last_z - 1.0), abs(_a.mean - 3.0), abs(_a.var - 3.0)) < 1e-9, (
    f"alpha=0.25, min_spread=4, values 2 then 6: last_z {_a.last_z}, mean {_a.mean}, var {_a.var}"
)
_f = AdaptiveDetector(warmup=0, direction="down")
_v = [_f.update(_x) for _x in (5.0, 5.0, 5.0)]
assert _v == [False] * 3 and _f.last_z == 0.0, f"spread 0, no change: {_v}, last_z {_f.last_z!r}"
assert _f.update(4.0) is True and _f.last_z == -_math.inf, (
    f"spread 0, a drop: last_z {_f.last_z!r} (expected -inf)"
)
_drift = AdaptiveDetector(alpha=0.2, warmup=5, min_spread=0.001)
_v = [_drift.update(1.0 + 0.002 * _i) for _i in range(200)]
assert not any(_v), f"slow drift was flagged at {[i for i, x in enumerate(_v) if x][:5]}"
### END HIDDEN TESTS

# %% [markdown]
# ## Incident drill: alerts and a dashboard
#
# Now break a provider on purpose. `wbm.scenario_lm()` is the simulated provider, answering
# about 80 % of the labelled questions right, with faults you switch on: requests 0–49 are
# normal (20 ms ± 5 ms), from 50 it is 150 ms slower, from 80 it is fast again but a bad deploy
# makes every answer wrong, and from 120 all is well.
#
# Two of your detectors watch: latency per request, and quality per **batch of 10 answers**
# (`wbm.BatchMeans`): a single right-or-wrong answer is far too noisy.
#
# A detector says "this value is odd"; an **alert** says "someone should look". The given
# `wbm.AlertManager` fires after `pending` anomalous verdicts in a row, sends **one** alert per
# incident (more anomalies only raise its `count`), resolves it after `clear_after` normal ones,
# and carries a severity. A `wbm.AlertDispatcher` queues alerts and delivers them from its own
# thread to sinks (a log, a callback, a webhook), so a slow pager never slows a prediction. The
# managers' clock counts requests here, so alert times read as request numbers.


# %% tags=["nbval-ignore-output"]
def inject(i: int, engine) -> None:
    """The fault schedule: slow from 50, wrong answers from 80, healthy again from 120."""
    engine.faults.clear()
    engine.faults.extra_latency = 0.15 if 50 <= i < 80 else 0.0
    engine.faults.degraded = 80 <= i < 120


def run_drill(dispatcher: wbm.AlertDispatcher) -> MetricsCollector:
    """150 requests with faults: collector → two detectors → two alert managers → dispatcher."""

    def request_number() -> int:  # the managers' clock: `record` counts, then tells listeners
        return drill.totals["predictions"] - 1

    latency_alerts = wbm.AlertManager(dispatcher, pending=3, clear_after=5, clock=request_number)
    quality_alerts = wbm.AlertManager(dispatcher, pending=1, clear_after=2, clock=request_number)
    latency = AdaptiveDetector(threshold=4.0, warmup=20, min_spread=0.01)
    quality = AdaptiveDetector(alpha=0.2, threshold=4.0, warmup=3, direction="down", min_spread=0.1)
    batches = wbm.BatchMeans(10)

    def to_alerts(obs: wbm.Observation) -> None:
        latency_alerts.evaluate("latency_spike", latency.update(obs.latency), value=obs.latency)
        batch = batches.add(obs.quality)
        if batch is not None:
            verdict = quality.update(batch)
            quality_alerts.evaluate("quality_drop", verdict, severity="critical", value=batch)

    scenario = wbm.scenario_lm(latency=0.02, jitter=0.005)
    drill = MetricsCollector(quality=wbm.LabelledQuality(), listeners=[to_alerts])
    with dspy.context(lm=scenario, callbacks=[drill], adapter=dspy.JSONAdapter()):
        wbm.run_workload(
            qa, wbm.workload_questions(150), before=lambda i: inject(i, scenario.engine)
        )
    return drill


received: list[dict] = []
dispatcher = wbm.AlertDispatcher([wbm.CallbackSink(received.append)])
with wbm.SystemSampler(interval=0.1) as drill_sampler:
    drill = run_drill(dispatcher)
dispatcher.close()  # deliver what is queued, then stop the delivery thread
for a in received:
    at = a["resolved_at"] if a["status"] == "resolved" else a["started_at"]
    print(f"{a['rule']:14} {a['status']:9} {a['severity']:8} request {at:3}  count {a['count']}")

# %% [markdown]
# Four messages for two incidents. The latency detector flagged request 50 itself: 170 ms is
# about 15 spreads above a 20 ms baseline (with `min_spread=0.01` and threshold 4, anything
# within 4 × 10 ms = 40 ms of the baseline is ordinary, so scheduling hiccups do not count). The
# alert opened two requests later, after `pending=3` confirmations, and resolved five normal
# requests after the slowdown ended. Without de-duplication the slowdown alone would have sent
# 30 messages. Quality was noticed at the end of the first bad batch, up to 10 requests late:
# the price of a noisy signal. No alert opened before request 50: the jitter is part of the
# baseline, and `pending=3` keeps a lone hiccup of a busy machine from paging anyone.
#
# The dashboard of the same run: each panel answers one question on call. *Is it slow*
# (latency, rolling median and p5–p95 band)? *Is it failing* (error and cache-hit rates)? *Is it
# wrong* (quality)? *Is it us* (this process's and machine's CPU and memory, over time)? Latency
# that jumps while CPU and memory do not points at the provider.

# %% tags=["nbval-ignore-output"]
marks = [(50, "slowdown"), (80, "bad deploy"), (120, "fixed")]
display(wbm.dashboard_figure(drill.observations, drill_sampler.frame(), marks=marks))

# %% [markdown]
# ## Going further (optional, ungraded)
#
# Nothing below is graded, and the notebook runs to its end without it. Each part is what teams
# add once the basics work.
#
# ### Alerts over HTTP, and a pager that is slow
#
# The same drill, with its alerts sent as JSON to a webhook on 127.0.0.1 (standing in for Slack
# or a pager) that takes 0.3 s per alert. The predictions do not wait for it: sending only
# queues, and `close()` then waits for the deliveries. About 10 s.

# %% tags=["nbval-ignore-output"]
try:
    pager = wbm.WebhookReceiver(delay=0.3)
except OSError as exc:  # no loopback network here (e.g. a sandbox): skip this part
    print(f"(skipped: no local webhook receiver here — {exc})")
else:
    with pager:
        dispatcher = wbm.AlertDispatcher([wbm.WebhookSink(pager.url, timeout=2.0)])
        started = time.perf_counter()
        run_drill(dispatcher)
        print(f"150 predictions took {time.perf_counter() - started:.1f} s")
        dispatcher.close()
        print(f"then the webhook received {len(pager.received)} alerts:")
        for a in pager.received:
            print(f"  {a['rule']:14} {a['status']:9} severity={a['severity']}")

# %% [markdown]
# `wbm.LogSink()` writes alerts to Python's `logging` (in a notebook: to stderr), the usual first
# sink in a service. Read the given parts the core used with `??` (e.g. `wbm.AlertManager??`,
# `wbm.metric_stats??`, `wbm.business_metrics??`): each is short, and writing your own variant
# — an alert that needs 3 of the last 5 verdicts, a p99.9 row — is good practice.
#
# ### Three failures a review found, and the rules they teach
#
# * **Start threads on first use, end them when idle.** An object that starts a thread in
#   `__init__` leaks one every time its cell is re-run: the dispatcher now starts a sink's thread
#   on its first alert and lets it end when idle, so 200 re-created dispatchers leave none.
# * **Bound the whole delivery, not each read.** A socket timeout bounds one read: a receiver
#   trickling a byte a second kept `timeout=2` busy for 16 s. Each delivery now has a deadline, and
#   each sink its own queue, so a slow pager cannot delay the log.
# * **Validate before you count.** Counters and histogram sums only grow, so one NaN poisons them
#   for the life of the process and a negative latency looks like a reset. The Prometheus
#   exporter checks an observation once before touching any metric, counts rejections, and counts
#   an unknown price as unknown (`dspy_cost_unknown_total`), never as NaN.
# * **Order by a monotonic clock.** The wall clock can step back (NTP, a laptop waking up):
#   observations carry a monotonic `clock` for ordering and keep wall time for display.

# ### Time windows: "how are we doing right now?"
#
# A table over the whole run hides *when* things changed. Indexed by time, pandas computes
# windows by duration (`"2s"`, `"5min"`), as dashboards and alerting rules do. The frame's time
# index follows a monotonic clock (`Observation.clock`), anchored at the wall time (`at`), so a
# wall clock that steps back (NTP, suspend and resume) cannot break the window.

# %% tags=["nbval-ignore-output"]
frame = wbm.observations_frame(drill.observations)
rolling = pd.DataFrame(
    {
        "latency_ms_median": (frame["latency"] * 1000).rolling("1s").median(),
        "quality_mean": frame["quality"].astype(float).rolling("1s").mean(),
        "requests_in_window": frame["latency"].rolling("1s").count(),
    }
)
display(rolling.iloc[[40, 60, 100, 140]].round(3))

# %% [markdown]
# ### Memory stays bounded
#
# `observations` is a `deque(maxlen=capacity)`: when it is full, the oldest entry goes as a new
# one arrives, while `totals` (running counts) never forget. Percentiles over all time come from
# Prometheus's histograms (below), which keep fixed-size bucket counters.

# %%
small = MetricsCollector(capacity=50)
with dspy.context(lm=wb.sim_lm(latency=0.0), callbacks=[small]):
    for i in range(200):  # simulated and instant: no progress bar needed
        dspy.Predict("question -> answer")(question=f"load test {i}")
print(f"kept {len(small.observations)} of {small.totals['predictions']} predictions")

# %% [markdown]
# ### What a run costs
#
# The course model is free, so price a run on the scenario provider (priced like gpt-4o-mini,
# `wbm.PRICES`), with DSPy's cache on and traffic in which popular questions come back, as real
# traffic does. The program also reports a `confidence`, so the confident share is filled in.

# %% tags=["nbval-ignore-output"]
priced = MetricsCollector(quality=wbm.LabelledQuality())
confident_qa = dspy.Predict("question -> answer, confidence: float")
popular = [pairs[i % 7][0] for i in range(30)]  # 7 distinct questions, asked 30 times
cached = wbm.scenario_lm(latency=0.01, jitter=0.0, cache=True)
with dspy.context(lm=cached, callbacks=[priced], adapter=dspy.JSONAdapter()):
    wbm.run_workload(confident_qa, popular)
display(pd.Series(wbm.business_metrics(priced.observations), name="business").to_frame())

# %% [markdown]
# Seven questions were paid for and 23 came from the cache: a fraction of a cent at these prices.
# At a million requests a day the same hit rate is real money, and a *drop* in hit rate (a
# deploy that changed the prompt, and so every cache key) is a bill worth an alert.
#
# ### A live view while a workload runs
#
# `wbm.LiveView` is an ipywidgets panel. As a collector listener it refreshes every few
# predictions with the latest median, p95, errors and quality, and a small chart. About 10 s.

# %% tags=["nbval-ignore-output", "no-script"]
live = wbm.LiveView(every=5, window=30)
display(live)
scenario = wbm.scenario_lm(latency=0.03, jitter=0.01)
live_collector = MetricsCollector(quality=wbm.LabelledQuality(), listeners=[live.update])
with dspy.context(lm=scenario, callbacks=[live_collector], adapter=dspy.JSONAdapter()):
    wbm.run_workload(
        qa, wbm.workload_questions(90), before=lambda i: inject(i + 20, scenario.engine)
    )
live.refresh()

# %% [markdown]
# ### Long-term storage: files now, a time-series database later
#
# For a report or an offline analysis, export. Parquet keeps the types and compresses well; CSV
# opens anywhere.

# %%
from dspy_workbook.paths import workbook_dir

export_dir = workbook_dir("ex6")
exported = wbm.observations_frame(drill.observations)
exported.to_parquet(export_dir / "observations.parquet")
exported.to_csv(export_dir / "observations.csv")
back = pd.read_parquet(export_dir / "observations.parquet")
print(f"{len(back)} rows round-tripped through Parquet; columns: {', '.join(back.columns[:6])}, …")

# %% [markdown]
# Files stop being enough when several processes (uvicorn workers, machines) must be aggregated,
# when you want months of history at a fixed cost, and when alerts must be evaluated even if
# your process is the thing that died. That is the job of a **time-series database**.
# **Prometheus** scrapes each process's `/metrics` every few seconds, keeps 15 days by default
# (`--storage.tsdb.retention.time`) and evaluates alerting rules itself; for longer or global
# storage it forwards samples with **remote write** (Thanos, Mimir, VictoriaMetrics). Counters
# and histograms are made for this: a fixed number of series, whatever the traffic.
#
# ### Prometheus: exposition, a real server, PromQL
#
# `wbm.PrometheusMetrics` turns observations into Prometheus counters and histograms in **its own
# registry**. prometheus-client's global registry raises "Duplicated timeseries" when a cell that
# defines metrics runs twice: run this cell twice and see that it doesn't here.

# %%
prom = wbm.PrometheusMetrics()
for obs in drill.observations:
    prom.observe(obs)
prom.observe_system(wbm.sample_system())
print(
    "\n".join(
        line
        for line in prom.text().splitlines()
        if line.startswith(("dspy_predictions_total", "dspy_prediction_latency_seconds_count"))
    )
)

# %% [markdown]
# If Debian's `prometheus` package is installed (`apt-get install prometheus`) and the project's
# `monitoring/` folder is here, the next cell starts a real Prometheus on 127.0.0.1 (about 10 s).
# It scrapes a `/metrics` endpoint served from this kernel every second and asks it, in PromQL,
# how many predictions it has seen and their p95 latency. Without `rate()` that p95 comes from
# the bucket counters as they stand, so it covers everything *since the process started*; a
# dashboard asks for the last five minutes with
# `histogram_quantile(0.95, sum by (le) (rate(dspy_prediction_latency_seconds_bucket[5m])))`.
# The rules in `monitoring/alerts.yml` express Task 2's anomalies in PromQL and are unit-tested
# with `promtool test rules monitoring/alerts_test.yml`.

# %% tags=["nbval-ignore-output"]
import shutil

if not shutil.which("prometheus"):
    print("(skipped: prometheus is not installed here — apt-get install -y prometheus)")
elif not (wbm.CONFIG_DIR / "prometheus.yml").is_file():
    print(f"(skipped: the project's monitoring/ folder is not here: {wbm.CONFIG_DIR})")
else:
    try:
        with (
            prom.serve() as endpoint,
            wbm.PrometheusServer([endpoint.target], scrape_interval="1s") as server,
        ):
            count = server.wait_for("sum(dspy_predictions_total)", lambda v: v > 0, timeout=30)
            p95 = server.value(
                "histogram_quantile(0.95, sum by (le) (dspy_prediction_latency_seconds_bucket))"
            )
            rules = server.api("rules")["groups"][0]["rules"]
        print(f"Prometheus saw {count:.0f} predictions; p95 since start ≈ {p95 * 1000:.0f} ms")
        print("alerting rules loaded:", [r["name"] for r in rules])
    except (OSError, RuntimeError, TimeoutError) as exc:  # e.g. no loopback network here
        print(f"(skipped: Prometheus could not run here — {type(exc).__name__}: {exc})")

# %% [markdown]
# `monitoring/grafana-dashboard.json` is a Grafana dashboard over the same metrics: request rate,
# error rate, p50/p95/p99 latency, quality, cost and cache hits, plus process memory and CPU.
# Import it in Grafana (Dashboards → Import) with a Prometheus data source.
#
# In production the scrape target is the service itself. Exercise 5's FastAPI app exposes its
# own `/metrics`; add `PrometheusMetrics` as a collector listener inside such a service, and the
# quality, cost and cache series join its request metrics on the same page.
#
# ### OpenTelemetry and MLflow
#
# **OpenTelemetry** is the vendor-neutral standard for traces, metrics and logs.
# `wbm.OpenTelemetrySpans` is a callback like Task 1's: it opens a span in each `on_*_start` and
# ends it in `on_*_end`, nested under its caller, with the model and tokens as `gen_ai.*`
# attributes. Here the spans go to an in-memory exporter; an OTLP exporter would ship the same
# spans to Jaeger, Tempo, Honeycomb or Datadog.

# %%
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

span_exporter = InMemorySpanExporter()
otel = wbm.OpenTelemetrySpans(span_exporter)
with dspy.context(lm=wbm.scenario_lm(latency=0.0), callbacks=[otel], adapter=dspy.JSONAdapter()):
    dspy.ChainOfThought("question -> answer")(question="What is the capital of France?")
by_id = {span.context.span_id: span for span in span_exporter.get_finished_spans()}
for span in sorted(by_id.values(), key=lambda sp: sp.start_time):
    depth, parent = 0, span.parent
    while parent is not None:
        depth, parent = depth + 1, by_id[parent.span_id].parent
    tokens = span.attributes.get("gen_ai.usage.input_tokens")
    print("  " * depth + span.name + (f"  (input tokens: {tokens})" if tokens else ""))
otel.shutdown()

# %% [markdown]
# Each `format JSONAdapter` span has a twin inside it: DSPy wraps an adapter's `format` for
# callbacks once per class, and `JSONAdapter.format` is `ChatAdapter`'s, so one call reports twice.
#
# **MLflow** offers `mlflow.dspy.autolog()`, a callback-based tracer that many DSPy users run. It
# records every module and LM call as a trace in the MLflow UI, and is a good default for
# *debugging* traces. The alerting, cost and quality monitoring you built here is the part it
# leaves to you.

# %% [markdown]
# ## Check everything
#
# `ex6.check_all()` runs every self-check again, on your current definitions.

# %%
ex6.check_all()

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
#    `ch07`; working on your own machine (`make lab`), upload the saved `06_monitoring.ipynb` where your
#    instructor asked.
#
# ## Questionnaire
#
# 1. Why is `lm.history[-1]` the wrong place to read a call's usage from a callback, and what
#    does a `ContextVar` give you instead?
# 2. With 25 requests, what does "p99 latency" really tell you? How many would you want?
# 3. Why should an anomalous value not update the baseline? What goes wrong if it does?
# 4. The quality alert fired several requests after the bad deploy, the latency alert after a
#    few. Why, and what would make quality detection faster?
# 5. Name two ways a monitoring system can hurt the service it watches, and how this notebook
#    avoids each.
# 6. When do files stop being enough, and a time-series database takes over?
#
# ## Further research
#
# * Google SRE book, chapter 6 "Monitoring Distributed Systems" (the four golden signals) and
#   the SRE workbook's "Alerting on SLOs" (multi-window burn-rate alerts).
# * Prometheus docs: histograms and summaries, `histogram_quantile`, recording rules, `for:`.
# * Roberts (1959) and Lucas & Saccucci (1990) on EWMA control charts; Page's CUSUM for small,
#   persistent shifts.
# * OpenTelemetry's semantic conventions for generative AI (`gen_ai.*` span attributes).
# * MLflow Tracing for DSPy (`mlflow.dspy.autolog`).
