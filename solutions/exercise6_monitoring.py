"""Answer key for 06_monitoring.ipynb — generated from source/ch07/06_monitoring.py by tools/build.py; do not edit.

Run: python solutions/exercise6_monitoring.py  (backend: $WORKBOOK_LM, default local)
"""

# # Exercise 6 — Monitoring and observability
import dspy_workbook as wb

lm = wb.setup()

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

# ## What the classic starter gets wrong
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

# ## Task 1 — a metrics collector fed by DSPy callbacks
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
        state = self._current.get()
        if state is None:  # an LM called directly, outside any module: not a prediction
            return
        state.lm_calls += 1
        state.hits += usage.cache_hit
        state.input_tokens += usage.input_tokens
        state.output_tokens += usage.output_tokens
        state.model = model

    def on_module_start(self, call_id: str, instance, inputs: dict) -> None:
        """A top-level module call starts a prediction; nested ones are part of it."""
        if self._current.get() is not None:
            return
        state = wbm.PredictionState(
            started=time.perf_counter(), inputs=dict(inputs.get("kwargs") or {})
        )
        state.token = self._current.set(state)
        self._open[call_id] = state

    def on_module_end(self, call_id: str, outputs, exception: BaseException | None = None) -> None:
        """The top-level call ended: build the observation and `record` it."""
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

ex6.check_collector(MetricsCollector)

collector = MetricsCollector(quality=wbm.LabelledQuality())
qa = dspy.Predict("question -> answer")
questions = [q for q, _ in pairs[:20]] + [q for q, _ in pairs[:5]]
with dspy.context(callbacks=[collector]):
    wbm.run_workload(
        qa, questions
    )  # a progress bar in JupyterLab; this cell's output is not checked

print(
    f"{len(collector.observations)} observations, {collector.totals['errors']} errors, "
    f"{collector.totals['cache_hits']} cache hits"
)

frame = wbm.observations_frame(collector.observations)
display(
    frame[["latency", "input_tokens", "output_tokens", "cache_hit", "quality", "cost"]]
    .head(8)
    .round(4)
)
print(f"quality on the labelled set: {frame['quality'].mean():.2f} (model: {lm.model})")

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

# ## Task 2 — statistics per metric
STAT_COLUMNS = ["count", "mean", "median", "p95", "p99", "stdev", "min", "max"]


def metric_stats(observations: Sequence[wbm.Observation]) -> pd.DataFrame:
    """count, mean, median, p95, p99, stdev, min, max for each metric that has values."""

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

ex6.check_stats(metric_stats)

stats = metric_stats(collector.observations)
display(stats.round(4))

report = {
    "model": lm.model,
    "predictions": collector.totals["predictions"],
    "metrics": stats.round(6).to_dict(orient="index"),
}
print(json.dumps(report, indent=2)[:900], "…")

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

# ### Rolling windows over time
rolling = pd.DataFrame(
    {
        "latency_ms_median": (frame["latency"] * 1000).rolling("2s").median(),
        "quality_mean": frame["quality"].astype(float).rolling("2s").mean(),
        "requests_in_window": frame["latency"].rolling("2s").count(),
    }
)
display(rolling.tail(5).round(3))

# ### Memory stays bounded
small = MetricsCollector(capacity=50)
with dspy.context(lm=wb.sim_lm(latency=0.0), callbacks=[small]):
    for i in range(200):  # simulated and instant: no progress bar needed
        dspy.Predict("question -> answer")(question=f"load test {i}")
print(
    f"kept {len(small.observations)} of {small.totals['predictions']} predictions "
    f"(oldest kept: {small.observations[0].input_tokens > 0})"
)

# ## Task 3 — technical and business metrics
def business_metrics(
    observations: Sequence[wbm.Observation], confidence_threshold: float = 0.7
) -> dict:
    """Answers served, error and hit rates, cost per answer, cache savings, confident share."""
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

ex6.check_business(business_metrics)

priced = MetricsCollector(quality=wbm.LabelledQuality())
scenario_cached = wbm.scenario_lm(latency=0.01, jitter=0.0, cache=True)
confident_qa = dspy.Predict("question -> answer, confidence: float")
popular = [pairs[i % 7][0] for i in range(30)]  # 7 distinct questions, asked 30 times
with dspy.context(lm=scenario_cached, callbacks=[priced], adapter=dspy.JSONAdapter()):
    wbm.run_workload(confident_qa, popular)

money = business_metrics(priced.observations)
display(pd.Series(money, name="business metrics").to_frame())

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

# ## System health
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

# ## Task 4 — anomaly detection that adapts
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

ex6.check_detector(AdaptiveDetector)

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

display(
    wbm.dashboard_figure(
        watched.observations, marks=[(50, "slowdown"), (80, "bad deploy"), (120, "fixed")]
    )
)

_d = AdaptiveDetector(alpha=0.1, threshold=4.0, warmup=5)
_normal = [0.100, 0.104, 0.098, 0.101, 0.097, 0.103, 0.099, 0.102, 0.100, 0.098] * 3
assert not any(_d.update(_v) for _v in _normal), "normal jitter must not be flagged"
assert _d.update(0.5) is True, "a spike five times the usual latency must be flagged"
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

# ## Task 5 — alerts: severity, one per incident, resolved when it ends
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

ex6.check_alerts(AlertManager)

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

# ## A dashboard
display(
    wbm.dashboard_figure(
        wired.observations,
        wired_sampler.frame(),
        marks=[(50, "slowdown"), (80, "bad deploy"), (120, "fixed")],
    )
)

# ## Going further (optional, ungraded)
# ### A live view while a workload runs
# ### Long-term storage: files now, a time-series database later
export_dir = workbook_dir("ex6")
exported = wbm.observations_frame(wired.observations)
exported.to_parquet(export_dir / "observations.parquet")
exported.to_csv(export_dir / "observations.csv")
back = pd.read_parquet(export_dir / "observations.parquet")
print(f"{len(back)} rows round-tripped through Parquet; columns: {', '.join(back.columns[:6])}, …")

# ### Prometheus: exposition, a real server, PromQL
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

# ### OpenTelemetry and MLflow
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

# ## Check everything
ex6.check_all()

# ## How to submit
# ## Questionnaire
# ## Further research
