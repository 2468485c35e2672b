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
# A DSPy program that works on your laptop can still fail in production, and it fails in ways
# an exception does not tell you. The provider slows down at 3 a.m. A prompt change halves the
# share of right answers, yet every request still returns HTTP 200. The cache stops hitting and
# the bill doubles. Monitoring turns these into numbers you can watch, statistics you can trust,
# and alerts that wake the right person exactly once.
#
# **Objectives.** By the end you can
#
# * record metrics from *real* predictions with DSPy callbacks, safely under concurrency;
# * summarise them (count, mean, median, p95/p99, spread) and turn them into business numbers
#   (cost per answer, money saved by the cache, share of confident answers);
# * detect anomalies against a baseline that adapts, instead of a fixed threshold;
# * raise alerts with severity and de-duplication, delivered without slowing predictions;
# * draw a dashboard, export the data, and (going further) hand it all to Prometheus and Grafana.
#
# **Prerequisites.** Exercise 3 (DSPy callbacks, `ACTIVE_CALL_ID`) and a little pandas. The
# Prometheus part at the end uses Debian's `prometheus` package if it is installed.
#
# | Task | You write | Time | Points |
# |---|---|---|---|
# | 1 | `MetricsCollector` — a callback that records every prediction | 10 min | 3 |
# | 2 | `metric_stats` — the statistics table | 6 min | 2 |
# | 3 | `business_metrics` — cost, savings, confident answers | 6 min | 2 |
# | 4 | `AdaptiveDetector` — a baseline that learns what normal looks like | 8 min | 3 |
# | 5 | `AlertManager.evaluate` — one alert per incident, resolved when it ends | 8 min | 2 |
# | extra | live view, export, Prometheus, Grafana (optional, ungraded) | 20+ min | – |
#
# The core path is about 40 minutes. After each task run its **self-check** cell: ✅ on every
# self-check means the hidden tests pass for a correct solution. `ex6.hint("collector")` (or the
# task's key) reveals one hint at a time.

# %%
import dspy_workbook as wb

lm = wb.setup()

# %%
import json
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar

import dspy
import numpy as np
import pandas as pd
from dspy.utils.callback import BaseCallback
from IPython.display import display

from dspy_workbook import monitoring as wbm
from dspy_workbook.checks import ex6
from dspy_workbook.data import answer_match, labelled_questions
from dspy_workbook.paths import workbook_dir
from dspy_workbook.stats import summarize_latencies

# %% [markdown]
# ## What the classic starter gets wrong
#
# The usual first attempt at monitoring is a `MetricsCollector` with a dict of lists, a loop that
# records `latency = 0.5 + (i % 10) * 0.1`, and an `alert_on_anomaly(latency, threshold=5.0)` that
# calls `logger.warning`. Each part of it teaches a habit you should not keep:
#
# | In the starter | Why it hurts | Here |
# |---|---|---|
# | Latency and accuracy are **made up** | The report describes a formula, not a system | Task 1 |
# | `logger` is never defined | The first anomaly crashes the program it watches | Task 5's sinks |
# | `defaultdict(list)` grows forever | A month-old server runs out of memory | A ring buffer |
# | A fixed 5-second threshold | Too loose for 50 ms, too tight for a slow model | Task 4 |
# | One warning per slow request | Hundreds of messages a minute; nobody reads them | Task 5 |
# | Mean, median, stdev only | Users feel the tail: p95/p99 are what SLOs are written in | Task 2 |
# | Only technical metrics | Nobody knows what an answer costs, or if the cache pays | Task 3 |
#
# **A word on quality.** To score answers you need the right answers, so this notebook uses the
# workbook's labelled question set (`dspy_workbook.data.labelled_questions()`, 40 short factual
# questions with gold answers and aliases) and its metric `answer_match` (the gold answer appears
# as whole words in the prediction). On the default local model,
# SmolLM2-135M, quality is **low**: a 135-million-parameter model gets few of these right.
# That is a real measurement, not a bug. Monitoring is about *changes* in quality, and a
# baseline of 0.2 can drop just like a baseline of 0.9.

# %%
pairs = wbm.labelled_pairs()
print(f"{len(pairs)} labelled questions, e.g.:")
for question, answer in pairs[:3]:
    print(f"  {question!r} -> {answer!r}")
example = labelled_questions()[0]
print(
    "answer_match:",
    answer_match(example, dspy.Prediction(answer="The capital is Paris.")),
    answer_match(example, dspy.Prediction(answer="Lyon")),
)

# %% [markdown]
# ## Task 1 — a metrics collector fed by DSPy callbacks
#
# DSPy calls a **callback** at the start and the end of every module call and every LM call
# (Exercise 3). A collector built on callbacks measures real traffic without touching your
# program: register it once with `dspy.configure(callbacks=[collector])` or
# `dspy.context(callbacks=[collector])`.
#
# One *prediction* is one **top-level** module call. A `ChainOfThought` calls a `Predict`
# inside it, and that inner call is part of the same prediction, not a second one. The LM calls
# made during a prediction add up to its tokens.
#
# **Why a `ContextVar`.** Under concurrency (threads, `asyncio.gather`), several predictions are
# in flight at once. A field like `self.current` would be overwritten by whichever started last.
# Reading `lm.history[-1]` in `on_lm_end` is just as racy: the last entry may be another call's.
# A `ContextVar` has one value *per thread and per asyncio task*. DSPy runs a call's start
# callback, the call itself and its end callback in the same context, so
#
# * `on_module_start` of a top-level call sets `self._current` to a new `wbm.PredictionState`
#   (given: start time, inputs, and counters for LM calls, hits and tokens). A
#   nested module sees that `self._current.get()` is already set, and does nothing.
# * `on_lm_end` adds the LM call's usage to `self._current.get()`, which is the prediction that
#   made the call.
# * `on_module_end` of that top-level call resets the variable (`self._current.reset(token)`),
#   builds a `wbm.Observation`, and hands it to `self.record(...)` (given: it stores it in a
#   bounded ring buffer and tells the listeners).
#
# Usage per LM call comes from `wbm.CallUsage` (given). It captures *that* call's tokens without
# reading the history, and says whether DSPy's cache answered it. Read `state.model` to price
# the answer with `self.cost(...)` (given: `wbm.answer_cost`, or NaN for a model missing from
# the price table).
#
# Write `on_module_start`, `on_lm_end` and `on_module_end`:
#
# * **latency**: `time.perf_counter()` at start and at end. It is monotonic, unlike `time.time()`,
#   which can jump when the clock is adjusted.
# * **error**: the exception's type name (`type(exception).__name__`) or `None`.
# * **cache_hit**: the prediction made at least one LM call and every one of them was a hit.
# * **quality**: `self.quality(state.inputs, outputs)` when a quality function was given and the
#   call succeeded, else `None`. The same goes for **confidence** with `self.confidence(outputs)`.
#   Both are user code, so call them through `self.safely(...)` (given), which turns an exception
#   into `None` instead of losing the observation.
# * **at**: `time.time()` when the prediction finished (wall clock, for charts and exports).


# %% nbgrader={"solution": true, "grade_id": "collector"}
class MetricsCollector(BaseCallback):
    """One `wbm.Observation` per top-level prediction, in a ring buffer of `capacity` entries."""

    def __init__(
        self,
        capacity: int = 1000,
        *,
        quality: Callable | None = None,
        confidence: Callable | None = wbm.reported_confidence,
        listeners: Iterable[Callable] = (),
    ) -> None:
        if not (isinstance(capacity, int) and capacity > 0):
            raise ValueError(f"capacity is how many observations to keep (> 0), got {capacity!r}")
        self.observations: deque = deque(maxlen=capacity)  # memory bounded: oldest dropped first
        self.totals: Counter = Counter()  # running totals never forget
        self.quality, self.confidence = quality, confidence
        self.listeners = list(listeners)
        self._current: ContextVar[wbm.PredictionState | None] = ContextVar(
            f"prediction-{id(self)}", default=None
        )
        self._open: dict[str, wbm.PredictionState] = {}  # module call_id -> its prediction
        self._lm_calls: dict[str, tuple] = {}  # LM call_id -> (CallUsage, model)
        self._lock = threading.Lock()

    # -- given -----------------------------------------------------------------------------
    def record(self, observation: wbm.Observation) -> None:
        """Keep `observation` (bounded), update the totals, and tell every listener."""
        with self._lock:
            self.observations.append(observation)
            self.totals["predictions"] += 1
            self.totals["errors"] += observation.error is not None
            self.totals["cache_hits"] += observation.cache_hit
        for listener in self.listeners:
            self.safely(listener, observation)

    def safely(self, fn: Callable | None, *args):
        """`fn(*args)`, or None when fn is None or raises: monitoring never breaks a prediction."""
        if fn is None:
            return None
        try:
            return fn(*args)
        except Exception:
            self.totals["hook_errors"] += 1
            return None

    @staticmethod
    def cost(model: str, input_tokens: int, output_tokens: int) -> float:
        """Dollars for the tokens; NaN when the model is not in the price table."""
        return (
            wbm.answer_cost(model, input_tokens, output_tokens) if wbm.price_of(model) else math.nan
        )

    def on_lm_start(self, call_id: str, instance, inputs: dict) -> None:
        self._lm_calls[call_id] = (wbm.CallUsage.begin(), getattr(instance, "model", ""))

    # -- yours ---------------------------------------------------------------------------------
    def on_lm_end(self, call_id: str, outputs, exception: BaseException | None = None) -> None:
        """Add this LM call's usage to the prediction that made it."""
        entry = self._lm_calls.pop(call_id, None)
        if entry is None:
            return
        usage, model = entry
        usage.end(exception)
        ### BEGIN SOLUTION
        state = self._current.get()
        if state is None:  # an LM called directly, outside any module: not a prediction
            return
        state.lm_calls += 1
        state.hits += usage.cache_hit
        state.input_tokens += usage.input_tokens
        state.output_tokens += usage.output_tokens
        state.model = model
        ### END SOLUTION

    def on_module_start(self, call_id: str, instance, inputs: dict) -> None:
        """A top-level module call starts a prediction; nested ones are part of it."""
        ### BEGIN SOLUTION
        if self._current.get() is not None:
            return
        state = wbm.PredictionState(
            started=time.perf_counter(), inputs=dict(inputs.get("kwargs") or {})
        )
        state.token = self._current.set(state)
        self._open[call_id] = state
        ### END SOLUTION

    def on_module_end(self, call_id: str, outputs, exception: BaseException | None = None) -> None:
        """The top-level call ended: build the observation and `record` it."""
        ### BEGIN SOLUTION
        state = self._open.pop(call_id, None)
        if state is None:
            return
        self._current.reset(state.token)
        ok = exception is None
        self.record(
            wbm.Observation(
                at=time.time(),
                latency=time.perf_counter() - state.started,
                input_tokens=state.input_tokens,
                output_tokens=state.output_tokens,
                lm_calls=state.lm_calls,
                cache_hit=state.lm_calls > 0 and state.hits == state.lm_calls,
                error=None if ok else type(exception).__name__,
                quality=self.safely(self.quality, state.inputs, outputs) if ok else None,
                confidence=self.safely(self.confidence, outputs) if ok else None,
                cost=self.cost(state.model, state.input_tokens, state.output_tokens)
                if state.model
                else 0.0,
                model=state.model,
            )
        )
        ### END SOLUTION


# %%
ex6.check_collector(MetricsCollector)

# %% [markdown]
# Now measure real predictions on the course model. The program is `Predict("question -> answer")`.
# Twenty labelled questions are asked once, and then the first five are asked again. DSPy's cache
# answers those repeats, so they should show up as hits with no tokens and almost no latency.

# %% tags=["nbval-ignore-output"]
collector = MetricsCollector(quality=wbm.LabelledQuality())
qa = dspy.Predict("question -> answer")
questions = [q for q, _ in pairs[:20]] + [q for q, _ in pairs[:5]]
with dspy.context(callbacks=[collector]):
    wbm.run_workload(
        qa, questions
    )  # a progress bar in JupyterLab; this cell's output is not checked

# %%
print(
    f"{len(collector.observations)} observations, {collector.totals['errors']} errors, "
    f"{collector.totals['cache_hits']} cache hits"
)

# %% tags=["nbval-ignore-output"]
frame = wbm.observations_frame(collector.observations)
display(
    frame[["latency", "input_tokens", "output_tokens", "cache_hit", "quality", "cost"]]
    .head(8)
    .round(4)
)
print(f"quality on the labelled set: {frame['quality'].mean():.2f} (model: {lm.model})")

# %% [markdown]
# On the local model, expect quality well below 0.5. Look at a few wrong answers with
# `frame.tail()`: they are usually fluent and wrong, which is exactly why quality has to be
# *measured* rather than assumed from "no errors".

# %% nbgrader={"grade": true, "grade_id": "test_collector", "points": 3}
from dspy_workbook.lm import sim_lm as _sim_lm
from dspy_workbook.monitoring import LabelledQuality as _Quality

_probe = (
    MetricsCollector()
)  # call your hooks directly first: inside DSPy their errors are only logged
_probe.on_module_start("probe", None, {"args": (), "kwargs": {"question": "probe"}})
_probe.on_module_end("probe", None, None)
_c = MetricsCollector(quality=_Quality([("What is 2+2?", "4")]))
with dspy.context(
    lm=_sim_lm(latency=0.01, answers={"2+2": "4"}, cache=False),
    callbacks=[_c],
    adapter=dspy.JSONAdapter(),
):
    dspy.Predict("question -> answer")(question="What is 2+2?")
assert len(_c.observations) == 1, (
    f"one prediction should give one observation, got {len(_c.observations)}"
)
_o = _c.observations[0]
assert _o.latency >= 0.01 and _o.input_tokens > 0 and _o.output_tokens > 0 and _o.lm_calls == 1
assert _o.quality == 1.0 and _o.error is None and not _o.cache_hit
### BEGIN HIDDEN TESTS
import asyncio as _asyncio

from dspy_workbook.threads import run_async as _run_async

_c = MetricsCollector(capacity=5)
_lm = _sim_lm(latency=0.01)
with dspy.context(lm=_lm, callbacks=[_c], adapter=dspy.JSONAdapter()):
    _fresh = f"nested {time.time_ns()}"  # a new question on every run, so the first call is a miss
    dspy.ChainOfThought("question -> answer")(question=_fresh)
    dspy.ChainOfThought("question -> answer")(question=_fresh)  # DSPy's cache answers this one
assert len(_c.observations) == 2, "a ChainOfThought (with a Predict inside) is one prediction"
assert not _c.observations[0].cache_hit and _c.observations[1].cache_hit
assert _c.observations[1].input_tokens == 0 and _c.observations[1].lm_calls == 1
with dspy.context(lm=_sim_lm(latency=0.0, error_rate=1.0, num_retries=0), callbacks=[_c]):
    try:
        dspy.Predict("question -> answer")(question="fails")
    except Exception:
        pass
assert _c.observations[-1].error is not None and _c.observations[-1].quality is None
with dspy.context(lm=_sim_lm(latency=0.0), callbacks=[_c]):
    for _i in range(10):
        dspy.Predict("question -> answer")(question=f"bounded {_i}")
assert len(_c.observations) == 5, "the collector must keep at most `capacity` observations"
_c = MetricsCollector()
_slow = _sim_lm(latency=0.2, jitter=0.0)


async def _many():
    with dspy.context(lm=_slow, callbacks=[_c], adapter=dspy.JSONAdapter()):
        await _asyncio.gather(
            *[
                dspy.Predict("question -> answer").acall(question=f"c{_i} {_fresh}")
                for _i in range(6)
            ]
        )


_run_async(_many, timeout=20)
assert len(_c.observations) == 6 and all(o.lm_calls == 1 for o in _c.observations), (
    "concurrent predictions must each get their own LM call (use the ContextVar)"
)
assert all(0.18 <= o.latency < 1.0 for o in _c.observations)
### END HIDDEN TESTS

# %% [markdown]
# ## Task 2 — statistics per metric
#
# Mean and median describe the typical request. Users, however, remember the slow ones, so
# service levels are written as percentiles ("p95 under 800 ms"): 95 % of requests are faster
# than the p95. With 20 requests the p99 is essentially the maximum. Percentiles need many
# samples before they settle, and a statistics table should always show its `count`.
#
# Write `metric_stats(observations)`. It returns a DataFrame with one row per metric that has at
# least one value:
#
# | row | values |
# |---|---|
# | `latency_ms` | every observation's latency × 1000, failures included (they took time too) |
# | `input_tokens`, `output_tokens` | every observation |
# | `quality` | the observations whose quality is not `None` |
# | `cost_usd` | every observation's cost, skipping NaN (unknown price) |
#
# The columns are `count, mean, median, p95, p99, stdev, min, max`. For latency, use the
# workbook's one latency summary, `summarize_latencies(seconds)` (p50 is the median; convert to
# ms). Compute the other rows the same way with numpy (`np.percentile`, `np.std(..., ddof=1)`,
# and a stdev of 0.0 for a single value), so that every row agrees with the latency row. An empty
# input gives an empty DataFrame with those columns.

# %% nbgrader={"solution": true, "grade_id": "stats"}
STAT_COLUMNS = ["count", "mean", "median", "p95", "p99", "stdev", "min", "max"]


def metric_stats(observations: Sequence[wbm.Observation]) -> pd.DataFrame:
    """count, mean, median, p95, p99, stdev, min, max for each metric that has values."""

    ### BEGIN SOLUTION
    def row(values: Sequence[float]) -> dict:
        data = np.asarray(values, dtype=float)
        p50, p95, p99 = np.percentile(data, [50, 95, 99])
        return {
            "count": int(data.size),
            "mean": float(data.mean()),
            "median": float(p50),
            "p95": float(p95),
            "p99": float(p99),
            "stdev": float(data.std(ddof=1)) if data.size > 1 else 0.0,
            "min": float(data.min()),
            "max": float(data.max()),
        }

    rows: dict[str, dict] = {}
    if observations:
        s = summarize_latencies([o.latency for o in observations])
        rows["latency_ms"] = {
            "count": s.count,
            "mean": s.mean * 1000,
            "median": s.p50 * 1000,
            "p95": s.p95 * 1000,
            "p99": s.p99 * 1000,
            "stdev": s.stdev * 1000,
            "min": s.min * 1000,
            "max": s.max * 1000,
        }
    series = {
        "input_tokens": [o.input_tokens for o in observations],
        "output_tokens": [o.output_tokens for o in observations],
        "quality": [o.quality for o in observations if o.quality is not None],
        "cost_usd": [o.cost for o in observations if not math.isnan(o.cost)],
    }
    for name, values in series.items():
        if values:
            rows[name] = row(values)
    return pd.DataFrame.from_dict(rows, orient="index", columns=STAT_COLUMNS)
    ### END SOLUTION


# %%
ex6.check_stats(metric_stats)

# %% tags=["nbval-ignore-output"]
stats = metric_stats(collector.observations)
display(stats.round(4))

# %% [markdown]
# The seed's expected output was "a metrics report with statistics" as JSON. Here is ours, from
# the real predictions above. Ship this to a log or a file, or (better, see the end) let a
# time-series database keep it.

# %% tags=["nbval-ignore-output"]
report = {
    "model": lm.model,
    "predictions": collector.totals["predictions"],
    "metrics": stats.round(6).to_dict(orient="index"),
}
print(json.dumps(report, indent=2)[:900], "…")

# %% nbgrader={"grade": true, "grade_id": "test_stats", "points": 2}
from dspy_workbook.monitoring import Observation as _Obs

_obs = [
    _Obs(
        at=float(i),
        latency=0.1 * (i + 1),
        input_tokens=10 * i,
        output_tokens=5,
        quality=i % 2,
        cost=0.001,
    )
    for i in range(10)
]
_t = metric_stats(_obs)
assert list(_t.columns) == ["count", "mean", "median", "p95", "p99", "stdev", "min", "max"]
assert {"latency_ms", "input_tokens", "output_tokens", "quality", "cost_usd"} <= set(_t.index)
assert _t.loc["latency_ms", "count"] == 10 and abs(_t.loc["latency_ms", "median"] - 550.0) < 1e-6
### BEGIN HIDDEN TESTS
assert (
    abs(_t.loc["latency_ms", "p95"] - float(np.percentile([100 * (i + 1) for i in range(10)], 95)))
    < 1e-6
)
assert (
    abs(_t.loc["latency_ms", "max"] - 1000.0) < 1e-6
    and abs(_t.loc["latency_ms", "min"] - 100.0) < 1e-6
)
assert (
    abs(_t.loc["input_tokens", "stdev"] - float(np.std([10 * i for i in range(10)], ddof=1))) < 1e-6
)
assert abs(_t.loc["quality", "mean"] - 0.5) < 1e-9
_t2 = metric_stats([_Obs(at=0.0, latency=0.2, quality=None, cost=math.nan)])
assert "quality" not in _t2.index and "cost_usd" not in _t2.index
assert _t2.loc["latency_ms", "stdev"] == 0.0 and _t2.loc["latency_ms", "count"] == 1
_t3 = metric_stats(
    [_Obs(at=0.0, latency=0.1, quality=None), _Obs(at=1.0, latency=0.3, quality=0.0)]
)
assert _t3.loc["quality", "count"] == 1, "only labelled answers have a quality"
assert metric_stats([]).empty and list(metric_stats([]).columns) == list(_t.columns)
### END HIDDEN TESTS

# %% [markdown]
# ### Rolling windows over time
#
# A table over the whole run hides *when* things changed. A rolling window answers "how are we
# doing right now?". Indexed by time, pandas computes windows by duration (`"2s"`, `"5min"`),
# which is what dashboards and alerting rules do. Here is the latency median and the quality over
# the last 2 seconds at each request:

# %% tags=["nbval-ignore-output"]
rolling = pd.DataFrame(
    {
        "latency_ms_median": (frame["latency"] * 1000).rolling("2s").median(),
        "quality_mean": frame["quality"].astype(float).rolling("2s").mean(),
        "requests_in_window": frame["latency"].rolling("2s").count(),
    }
)
display(rolling.tail(5).round(3))

# %% [markdown]
# ### Memory stays bounded
#
# A collector for a long-running service must not grow with traffic. `observations` is a
# `deque(maxlen=capacity)`: when it is full, the oldest entry is dropped as a new one arrives.
# The **totals** (a `Counter` of integers) never forget and never grow. Percentiles over "all
# time" are not needed: they come from the recent window here, or from Prometheus's histograms
# (at the end), which keep fixed-size bucket counters.

# %%
small = MetricsCollector(capacity=50)
with dspy.context(lm=wb.sim_lm(latency=0.0), callbacks=[small]):
    for i in range(200):  # simulated and instant: no progress bar needed
        dspy.Predict("question -> answer")(question=f"load test {i}")
print(
    f"kept {len(small.observations)} of {small.totals['predictions']} predictions "
    f"(oldest kept: {small.observations[0].input_tokens > 0})"
)

# %% [markdown]
# ## Task 3 — technical and business metrics
#
# Latency and errors tell engineers whether the system works. The people who pay for it ask
# other questions: *How many answers did we serve? What does one cost? Does the cache pay for
# itself? How many answers were confident enough to show without a human check?*
#
# Cost is tokens × price (`wbm.PRICES`, dollars per million tokens; the local model is free, the
# simulated providers are priced like gpt-4o-mini). A cache hit uses no tokens, so what it
# *saved* is estimated as what a paid answer costs on average.
#
# Write `business_metrics(observations, confidence_threshold=0.7)`, returning a dict with:
#
# | key | meaning |
# |---|---|
# | `answers_served` | predictions without an error |
# | `error_rate` | errors / all predictions (0.0 when there are none) |
# | `cache_hit_rate` | cache hits / answers served (0.0 when none) |
# | `total_cost` | sum of `cost` (skip NaN) |
# | `cost_per_answer` | total cost / answers served (0.0 when none) |
# | `cost_saved_by_cache` | cache hits × mean cost of the served non-hits (0.0 if there are none) |
# | `confident_share` | share of confidence ≥ threshold among answers with one (`None` if none) |
# | `mean_quality` | mean quality of labelled answers (`None` if none) |


# %% nbgrader={"solution": true, "grade_id": "business"}
def business_metrics(
    observations: Sequence[wbm.Observation], confidence_threshold: float = 0.7
) -> dict:
    """Answers served, error and hit rates, cost per answer, cache savings, confident share."""
    ### BEGIN SOLUTION
    served = [o for o in observations if o.error is None]
    hits = [o for o in served if o.cache_hit]
    paid = [o.cost for o in served if not o.cache_hit and not math.isnan(o.cost)]
    total_cost = sum(o.cost for o in observations if not math.isnan(o.cost))
    confidences = [o.confidence for o in served if o.confidence is not None]
    qualities = [o.quality for o in served if o.quality is not None]
    return {
        "answers_served": len(served),
        "error_rate": (len(observations) - len(served)) / len(observations)
        if observations
        else 0.0,
        "cache_hit_rate": len(hits) / len(served) if served else 0.0,
        "total_cost": total_cost,
        "cost_per_answer": total_cost / len(served) if served else 0.0,
        "cost_saved_by_cache": len(hits) * (sum(paid) / len(paid)) if paid else 0.0,
        "confident_share": (
            sum(c >= confidence_threshold for c in confidences) / len(confidences)
            if confidences
            else None
        ),
        "mean_quality": sum(qualities) / len(qualities) if qualities else None,
    }
    ### END SOLUTION


# %%
ex6.check_business(business_metrics)

# %% [markdown]
# The course model may be free, so let's price a run on the **scenario provider**,
# `wbm.scenario_lm()`. It is the simulated provider (real waiting, usage, errors), with right
# answers for about 80 % of the labelled questions and a `confidence` output. We also give it a
# cache here, and traffic in which popular questions come back, as real traffic does.

# %% tags=["nbval-ignore-output"]
priced = MetricsCollector(quality=wbm.LabelledQuality())
scenario_cached = wbm.scenario_lm(latency=0.01, jitter=0.0, cache=True)
confident_qa = dspy.Predict("question -> answer, confidence: float")
popular = [pairs[i % 7][0] for i in range(30)]  # 7 distinct questions, asked 30 times
with dspy.context(lm=scenario_cached, callbacks=[priced], adapter=dspy.JSONAdapter()):
    wbm.run_workload(confident_qa, popular)

# %%
money = business_metrics(priced.observations)
display(pd.Series(money, name="business metrics").to_frame())

# %% [markdown]
# Seven questions were paid for and 23 came from the cache. At gpt-4o-mini prices that is a
# fraction of a cent. At a million requests a day, the same hit rate is real money, and a
# *drop* in hit rate (a deploy that changed the prompt and so every cache key) is a bill you
# want an alert for.

# %% nbgrader={"grade": true, "grade_id": "test_business", "points": 2}
from dspy_workbook.monitoring import Observation as _Obs

_obs = [
    _Obs(at=0, latency=0.1, cost=0.002, confidence=0.9, quality=1.0),
    _Obs(at=1, latency=0.1, cost=0.004, confidence=0.5, quality=0.0),
    _Obs(at=2, latency=0.0, cost=0.0, cache_hit=True, confidence=0.9),
    _Obs(at=3, latency=0.1, error="ServerError"),
]
_m = business_metrics(_obs)
assert _m["answers_served"] == 3 and abs(_m["error_rate"] - 0.25) < 1e-9
assert abs(_m["total_cost"] - 0.006) < 1e-12 and abs(_m["cost_per_answer"] - 0.002) < 1e-12
### BEGIN HIDDEN TESTS
assert abs(_m["cache_hit_rate"] - 1 / 3) < 1e-9
assert abs(_m["cost_saved_by_cache"] - 0.003) < 1e-12, (
    "one hit saves the mean cost of a paid answer"
)
assert abs(_m["confident_share"] - 2 / 3) < 1e-9 and abs(_m["mean_quality"] - 0.5) < 1e-9
assert abs(business_metrics(_obs, confidence_threshold=0.4)["confident_share"] - 1.0) < 1e-9
_e = business_metrics([])
assert _e["answers_served"] == 0 and _e["error_rate"] == 0.0 and _e["cost_per_answer"] == 0.0
assert (
    _e["confident_share"] is None
    and _e["mean_quality"] is None
    and _e["cost_saved_by_cache"] == 0.0
)
_n = business_metrics([_Obs(at=0, latency=0.1, cost=math.nan), _Obs(at=1, latency=0.1, cost=0.01)])
assert abs(_n["total_cost"] - 0.01) < 1e-12, "an unknown price (NaN) must not poison the totals"
### END HIDDEN TESTS

# %% [markdown]
# ## System health
#
# When latency jumps, is it the provider or this machine? `wbm.SystemSampler` samples the
# process and the machine with psutil in a background thread: CPU (process and machine), memory
# (the process's resident set and the machine's share in use), threads and open files. It keeps
# samples in a ring buffer, like the collector. A thread count or open-file count that only ever
# grows is a leak, long before it becomes an outage.

# %% tags=["nbval-ignore-output"]
health = MetricsCollector(quality=wbm.LabelledQuality())
with wbm.SystemSampler(interval=0.2) as sampler, dspy.context(callbacks=[health]):
    wbm.run_workload(qa, [q for q, _ in pairs[20:]])
system = sampler.frame()
display(
    system[
        [
            "cpu_percent",
            "system_cpu_percent",
            "rss_mb",
            "system_memory_percent",
            "threads",
            "open_files",
        ]
    ]
    .describe()
    .loc[["mean", "max"]]
    .round(1)
)

# %% [markdown]
# ## Task 4 — anomaly detection that adapts
#
# A fixed threshold ("alert above 5 s") is wrong twice. For a 50 ms service it notices nothing
# until latency has grown a hundredfold. For a slow model it fires all day. What you want is
# "unusual *for this system*": a **baseline** learned from recent traffic, and an alarm when a
# value is far from it.
#
# An **exponentially weighted moving average** (EWMA) keeps that baseline in constant memory.
# Each new value x moves the mean a fraction α of the way towards itself, and the variance the
# same way (Welford/Finch's incremental form):
#
# ```
# diff = x - mean
# mean = mean + α·diff
# var  = (1 - α)·(var + α·diff²)
# ```
#
# The **z-score** `(x - mean) / spread` says how many "usual deviations" away x is, with
# `spread = max(sqrt(var), min_spread)`. The floor `min_spread` stops a very steady series from
# turning 1 ms of noise into an alarm.
#
# Write `AdaptiveDetector.update(value) -> bool`:
#
# 1. The first value only sets `mean` (no alarm).
# 2. Compute `z` from the baseline *before* this value, and store it in `self.last_z`.
# 3. It is anomalous when more than `warmup` values have been seen (counting this one) and
#    `z > threshold` for `direction="up"` (latency spikes) or `z < -threshold` for `"down"`
#    (quality drops).
# 4. Update the baseline with the value **only if it was not anomalous**. An incident must not
#    teach the baseline that slow is the new normal. Slow drift still gets learned, one normal
#    value at a time.
#
# Non-finite values (`nan`, `inf`) raise `ValueError`.


# %% nbgrader={"solution": true, "grade_id": "detector"}
class AdaptiveDetector:
    """Flags values more than `threshold` spreads away from an EWMA baseline, in one direction."""

    def __init__(
        self,
        *,
        alpha: float = 0.1,
        threshold: float = 4.0,
        warmup: int = 20,
        direction: str = "up",
        min_spread: float = 0.0,
    ) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha is the weight of each new value, in (0, 1], got {alpha}")
        if threshold <= 0 or warmup < 0 or min_spread < 0:
            raise ValueError("threshold must be > 0, warmup and min_spread >= 0")
        if direction not in ("up", "down"):
            raise ValueError(f"direction is 'up' (spikes) or 'down' (drops), got {direction!r}")
        self.alpha, self.threshold, self.warmup = alpha, threshold, warmup
        self.direction, self.min_spread = direction, min_spread
        self.mean: float | None = None
        self.var = 0.0
        self.seen = 0
        self.last_z = 0.0

    @property
    def spread(self) -> float:
        return max(math.sqrt(self.var), self.min_spread)

    def update(self, value: float) -> bool:
        """Take one value; True when it is anomalous against the baseline so far."""
        ### BEGIN SOLUTION
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"a metric value must be a finite number, got {value}")
        self.seen += 1
        if self.mean is None:
            self.mean = value
            return False
        diff = value - self.mean
        spread = self.spread
        z = diff / spread if spread > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
        self.last_z = z
        anomalous = self.seen > self.warmup and (
            z > self.threshold if self.direction == "up" else z < -self.threshold
        )
        if not anomalous:
            self.mean += self.alpha * diff
            self.var = (1 - self.alpha) * (self.var + self.alpha * diff * diff)
        return anomalous
        ### END SOLUTION


# %%
ex6.check_detector(AdaptiveDetector)

# %% [markdown]
# Now break the scenario provider on purpose while a workload runs. Requests 0–49 are normal
# (20 ms ± 5 ms of jitter). From request 50 the provider is 150 ms slower. From request 80 it
# is fast again, but a bad deploy makes every answer wrong. From request 120 everything is
# fixed.
#
# Two detectors watch the stream. Latency goes straight in, one value per request. Quality is a
# 0/1 per answer, far too noisy on its own, so its detector watches the **mean of each batch of
# 10 labelled answers**: one value per 10 requests. A drop has to last a batch before it can be
# told apart from bad luck, so it is noticed later than a slowdown. The batch-to-batch noise of a
# mean of ten 0/1 values is about 0.1, hence `min_spread=0.1`.
#
# Why batches and not a sliding "last 10" window? A sliding mean falls *gradually*, one answer at
# a time. Each small step looks normal, so the baseline follows it all the way down and never
# sees a jump. Batches turn the drop into one big step. The general rule: a baseline must adapt
# more slowly than the incidents you want to catch.


# %% tags=["nbval-ignore-output"]
def inject(i: int, engine: wbm.ScenarioEngine) -> None:
    """The fault schedule: slow from 50, wrong answers from 80, healthy again from 120."""
    engine.faults.clear()
    if 50 <= i < 80:
        engine.faults.extra_latency = 0.15
    if 80 <= i < 120:
        engine.faults.degraded = True


class QualityBatches:
    """Mean quality per batch of `size` labelled answers (what the quality detector watches)."""

    def __init__(self, size: int = 10) -> None:
        self.size, self.values = size, []

    def add(self, quality: float | None) -> float | None:
        """Take one answer's quality; the batch mean when it completes a batch, else None."""
        if quality is None:
            return None
        self.values.append(quality)
        if len(self.values) < self.size:
            return None
        mean, self.values = sum(self.values) / self.size, []
        return mean


scenario = wbm.scenario_lm(latency=0.02, jitter=0.005)
latency_detector = AdaptiveDetector(threshold=4.0, warmup=20, min_spread=0.01)
quality_detector = AdaptiveDetector(
    alpha=0.2, threshold=4.0, warmup=3, direction="down", min_spread=0.1
)
batches = QualityBatches(10)
flags: list[tuple[int, str]] = []


def watch(obs: wbm.Observation) -> None:
    n = len(watched.observations) - 1  # this request's number: `record` appends before it notifies
    if latency_detector.update(obs.latency):
        flags.append((n, "latency"))
    batch = batches.add(obs.quality)
    if batch is not None and quality_detector.update(batch):
        flags.append((n, "quality"))


watched = MetricsCollector(quality=wbm.LabelledQuality(), listeners=[watch])
with dspy.context(lm=scenario, callbacks=[watched], adapter=dspy.JSONAdapter()):
    wbm.run_workload(qa, wbm.workload_questions(150), before=lambda i: inject(i, scenario.engine))


def first_flag(kind: str, after: int) -> int | None:
    return next((n for n, k in flags if k == kind and n >= after), None)


print("latency flagged from request", first_flag("latency", 0), "(slowdown injected at 50)")
print("quality flagged from request", first_flag("quality", 0), "(wrong answers from 80)")
print("flags before any fault:", [f for f in flags if f[0] < 50])

# %% [markdown]
# The slowdown is caught on its first request: 150 ms is 15 spreads above a baseline of about
# 20 ms (the jitter is ±5 ms; `min_spread=0.01` treats anything within 10 ms as ordinary, so a
# busy machine's scheduling hiccups do not count). The quality drop is noticed at the end of the
# first batch of wrong answers, up to 10 requests later. That delay is the honest price of a
# noisy signal. Note, too, that no request before the fault was flagged: the jitter is part of the
# baseline.

# %% tags=["nbval-ignore-output"]
display(
    wbm.dashboard_figure(
        watched.observations, marks=[(50, "slowdown"), (80, "bad deploy"), (120, "fixed")]
    )
)

# %% nbgrader={"grade": true, "grade_id": "test_detector", "points": 3}
_d = AdaptiveDetector(alpha=0.1, threshold=4.0, warmup=5)
_normal = [0.100, 0.104, 0.098, 0.101, 0.097, 0.103, 0.099, 0.102, 0.100, 0.098] * 3
assert not any(_d.update(_v) for _v in _normal), "normal jitter must not be flagged"
assert _d.update(0.5) is True, "a spike five times the usual latency must be flagged"
### BEGIN HIDDEN TESTS
_mean = _d.mean
assert _d.update(0.6) is True and _d.mean == _mean, "anomalies must not move the baseline"
assert _d.update(0.101) is False
_w = AdaptiveDetector(warmup=10)
assert [_w.update(_v) for _v in [1.0] * 5 + [100.0]] == [False] * 6, "no alarm during warm-up"
_q = AdaptiveDetector(direction="down", warmup=3, min_spread=0.05)
for _v in [0.8, 0.82, 0.79, 0.81, 0.8, 0.8]:
    assert _q.update(_v) is False
assert _q.update(0.95) is False, "direction='down' ignores a rise"
assert _q.update(0.3) is True and _q.last_z < -4
_a = AdaptiveDetector(alpha=0.5, warmup=0, min_spread=10.0)
_a.update(1.0)
_a.update(3.0)
assert abs(_a.mean - 2.0) < 1e-9 and abs(_a.var - 1.0) < 1e-9, (
    "use the EWMA update given in the text"
)
_f = AdaptiveDetector(warmup=0, min_spread=0.5)
_f.update(1.0)
_f.update(1.0)
assert _f.update(1.4) is False and abs(_f.last_z - 0.8) < 1e-9, "the spread is at least min_spread"
for _bad in (math.nan, math.inf):
    try:
        AdaptiveDetector().update(_bad)
    except ValueError:
        pass
    else:
        raise AssertionError("a non-finite value must raise ValueError")
_drift = AdaptiveDetector(alpha=0.2, warmup=5, min_spread=0.001)
assert not any(_drift.update(1.0 + 0.002 * _i) for _i in range(200)), (
    "slow drift is learned, not flagged"
)
### END HIDDEN TESTS

# %% [markdown]
# ## Task 5 — alerts: severity, one per incident, resolved when it ends
#
# A detector says "this value is odd". An **alert** says "someone should look", and it has to be
# worth reading:
#
# * **One alert per incident.** While the provider is slow, every request is anomalous. That
#   should produce *one* "latency spike: firing" message, not 40.
# * **Confirmation** (`pending`): fire only after `pending` anomalous observations in a row, so a
#   single odd request (a GC pause, a noisy neighbour) wakes nobody. Prometheus calls this `for:`.
# * **Resolution** (`clear_after`): the incident ends after `clear_after` normal observations in
#   a row, and a "resolved" message follows. People need to know when to stop looking.
# * **Severity**: `"warning"` gets looked at during working hours, `"critical"` pages someone now.
#
# Delivery is given: `self.dispatcher.send(alert)` puts the alert on a queue and returns at once.
# A background thread delivers it to the sinks (log, callback, webhook), so a sink that is slow or
# down can never slow or break a prediction.
#
# Write `evaluate(rule, anomalous, severity=..., value=..., message=...)`. Per rule, keep the
# number of anomalous observations in a row (`streak`) and of normal ones in a row (`calm`), in
# `self._state[rule]`.
#
# * **anomalous**: `streak += 1`, `calm = 0`. If the rule already has an open alert
#   (`self.active[rule]`), only increase its `count` (de-duplication). Otherwise, once
#   `streak >= self.pending`, open `wbm.Alert(rule, severity, started_at=self.clock(),
#   value=value, count=streak, message=message)`, put it in `self.active` and `self.history`,
#   send it, and return it.
# * **normal**: `streak = 0`. If an alert is open, `calm += 1`. Once `calm >= self.clear_after`,
#   set `status="resolved"` and `resolved_at=self.clock()`, remove it from `self.active`, send
#   it, and return it.
# * Otherwise return `None`: nothing was sent.


# %% nbgrader={"solution": true, "grade_id": "alerts"}
class AlertManager:
    """Turns detector verdicts into alerts: confirmed, de-duplicated, resolved, dispatched."""

    def __init__(
        self,
        dispatcher: wbm.AlertDispatcher | None = None,
        *,
        pending: int = 1,
        clear_after: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if pending < 1 or clear_after < 1:
            raise ValueError(
                f"pending and clear_after count observations (>= 1), got {pending}, {clear_after}"
            )
        self.dispatcher = (
            dispatcher if dispatcher is not None else wbm.AlertDispatcher([wbm.LogSink()])
        )
        self.pending, self.clear_after, self.clock = pending, clear_after, clock
        self.active: dict[str, wbm.Alert] = {}  # rule -> its open incident
        self.history: list[wbm.Alert] = []  # every incident opened (bounded below)
        self._state: dict[str, dict[str, int]] = {}

    def evaluate(
        self,
        rule: str,
        anomalous: bool,
        *,
        severity: str = "warning",
        value: float | None = None,
        message: str = "",
    ) -> wbm.Alert | None:
        """Feed one verdict for `rule`; returns the alert when one was sent (opened or resolved)."""
        state = self._state.setdefault(rule, {"streak": 0, "calm": 0})
        ### BEGIN SOLUTION
        if anomalous:
            state["streak"] += 1
            state["calm"] = 0
            if rule in self.active:
                self.active[rule].count += 1
                return None
            if state["streak"] < self.pending:
                return None
            alert = wbm.Alert(
                rule,
                severity,
                started_at=self.clock(),
                value=value,
                count=state["streak"],
                message=message,
            )
            self.active[rule] = alert
            self.history.append(alert)
            del self.history[:-1000]
            self.dispatcher.send(alert)
            return alert
        state["streak"] = 0
        alert = self.active.get(rule)
        if alert is None:
            return None
        state["calm"] += 1
        if state["calm"] < self.clear_after:
            return None
        alert.status, alert.resolved_at = "resolved", self.clock()
        del self.active[rule]
        state["calm"] = 0
        self.dispatcher.send(alert)
        return alert
        ### END SOLUTION


# %%
ex6.check_alerts(AlertManager)

# %% [markdown]
# Now wire everything together, as you would in a service: the collector's listener feeds both
# detectors, the detectors feed the alert manager, and the alerts go to three sinks: the log,
# a Python callback (here a list we print), and an **HTTP webhook** to a small receiver on
# 127.0.0.1, standing in for Slack or a pager. The receiver is deliberately slow (0.3 s per
# alert). The predictions do not wait for it.
#
# Confirmation is counted in observations of *that* signal, so each signal gets its own alert
# manager (both share one dispatcher): 3 slow requests in a row confirm a latency incident, while
# one bad batch of 10 answers already confirms a quality incident, and two good batches end it.

# %% tags=["nbval-ignore-output"]
received: list[dict] = []
with wbm.WebhookReceiver(delay=0.3) as pager:
    dispatcher = wbm.AlertDispatcher(
        [wbm.LogSink(), wbm.CallbackSink(received.append), wbm.WebhookSink(pager.url, timeout=2.0)]
    )
    latency_alerts = AlertManager(dispatcher, pending=3, clear_after=5)
    quality_alerts = AlertManager(dispatcher, pending=1, clear_after=2)
    lat = AdaptiveDetector(threshold=4.0, warmup=20, min_spread=0.01)
    qual = AdaptiveDetector(alpha=0.2, threshold=4.0, warmup=3, direction="down", min_spread=0.1)
    quality_batches = QualityBatches(10)

    def to_alerts(obs: wbm.Observation) -> None:
        latency_alerts.evaluate(
            "latency_spike",
            lat.update(obs.latency),
            severity="warning",
            value=obs.latency,
            message="prediction latency far above its baseline",
        )
        batch = quality_batches.add(obs.quality)
        if batch is not None:
            quality_alerts.evaluate(
                "quality_drop",
                qual.update(batch),
                severity="critical",
                value=batch,
                message="share of right answers fell",
            )

    scenario = wbm.scenario_lm(latency=0.02, jitter=0.005)
    wired = MetricsCollector(quality=wbm.LabelledQuality(), listeners=[to_alerts])
    started = time.perf_counter()
    with (
        wbm.SystemSampler(interval=0.1) as wired_sampler,
        dspy.context(lm=scenario, callbacks=[wired], adapter=dspy.JSONAdapter()),
    ):
        wbm.run_workload(
            qa, wbm.workload_questions(150), before=lambda i: inject(i, scenario.engine)
        )
    print(f"workload took {time.perf_counter() - started:.1f} s")
    dispatcher.close()
    print(f"webhook received {len(pager.received)} alerts")
for alert in received:
    print(
        f"{alert['rule']:14} {alert['status']:9} severity={alert['severity']:8} "
        f"count={alert['count']}"
    )

# %% [markdown]
# Four messages for two incidents: each one opened once and resolved once. Without
# de-duplication the slowdown alone would have sent 30.

# %% nbgrader={"grade": true, "grade_id": "test_alerts", "points": 2}
from dspy_workbook.monitoring import AlertDispatcher as _Dispatcher
from dspy_workbook.monitoring import CallbackSink as _CallbackSink

_got: list = []
_disp = _Dispatcher([_CallbackSink(_got.append)])
_m = AlertManager(_disp, pending=2, clear_after=3, clock=lambda: 42.0)
_verdicts = [False, True, True, True, True, False, False, False, False]
_sent = [_m.evaluate("latency_spike", _v, severity="critical", value=1.5) for _v in _verdicts]
assert _disp.flush(5)
assert [a["status"] for a in _got] == ["firing", "resolved"], (
    f"expected one firing and one resolved, got {_got}"
)
assert _got[0]["severity"] == "critical" and _got[0]["rule"] == "latency_spike"
### BEGIN HIDDEN TESTS
assert [s is not None for s in _sent] == [
    False,
    False,
    True,
    False,
    False,
    False,
    False,
    True,
    False,
]
assert not _m.active and len(_m.history) == 1 and _m.history[0].count == 4
assert _m.history[0].resolved_at == 42.0 and _m.history[0].started_at == 42.0
_got.clear()
_m2 = AlertManager(_disp, pending=1, clear_after=2)
for _v in [True, False, True, False, False, True]:
    _m2.evaluate("a", _v)
_m2.evaluate("b", True, severity="warning")
assert _disp.flush(5)
assert [(a["rule"], a["status"]) for a in _got] == [
    ("a", "firing"),
    ("a", "resolved"),
    ("a", "firing"),
    ("b", "firing"),
], "one normal value between anomalies must not resolve an incident; rules are independent"
assert set(_m2.active) == {"a", "b"}


class _Boom:
    def deliver(self, alert):
        raise RuntimeError("sink down")


class _Slow:
    def deliver(self, alert):
        time.sleep(1.0)


_m3 = AlertManager(_Dispatcher([_Boom(), _Slow()]), pending=1)
_t0 = time.perf_counter()
for _i in range(5):
    _m3.evaluate(f"r{_i}", True)
assert time.perf_counter() - _t0 < 0.5, "sending an alert must not wait for the sinks"
_m3.dispatcher.close(timeout=0.1)
### END HIDDEN TESTS

# %% [markdown]
# ## A dashboard
#
# One picture of the wired run above: latency with a rolling p5–p95 band, error and cache-hit rates,
# answer quality, and (from the sampler) CPU and memory. Each panel answers one question on
# call: *is it slow, is it failing, is it wrong, is it us?*

# %% tags=["nbval-ignore-output"]
display(
    wbm.dashboard_figure(
        wired.observations,
        wired_sampler.frame(),
        marks=[(50, "slowdown"), (80, "bad deploy"), (120, "fixed")],
    )
)

# %% [markdown]
# ## Going further (optional, ungraded)
#
# Nothing below is graded. Each part is what teams add once the basics work.
#
# ### A live view while a workload runs
#
# `wbm.LiveView` is an ipywidgets panel. As a collector listener it refreshes every few
# predictions with the latest median, p95, errors and quality, and a small chart. Run the cell
# and watch it update. (In CI, its output is not compared: it changes on every run.)

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
# The collector keeps the recent past in memory. For a report or an offline analysis, export
# it. Parquet keeps the types and compresses well; CSV opens anywhere.

# %%
export_dir = workbook_dir("ex6")
exported = wbm.observations_frame(wired.observations)
exported.to_parquet(export_dir / "observations.parquet")
exported.to_csv(export_dir / "observations.csv")
back = pd.read_parquet(export_dir / "observations.parquet")
print(f"{len(back)} rows round-tripped through Parquet; columns: {', '.join(back.columns[:6])}, …")

# %% [markdown]
# Files are fine for a notebook and for a nightly report. They stop being enough when several
# processes (uvicorn workers, several machines) must be aggregated, when you want months of
# history at a fixed cost, and when alerts must be evaluated even if your process is the thing
# that died. That is the job of a **time-series database**. **Prometheus** scrapes each process's
# `/metrics` every few seconds. It keeps 15 days by default (`--storage.tsdb.retention.time`) and
# evaluates alerting rules itself. For longer or global storage it forwards samples with
# **remote write** to a long-term store (Thanos, Mimir, VictoriaMetrics). Histograms and counters
# are designed for this: a fixed number of series, whatever the traffic.
#
# ### Prometheus: exposition, a real server, PromQL
#
# `wbm.PrometheusMetrics` turns observations into Prometheus counters and histograms in **its own
# registry**. prometheus-client's global registry raises "Duplicated timeseries" when a cell that
# defines metrics runs twice, so run this cell twice and see that it doesn't here.

# %%
prom = wbm.PrometheusMetrics()
for obs in wired.observations:
    prom.observe(obs)
prom.observe_system(wbm.sample_system())
exposition = prom.text()
print(
    "\n".join(
        line
        for line in exposition.splitlines()
        if line.startswith("dspy_predictions_total")
        or line.startswith("dspy_prediction_latency_seconds_count")
    )
)

# %% [markdown]
# If Debian's `prometheus` package is installed (`apt-get install prometheus`; the project's CI
# installs it), the next cell starts a real Prometheus on 127.0.0.1. It scrapes a `/metrics`
# endpoint served from this kernel every second, and asks it, in PromQL, how many predictions
# it has seen and what their p95 latency is. The config it uses is the project's
# `monitoring/prometheus.yml`, with the target and interval rewritten for the run. The alerting
# rules in `monitoring/alerts.yml` express the same anomalies as Tasks 4 and 5, in PromQL, and
# are unit-tested with `promtool test rules monitoring/alerts_test.yml`.

# %% tags=["nbval-ignore-output"]
import shutil

if shutil.which("prometheus"):
    with (
        prom.serve() as endpoint,
        wbm.PrometheusServer([endpoint.target], scrape_interval="1s") as server,
    ):
        count = server.wait_for("sum(dspy_predictions_total)", lambda v: v > 0, timeout=30)
        p95 = server.value(
            "histogram_quantile(0.95, sum by (le) (dspy_prediction_latency_seconds_bucket))"
        )
        print(
            f"Prometheus saw {count:.0f} predictions; p95 latency ≈ {p95 * 1000:.0f} ms (bucketed)"
        )
        rules = server.api("rules")["groups"][0]["rules"]
        print("alerting rules loaded:", [r["name"] for r in rules])
else:
    print("prometheus is not installed here: apt-get install -y prometheus (optional part)")

# %% [markdown]
# `monitoring/grafana-dashboard.json` is a Grafana dashboard over the same metrics: request rate,
# error rate, p50/p95/p99 latency, quality, cost and cache hits, plus process memory and CPU.
# Import it in Grafana (Dashboards → Import) with a Prometheus data source. A project test checks
# that every metric it queries is one that `PrometheusMetrics` exports.
#
# In production the scrape target is the service itself. Exercise 5's FastAPI app exposes its
# own `/metrics` (`dspy_api_requests_total`, `dspy_api_request_duration_seconds`, …), and a
# project test starts it on 127.0.0.1 and lets a real Prometheus scrape it the same way. Add
# `PrometheusMetrics` as a collector listener inside such a service, and the quality, cost and
# cache series above join its request metrics on the same `/metrics` page.
#
# ### OpenTelemetry and MLflow
#
# **OpenTelemetry** is the vendor-neutral standard for traces, metrics and logs.
# `wbm.OpenTelemetrySpans` is a callback like Task 1's: it opens a span in each `on_*_start`
# and ends it in `on_*_end`, nested under its caller, with the model and tokens as `gen_ai.*`
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
# 1. *Kernel → Restart Kernel and Run All Cells*. Every cell should run without an error.
# 2. Save the notebook.
# 3. In JupyterLab's *Nbgrader → Assignment List*, click **Validate** for `06_monitoring`, then
#    **Submit**. (Or hand in the `.ipynb` file the way your course asks.)
#
# Grading runs your notebook on the simulated provider and scores Tasks 1–5 with the visible and
# hidden tests, which check the same behaviours as the self-checks.
#
# ## Questionnaire
#
# 1. Why is `lm.history[-1]` the wrong place to read a call's usage from a callback, and what
#    does a `ContextVar` give you instead?
# 2. With 20 requests, what does "p99 latency" really tell you? How many would you want?
# 3. Why should an anomalous value not update the baseline? What goes wrong if it does?
# 4. The quality alert fired several requests after the bad deploy, the latency alert after one
#    request. Why, and what would make quality detection faster?
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
