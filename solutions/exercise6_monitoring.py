"""Answer key for 06_monitoring.ipynb — generated from source/ch07/06_monitoring.py by tools/build.py; do not edit.

Run: python solutions/exercise6_monitoring.py  (backend: $WORKBOOK_LM, default local)
"""

# # Exercise 6 — Monitoring and observability
import dspy_workbook as wb

lm = wb.setup()

import math
import time

import dspy
import pandas as pd
from IPython.display import display

from dspy_workbook import monitoring as wbm
from dspy_workbook.checks import ex6

# ## What the classic starter gets wrong
# ## Task 1 — a metrics collector on DSPy callbacks
class MetricsCollector(wbm.CollectorBase):
    """One `wbm.Observation` per top-level prediction, kept in a bounded ring buffer."""

    def on_lm_end(self, call_id: str, outputs, exception=None) -> None:
        usage = self.end_lm_call(call_id, exception)  # this call's tokens, cache hit and model
        state = self._current.get()  # the prediction running in *this* thread or task
        if usage is not None and state is not None:
            state.add(usage)

    def on_module_start(self, call_id: str, instance, inputs: dict) -> None:
        """A top-level module call starts a prediction; a nested one is part of it."""
        if self._current.get() is not None:
            return
        state = wbm.PredictionState(
            started=time.perf_counter(), inputs=wbm.named_inputs(instance, inputs)
        )
        state.token = self._current.set(state)
        self._open[call_id] = state

    def on_module_end(self, call_id: str, outputs, exception=None) -> None:
        """The top-level call ended: record its observation."""
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

ex6.check_collector(MetricsCollector)

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

# ## Measure real predictions
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

# ## Task 2 — anomaly detection that adapts
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

ex6.check_detector(AdaptiveDetector)

# Visible tests: normal jitter passes, a spike is flagged.
from dspy_workbook.checks.ex6 import stop_if_unfinished as _unfinished

_d = AdaptiveDetector(alpha=0.1, threshold=4.0, warmup=5)
_normal = [0.100, 0.104, 0.098, 0.101, 0.097, 0.103, 0.099, 0.102, 0.100, 0.098] * 3
with _unfinished("Task 2", "`AdaptiveDetector.update`"):
    _flags = [_d.update(_v) for _v in _normal]
assert not any(_flags), f"normal jitter was flagged at {[i for i, f in enumerate(_flags) if f]}"
_r = _d.update(0.5)
assert _r is True, f"a 500 ms value after 100 ± 4 ms: `update` returned {_r!r}"
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

# ## Incident drill: alerts and a dashboard
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

marks = [(50, "slowdown"), (80, "bad deploy"), (120, "fixed")]
display(wbm.dashboard_figure(drill.observations, drill_sampler.frame(), marks=marks))

# ## Going further (optional, ungraded)
# ### Alerts over HTTP, and a pager that is slow
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

# ### Three failures a review found, and the rules they teach
# ### Time windows: "how are we doing right now?"
frame = wbm.observations_frame(drill.observations)
rolling = pd.DataFrame(
    {
        "latency_ms_median": (frame["latency"] * 1000).rolling("1s").median(),
        "quality_mean": frame["quality"].astype(float).rolling("1s").mean(),
        "requests_in_window": frame["latency"].rolling("1s").count(),
    }
)
display(rolling.iloc[[40, 60, 100, 140]].round(3))

# ### Memory stays bounded
small = MetricsCollector(capacity=50)
with dspy.context(lm=wb.sim_lm(latency=0.0), callbacks=[small]):
    for i in range(200):  # simulated and instant: no progress bar needed
        dspy.Predict("question -> answer")(question=f"load test {i}")
print(f"kept {len(small.observations)} of {small.totals['predictions']} predictions")

# ### What a run costs
priced = MetricsCollector(quality=wbm.LabelledQuality())
confident_qa = dspy.Predict("question -> answer, confidence: float")
popular = [pairs[i % 7][0] for i in range(30)]  # 7 distinct questions, asked 30 times
cached = wbm.scenario_lm(latency=0.01, jitter=0.0, cache=True)
with dspy.context(lm=cached, callbacks=[priced], adapter=dspy.JSONAdapter()):
    wbm.run_workload(confident_qa, popular)
display(pd.Series(wbm.business_metrics(priced.observations), name="business").to_frame())

# ### A live view while a workload runs
# ### Long-term storage: files now, a time-series database later
from dspy_workbook.paths import workbook_dir

export_dir = workbook_dir("ex6")
exported = wbm.observations_frame(drill.observations)
exported.to_parquet(export_dir / "observations.parquet")
exported.to_csv(export_dir / "observations.csv")
back = pd.read_parquet(export_dir / "observations.parquet")
print(f"{len(back)} rows round-tripped through Parquet; columns: {', '.join(back.columns[:6])}, …")

# ### Prometheus: exposition, a real server, PromQL
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
