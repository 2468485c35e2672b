"""Self-checks for Exercise 6 (monitoring): `ex6.check_…(…)` after each task, `ex6.hint(key)`.

Every check builds its own simulated LM with DSPy's cache off, so what a student ran before (or
a re-run of the check) never turns a miss into a hit.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

import dspy

from ..lm import sim_lm
from ..monitoring import AlertDispatcher, CallbackSink, LabelledQuality, Observation
from ..threads import run_async
from ._core import NotAttempted, expect
from ._core import call_student as _call
from ._exercise import Exercise

__all__ = [
    "check_alerts",
    "check_all",
    "check_business",
    "check_collector",
    "check_detector",
    "check_stats",
    "ex",
    "hint",
]

ex = Exercise("Exercise 6 · monitoring and observability")


def _predict(collector: Any, lm: dspy.LM, question: str, module: str = "Predict") -> None:
    program = (
        dspy.ChainOfThought("question -> answer")
        if module == "ChainOfThought"
        else dspy.Predict("question -> answer")
    )
    with dspy.context(lm=lm, callbacks=[collector], adapter=dspy.JSONAdapter()):
        program(question=question)


# -- Task 1 -------------------------------------------------------------------------------------
@ex.task(
    "collector",
    "Task 1 · metrics collector",
    points=3,
    needs=("MetricsCollector",),
    hints=(
        "Only a *top-level* module call is a prediction. In `on_module_start`, "
        "`self._current.get()` is "
        "already set when an outer module is running: then do nothing.",
        "Start: `state = wbm.PredictionState(started=time.perf_counter(), "
        "inputs=dict(inputs.get('kwargs') or {}))`, "
        "`state.token = self._current.set(state)`, `self._open[call_id] = state`. In `on_lm_end`, "
        "`self._current.get()` is the prediction that made the call: add `usage.input_tokens`, "
        "`usage.output_tokens`, `usage.cache_hit`, one LM call, and the model.",
        "End: `state = self._open.pop(call_id, None)`; if None return; "
        "`self._current.reset(state.token)`; "
        "then `self.record(wbm.Observation(at=time.time(), latency=time.perf_counter() - "
        "state.started, …, "
        "cache_hit=state.lm_calls > 0 and state.hits == state.lm_calls, error=None if exception "
        "is None "
        "else type(exception).__name__, quality=self.safely(self.quality, state.inputs, outputs) "
        "if ok else None, …))`.",
    ),
)
def check_collector(MetricsCollector: type) -> str:
    collector = _call(
        "`MetricsCollector(...)`",
        MetricsCollector,
        quality=LabelledQuality([("What is the capital of Italy?", "Rome")]),
    )
    probe = dspy.Predict("question -> answer")
    try:
        collector.on_module_start("probe", probe, {"args": (), "kwargs": {"question": "q"}})
        collector.on_module_end("probe", None, None)
    except NotImplementedError:
        raise NotAttempted(
            "`on_module_start` still raises `NotImplementedError` — DSPy would swallow that "
            "in a callback and record nothing. Fill in the three methods."
        ) from None
    except Exception:
        pass
    collector = MetricsCollector(
        quality=LabelledQuality([("What is the capital of Italy?", "Rome")])
    )
    lm = sim_lm(latency=0.02, answers={"Italy": "Rome"}, cache=False)
    _predict(collector, lm, "What is the capital of Italy?")
    got = list(collector.observations)
    expect(
        len(got) == 1,
        f"one prediction gave {len(got)} observations — `on_module_end` should call "
        "`self.record(observation)` exactly once per top-level call",
    )
    obs = got[0]
    expect(
        isinstance(obs, Observation),
        f"`record` was given a {type(obs).__name__}, not a `wbm.Observation`",
    )
    expect(
        0.02 <= obs.latency < 5,
        f"latency was {obs.latency!r} s for a call that waits 0.02 s — time "
        "from `on_module_start` to `on_module_end` with `time.perf_counter()`",
    )
    expect(
        obs.lm_calls == 1 and obs.input_tokens > 0 and obs.output_tokens > 0,
        f"lm_calls={obs.lm_calls}, input_tokens={obs.input_tokens}, "
        f"output_tokens={obs.output_tokens} — "
        "add each LM call's `usage` to the current prediction in `on_lm_end`",
    )
    expect(obs.model == lm.model, f"model is {obs.model!r}, expected the LM's model {lm.model!r}")
    expect(obs.cost > 0, f"cost is {obs.cost!r}: price the tokens with `self.cost(state.model, …)`")
    expect(
        obs.quality == 1.0,
        f"quality is {obs.quality!r} for a right answer — call "
        "`self.safely(self.quality, state.inputs, outputs)`",
    )
    expect(
        obs.error is None and obs.cache_hit is False,
        f"error={obs.error!r}, cache_hit={obs.cache_hit!r} for a fresh, successful call",
    )
    nested = MetricsCollector()
    _predict(nested, sim_lm(latency=0.0, cache=False), "a nested question", module="ChainOfThought")
    expect(
        len(nested.observations) == 1,
        f"a ChainOfThought (which calls a Predict inside) gave {len(nested.observations)} "
        "observations — "
        "a module started while `self._current.get()` is set is part of the same prediction",
    )
    cached_lm = sim_lm(latency=0.0, cache=True)
    question = f"cache probe {time.time_ns()}"
    _predict(nested, cached_lm, question)
    _predict(nested, cached_lm, question)
    first, second = list(nested.observations)[-2:]
    expect(
        not first.cache_hit and second.cache_hit,
        f"asking the same question twice gave cache_hit={first.cache_hit}, then "
        f"{second.cache_hit} — a "
        "prediction is a hit when every LM call it made was (`usage.cache_hit`)",
    )
    failing = MetricsCollector()
    try:
        _predict(failing, sim_lm(latency=0.0, error_rate=1.0, num_retries=0, cache=False), "fails")
    except Exception:
        pass
    expect(
        len(failing.observations) == 1 and failing.observations[0].error,
        "a failing prediction must be recorded with `error` set to the exception's type name",
    )
    concurrent = MetricsCollector()
    slow = sim_lm(latency=0.15, cache=False)

    async def many() -> None:
        with dspy.context(lm=slow, callbacks=[concurrent], adapter=dspy.JSONAdapter()):
            program = dspy.Predict("question -> answer")
            await asyncio.gather(*(program.acall(question=f"concurrent {i}") for i in range(5)))

    run_async(many, timeout=20)
    calls = sorted(o.lm_calls for o in concurrent.observations)
    expect(
        calls == [1] * 5,
        f"5 concurrent predictions recorded LM calls {calls} — keep per-prediction state in "
        "the ContextVar `self._current`, not in a plain attribute",
    )
    return (
        "one observation per prediction, with latency, tokens, cost, quality, hits and errors — "
        "even concurrently."
    )


# -- Task 2 -------------------------------------------------------------------------------------
@ex.task(
    "stats",
    "Task 2 · statistics table",
    points=2,
    needs=("metric_stats",),
    hints=(
        "Build a dict of rows {metric name: {column: value}} and finish with "
        "`pd.DataFrame.from_dict(rows, orient='index', columns=STAT_COLUMNS)` (that also handles "
        "no rows).",
        "Latency: `s = summarize_latencies([o.latency for o in observations])`; its fields "
        "`count, mean, p50, "
        "p95, p99, stdev, min, max` are seconds — multiply by 1000.",
        "Other rows: `np.percentile(values, [50, 95, 99])`, `np.std(values, ddof=1)` (0.0 for one "
        "value); "
        "quality only where `o.quality is not None`, cost only where `not math.isnan(o.cost)`.",
    ),
)
def check_stats(metric_stats: Callable) -> str:
    obs = [
        Observation(
            at=float(i),
            latency=0.05 * (i + 1),
            input_tokens=100 + i,
            output_tokens=20,
            quality=float(i % 2) if i < 6 else None,
            cost=0.0001 * i if i else math.nan,
        )
        for i in range(12)
    ]
    table = _call("`metric_stats`", metric_stats, obs)
    expect(table is not None, "`metric_stats` returned None — did you forget `return`?")
    expect(
        hasattr(table, "loc") and hasattr(table, "columns"),
        f"expected a pandas DataFrame, got {type(table)}",
    )
    columns = ["count", "mean", "median", "p95", "p99", "stdev", "min", "max"]
    expect(list(table.columns) == columns, f"columns are {list(table.columns)}, expected {columns}")
    rows = {"latency_ms", "input_tokens", "output_tokens", "quality", "cost_usd"}
    expect(
        rows <= set(table.index),
        f"rows are {sorted(table.index)}; expected at least {sorted(rows)}",
    )
    lat = table.loc["latency_ms"]
    expect(
        lat["count"] == 12 and abs(lat["median"] - 325.0) < 1e-6 and abs(lat["max"] - 600.0) < 1e-6,
        f"latency_ms row: count {lat['count']}, median {lat['median']}, max {lat['max']} — is it "
        "in "
        "milliseconds, over every observation?",
    )
    expect(
        abs(lat["p95"] - 572.5) < 1e-6,
        f"latency p95 is {lat['p95']}: use numpy's default percentile (via `summarize_latencies`)",
    )
    expect(
        table.loc["quality", "count"] == 6,
        f"quality count is {table.loc['quality', 'count']} — "
        "only observations whose quality is not None have one",
    )
    expect(
        table.loc["cost_usd", "count"] == 11,
        f"cost_usd count is {table.loc['cost_usd', 'count']} — skip NaN costs (unknown price)",
    )
    single = _call(
        "`metric_stats` of one observation", metric_stats, [Observation(at=0.0, latency=0.3)]
    )
    expect(single.loc["latency_ms", "stdev"] == 0.0, "the stdev of a single value should be 0.0")
    empty = _call("`metric_stats([])`", metric_stats, [])
    expect(
        len(empty) == 0 and list(empty.columns) == columns,
        "no observations should give an empty table with the same columns",
    )
    return "one row per metric with count, mean, median, p95, p99, stdev, min and max."


# -- Task 3 -------------------------------------------------------------------------------------
@ex.task(
    "business",
    "Task 3 · business metrics",
    points=2,
    needs=("business_metrics",),
    hints=(
        "Split first: `served = [o for o in observations if o.error is None]`, `hits = [o for o "
        "in served if "
        "o.cache_hit]`, and the paid costs of served non-hits (skipping NaN).",
        "Every ratio needs a guard for an empty denominator: `x / n if n else 0.0` (or None for "
        "the "
        "confident share and mean quality).",
        "`cost_saved_by_cache = len(hits) * (sum(paid) / len(paid)) if paid else 0.0`; "
        "`confident_share` "
        "counts `c >= confidence_threshold` among the served answers whose confidence is not None.",
    ),
)
def check_business(business_metrics: Callable) -> str:
    obs = [
        Observation(at=0, latency=0.1, cost=0.01, confidence=0.95, quality=1.0),
        Observation(at=1, latency=0.1, cost=0.03, confidence=0.6, quality=0.0),
        Observation(at=2, latency=0.0, cache_hit=True, confidence=0.8, quality=1.0),
        Observation(at=3, latency=0.0, cache_hit=True),
        Observation(at=4, latency=0.2, error="TimeoutError"),
    ]
    got = _call("`business_metrics`", business_metrics, obs)
    expect(
        isinstance(got, dict), f"`business_metrics` should return a dict, got {type(got).__name__}"
    )
    keys = {
        "answers_served",
        "error_rate",
        "cache_hit_rate",
        "total_cost",
        "cost_per_answer",
        "cost_saved_by_cache",
        "confident_share",
        "mean_quality",
    }
    expect(keys <= set(got), f"missing keys: {sorted(keys - set(got))}")
    expect(
        got["answers_served"] == 4,
        f"answers_served is {got['answers_served']}: 4 of 5 had no error",
    )
    expect(
        abs(got["error_rate"] - 0.2) < 1e-9,
        f"error_rate is {got['error_rate']}: 1 error in 5 predictions",
    )
    expect(
        abs(got["cache_hit_rate"] - 0.5) < 1e-9,
        f"cache_hit_rate is {got['cache_hit_rate']}: 2 hits among 4 answers served",
    )
    expect(
        abs(got["total_cost"] - 0.04) < 1e-12 and abs(got["cost_per_answer"] - 0.01) < 1e-12,
        f"total_cost {got['total_cost']}, cost_per_answer {got['cost_per_answer']} (expected 0.04 "
        "over 4 answers)",
    )
    expect(
        abs(got["cost_saved_by_cache"] - 0.04) < 1e-12,
        f"cost_saved_by_cache is {got['cost_saved_by_cache']}: 2 hits × the mean paid answer "
        "(0.02)",
    )
    expect(
        abs(got["confident_share"] - 2 / 3) < 1e-9,
        f"confident_share is {got['confident_share']}: 2 of the 3 answers with a confidence are ≥ "
        "0.7",
    )
    expect(abs(got["mean_quality"] - 2 / 3) < 1e-9, f"mean_quality is {got['mean_quality']}")
    empty = _call("`business_metrics([])`", business_metrics, [])
    expect(
        empty["answers_served"] == 0
        and empty["cost_per_answer"] == 0.0
        and empty["confident_share"] is None,
        f"with no observations got {empty} — guard every division",
    )
    return "served, errors, hits, cost per answer, cache savings and confident share all add up."


# -- Task 4 -------------------------------------------------------------------------------------
@ex.task(
    "detector",
    "Task 4 · adaptive detector",
    points=3,
    needs=("AdaptiveDetector",),
    hints=(
        "Count the value (`self.seen += 1`); the very first one only sets `self.mean` and returns "
        "False.",
        "`diff = value - self.mean`; `z = diff / self.spread` (when the spread is 0, z is 0 for "
        "no change, "
        "±inf otherwise); store it in `self.last_z`.",
        "`anomalous = self.seen > self.warmup and (z > self.threshold if self.direction == 'up' "
        "else "
        "z < -self.threshold)`; only when not anomalous: `self.mean += self.alpha * diff` and "
        "`self.var = (1 - self.alpha) * (self.var + self.alpha * diff * diff)`.",
    ),
)
def check_detector(AdaptiveDetector: type) -> str:
    detector = _call(
        "`AdaptiveDetector(...)`",
        AdaptiveDetector,
        alpha=0.1,
        threshold=4.0,
        warmup=10,
        min_spread=0.001,
    )
    normal = [0.05 + 0.004 * ((i * 7) % 5 - 2) / 2 for i in range(40)]
    flagged = [i for i, v in enumerate(normal) if _call("`update`", detector.update, v)]
    expect(
        flagged is not None and not flagged,
        f"normal jitter (±4 ms around 50 ms) was flagged at values {flagged}",
    )
    mean = detector.mean
    expect(
        _call("`update`", detector.update, 0.5) is True,
        "a 500 ms value after 50 ± 4 ms was not flagged",
    )
    expect(
        detector.mean == mean,
        f"the baseline moved from {mean} to {detector.mean} on an anomalous value — "
        "update it only with normal values",
    )
    early = AdaptiveDetector(warmup=10)
    expect(
        not any(early.update(v) for v in [1.0, 1.0, 50.0]), "a value was flagged during the warm-up"
    )
    down = AdaptiveDetector(direction="down", warmup=3, min_spread=0.05)
    for v in (0.8, 0.8, 0.8, 0.8):
        down.update(v)
    expect(down.update(0.99) is False, "direction='down' flagged a rise in quality")
    expect(down.update(0.2) is True, "direction='down' missed a drop from 0.8 to 0.2")
    ewma = AdaptiveDetector(alpha=0.5, warmup=0, min_spread=10.0)
    ewma.update(1.0)
    ewma.update(3.0)
    expect(
        abs(ewma.mean - 2.0) < 1e-9 and abs(ewma.var - 1.0) < 1e-9,
        f"after 1.0 then 3.0 with alpha=0.5: mean {ewma.mean}, var {ewma.var} (expected 2.0 and "
        "1.0)",
    )
    try:
        AdaptiveDetector().update(math.nan)
    except ValueError:
        pass
    else:
        raise AssertionError("`update(nan)` should raise ValueError, not return a verdict")
    return (
        "jitter passes, spikes and drops are flagged in the right direction, and incidents don't "
        "move the baseline."
    )


# -- Task 5 -------------------------------------------------------------------------------------
@ex.task(
    "alerts",
    "Task 5 · alert manager",
    points=2,
    needs=("AlertManager",),
    hints=(
        "Per rule keep two counters in `state` (given): `streak` of anomalous verdicts in a row "
        "and `calm` "
        "normal ones while an alert is open.",
        "Anomalous: if `rule in self.active`, increase its `count` and return None "
        "(de-duplication); else "
        "open a `wbm.Alert` once `state['streak'] >= self.pending`, store it in "
        "`self.active[rule]` and "
        "`self.history`, `self.dispatcher.send(alert)` and return it.",
        "Normal: `streak = 0`; with an open alert, `calm += 1`; at `calm >= self.clear_after` set "
        "`status='resolved'`, `resolved_at=self.clock()`, delete it from `self.active`, send and "
        "return it.",
    ),
)
def check_alerts(AlertManager: type) -> str:
    sent: list[dict] = []
    dispatcher = AlertDispatcher([CallbackSink(sent.append)])
    manager = _call(
        "`AlertManager(...)`", AlertManager, dispatcher, pending=2, clear_after=2, clock=lambda: 7.0
    )
    verdicts = [True, False, True, True, True, True, False, True, False, False, False]
    for verdict in verdicts:
        _call("`evaluate`", manager.evaluate, "slow", verdict, severity="critical", value=2.0)
    dispatcher.flush(5)
    statuses = [a.get("status") for a in sent]
    expect(
        statuses == ["firing", "resolved"],
        f"verdicts {['A' if v else '.' for v in verdicts]} (pending=2, clear_after=2) sent "
        f"{statuses} — "
        "expected one 'firing' and one 'resolved'",
    )
    expect(
        sent[0].get("severity") == "critical" and sent[0].get("rule") == "slow",
        f"the alert sent was {sent[0]} — pass `rule` and `severity` into `wbm.Alert`",
    )
    expect(
        not manager.active, f"after the incident ended, `active` still holds {list(manager.active)}"
    )
    expect(
        len(manager.history) == 1 and manager.history[0].count == 5,
        f"history {manager.history} — one incident with count 5 (every anomalous verdict during "
        "it)",
    )

    class SlowSink:
        def deliver(self, alert: dict) -> None:
            time.sleep(0.5)

    slow = AlertManager(AlertDispatcher([SlowSink()]), pending=1)
    start = time.perf_counter()
    for i in range(4):
        slow.evaluate(f"rule{i}", True)
    elapsed = time.perf_counter() - start
    expect(
        elapsed < 0.4,
        f"4 alerts to a 0.5 s sink took {elapsed:.2f} s — send through `self.dispatcher`, "
        "never call a sink yourself",
    )
    return (
        "one alert per incident, confirmed, resolved when it ends, and sending never waits for a "
        "sink."
    )


hint, check_all = ex.hint, ex.check_all
