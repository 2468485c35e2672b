"""Exercise 6's support package: usage capture, the collector's given half, prices, labels, the
scenario provider, the report, alert management, system sampling, bounded memory, time order,
export and dashboards."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import threading
import time
from pathlib import Path
from typing import Any

import dspy
import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

import dspy_workbook as wb  # noqa: E402
from dspy_workbook import monitoring as wbm  # noqa: E402
from dspy_workbook.data import labelled_questions  # noqa: E402
from dspy_workbook.threads import run_async  # noqa: E402
from tools.answer_key import load_solutions  # noqa: E402


@pytest.fixture(scope="module")
def key() -> Any:
    return load_solutions("06_monitoring", "collector")


@pytest.fixture(autouse=True)
def _json_adapter():
    with dspy.context(adapter=dspy.JSONAdapter()):
        yield


# -- per-call usage ------------------------------------------------------------------------------
class Recorder(dspy.utils.callback.BaseCallback):
    def __init__(self) -> None:
        self.open: dict[str, wbm.CallUsage] = {}
        self.done: list[wbm.CallUsage] = []

    def on_lm_start(self, call_id, instance, inputs):
        self.open[call_id] = wbm.CallUsage.begin()

    def on_lm_end(self, call_id, outputs, exception=None):
        self.done.append(self.open.pop(call_id).end(exception))


def test_call_usage_captures_each_call_and_spots_cache_hits() -> None:
    recorder = Recorder()
    lm = wb.sim_lm(latency=0.0)
    with dspy.context(lm=lm, callbacks=[recorder]):
        dspy.Predict("question -> answer")(question="usage once")
        dspy.Predict("question -> answer")(question="usage once")
    first, second = recorder.done
    assert first.input_tokens > 0 and first.output_tokens > 0 and not first.cache_hit
    assert second.cache_hit and second.input_tokens == 0
    assert "hit" in repr(second)


def test_call_usage_still_feeds_an_outer_usage_tracker() -> None:
    recorder = Recorder()
    with (
        dspy.context(lm=wb.sim_lm(latency=0.0, cache=False), callbacks=[recorder]),
        dspy.track_usage() as outer,
    ):
        dspy.Predict("question -> answer")(question="outer tracker")
    total = outer.get_total_tokens()["sim/course-provider"]
    assert total["prompt_tokens"] == recorder.done[0].input_tokens > 0


def test_call_usage_is_per_call_under_threads_and_asyncio() -> None:
    recorder = Recorder()
    lm = wb.sim_lm(latency=0.05, cache=False)
    questions = [f"{'long ' * i}question {i}" for i in range(8)]  # different prompt sizes

    def ask(q: str) -> None:
        with dspy.context(lm=lm, callbacks=[recorder], adapter=dspy.JSONAdapter()):
            dspy.Predict("question -> answer")(question=q)

    threads = [threading.Thread(target=ask, args=(q,)) for q in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    alone = Recorder()
    for q in questions:
        with dspy.context(lm=lm, callbacks=[alone]):
            dspy.Predict("question -> answer")(question=q)
    assert sorted(u.input_tokens for u in recorder.done) == sorted(
        u.input_tokens for u in alone.done
    )

    concurrent = Recorder()

    async def many() -> None:
        with dspy.context(lm=lm, callbacks=[concurrent], adapter=dspy.JSONAdapter()):
            await asyncio.gather(
                *(dspy.Predict("question -> answer").acall(question=q) for q in questions)
            )

    run_async(many, timeout=20)
    assert sorted(u.input_tokens for u in concurrent.done) == sorted(
        u.input_tokens for u in alone.done
    )


def test_call_usage_records_an_error() -> None:
    recorder = Recorder()
    with dspy.context(
        lm=wb.sim_lm(latency=0.0, error_rate=1.0, num_retries=0), callbacks=[recorder]
    ):
        with pytest.raises(dspy.LMError):
            dspy.Predict("question -> answer")(question="fails")
    assert recorder.done[0].error is not None and not recorder.done[0].cache_hit


# -- prices --------------------------------------------------------------------------------------
def test_cost_is_tokens_times_the_price_table() -> None:
    assert wbm.answer_cost("openai/gpt-4o-mini", 1_000_000, 0) == pytest.approx(0.15)
    assert wbm.answer_cost("openai/gpt-4o-mini", 1000, 2000) == pytest.approx(
        (1000 * 0.15 + 2000 * 0.60) / 1e6
    )
    assert wbm.answer_cost("local/smollm2-135m-instruct", 10_000, 10_000) == 0.0
    with pytest.raises(KeyError, match="PRICES"):
        wbm.answer_cost("acme/unknown-model", 1, 1)
    with pytest.raises(ValueError):
        wbm.answer_cost("openai/gpt-4o-mini", -1, 0)


# -- labels and the scenario provider ------------------------------------------------------------
def test_labelled_quality_uses_the_workbook_set_and_aliases() -> None:
    quality = wbm.LabelledQuality()
    assert len(quality.examples) == len(labelled_questions())
    hamlet = next(ex for ex in labelled_questions() if "Hamlet" in ex.question)
    assert (
        quality({"question": hamlet.question}, dspy.Prediction(answer="It was Shakespeare.")) == 1.0
    )
    assert quality({"question": hamlet.question.upper()}, dspy.Prediction(answer="Marlowe")) == 0.0
    assert quality({"question": "not in the set"}, dspy.Prediction(answer="x")) is None
    assert quality({"question": hamlet.question}, None) is None


def test_scenario_answers_mostly_right_and_faults_switch_on_and_off() -> None:
    lm = wbm.scenario_lm(latency=0.0, jitter=0.0, accuracy=0.8)
    quality = wbm.LabelledQuality()
    program = dspy.Predict("question -> answer, confidence: float")
    questions = [ex.question for ex in labelled_questions()]
    with dspy.context(lm=lm):
        scores = [quality({"question": q}, program(question=q)) for q in questions]
        assert 0.6 <= sum(scores) / len(scores) <= 0.95
        again = [quality({"question": q}, program(question=q)) for q in questions]
        assert again == scores, "the scenario is deterministic"
        lm.engine.faults.degraded = True
        assert all(quality({"question": q}, program(question=q)) == 0.0 for q in questions[:10])
        lm.engine.faults.clear()
        lm.engine.faults.extra_latency = 0.1
        started = time.perf_counter()
        answer = program(question=questions[0])
        assert time.perf_counter() - started >= 0.1
        assert 0.0 <= answer.confidence <= 1.0
    assert lm.engine.stats.calls == 2 * len(questions) + 11


def test_scenario_async_path_has_the_same_faults() -> None:
    lm = wbm.scenario_lm(latency=0.0, jitter=0.0)
    lm.engine.faults.extra_latency = 0.1

    async def one() -> float:
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            started = time.perf_counter()
            await dspy.Predict("question -> answer").acall(
                question="What is the capital of France?"
            )
            return time.perf_counter() - started

    assert run_async(one, timeout=10) >= 0.1


def test_scenario_refuses_a_bad_accuracy() -> None:
    with pytest.raises(ValueError):
        wbm.scenario_lm(accuracy=1.5)


# -- memory stays bounded ------------------------------------------------------------------------
def test_collector_memory_is_bounded_and_per_call_state_is_released(key: Any) -> None:
    collector = key.MetricsCollector(capacity=25)
    lm = wb.sim_lm(latency=0.0, cache=False)
    with dspy.context(lm=lm, callbacks=[collector]):
        for i in range(300):
            dspy.Predict("question -> answer")(question=f"bounded {i}")
    with dspy.context(
        lm=wb.sim_lm(latency=0.0, error_rate=1.0, num_retries=0), callbacks=[collector]
    ):
        for i in range(20):
            with pytest.raises(dspy.LMError):
                dspy.Predict("question -> answer")(question=f"failing {i}")
    assert len(collector.observations) == 25 and collector.observations.maxlen == 25
    assert collector.totals["predictions"] == 320 and collector.totals["errors"] == 20
    assert collector._open == {} and collector._lm_calls == {}, "per-call state must not pile up"
    assert all(o.error for o in list(collector.observations)[-20:])


def test_system_sampler_is_bounded_and_reports_health() -> None:
    sampler = wbm.SystemSampler(interval=0.01, capacity=5)
    with sampler:
        time.sleep(0.2)
    assert len(sampler.samples) == 5
    frame = sampler.frame()
    assert {
        "cpu_percent",
        "system_cpu_percent",
        "rss_mb",
        "system_memory_percent",
        "threads",
        "open_files",
    } <= set(frame)
    last = sampler.samples[-1]
    assert (
        last.rss_mb > 10
        and last.threads >= 1
        and last.open_files >= 0
        and 0 <= last.system_memory_percent <= 100
    )
    assert sampler._thread is None
    with pytest.raises(ValueError):
        wbm.SystemSampler(interval=0)


def test_live_view_keeps_a_bounded_history() -> None:
    view = wbm.LiveView(every=1000, window=5)
    for i in range(500):
        view.update(wbm.Observation(at=float(i), latency=0.01))
    assert len(view.seen) <= 50
    view.refresh()
    assert "500" in view.label.value and "p95" in view.label.value


# -- export and charts ---------------------------------------------------------------------------
def _observations(key: Any, n: int = 20) -> list[wbm.Observation]:
    collector = key.MetricsCollector(quality=wbm.LabelledQuality())
    with dspy.context(lm=wbm.scenario_lm(latency=0.0), callbacks=[collector]):
        wbm.run_workload(dspy.Predict("question -> answer"), wbm.workload_questions(n))
    return list(collector.observations)


def test_export_to_parquet_and_csv_round_trips(key: Any, tmp_path: Path) -> None:
    frame = wbm.observations_frame(_observations(key))
    frame.to_parquet(tmp_path / "o.parquet")
    frame.to_csv(tmp_path / "o.csv")
    back = pd.read_parquet(tmp_path / "o.parquet")
    assert len(back) == 20 and back["latency"].tolist() == frame["latency"].tolist()
    assert str(back.index.dtype).startswith("datetime64") and back["input_tokens"].dtype.kind == "i"
    assert len(pd.read_csv(tmp_path / "o.csv")) == 20


def test_statistics_and_business_metrics_on_real_predictions(key: Any) -> None:
    observations = _observations(key, 30)
    table = wbm.metric_stats(observations)
    assert table.loc["latency_ms", "count"] == 30 and table.loc["quality", "count"] == 30
    money = wbm.business_metrics(observations)
    assert money["answers_served"] == 30 and money["cost_per_answer"] > 0


def test_dashboard_draws_every_panel_and_is_shown_once(key: Any) -> None:
    """`display(fig)` shows it; pyplot must not hold it too, or Jupyter's inline backend draws
    it a second time at the end of the cell (the stored outputs had two images)."""
    from matplotlib import pyplot as plt

    sampler = wbm.SystemSampler(interval=0.01)
    with sampler:
        observations = _observations(key)
    open_before = plt.get_fignums()
    fig = wbm.dashboard_figure(observations, sampler.frame(), marks=[(5, "fault")])
    assert plt.get_fignums() == open_before, "the dashboard is left open in pyplot"
    for ax in fig.axes[:3]:  # legends beside the plot, where they cover no data
        assert ax.get_legend() is not None and ax.get_legend().get_bbox_to_anchor().x0 > 0
    assert [ax.get_title() for ax in fig.axes[:4]] == [
        "Latency",
        "Errors and cache hits",
        "Answer quality",
        "System health",
    ]
    with pytest.raises(ValueError):
        wbm.dashboard_figure([])


def test_reported_confidence_is_clamped_and_optional() -> None:
    assert wbm.reported_confidence(dspy.Prediction(answer="a", confidence=0.7)) == 0.7
    assert wbm.reported_confidence(dspy.Prediction(answer="a", confidence="1.5")) == 1.0
    assert wbm.reported_confidence(dspy.Prediction(answer="a", confidence="high")) is None
    assert wbm.reported_confidence(dspy.Prediction(answer="a")) is None
    assert wbm.reported_confidence(dspy.Prediction(answer="a", confidence=math.nan)) is None


def test_webhook_sink_refuses_a_non_http_url() -> None:
    with pytest.raises(ValueError):
        wbm.WebhookSink("file:///etc/passwd")


# -- OpenTelemetry -------------------------------------------------------------------------------
def test_opentelemetry_spans_form_one_tree_with_usage_and_errors() -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import StatusCode

    exporter = InMemorySpanExporter()
    spans = wbm.OpenTelemetrySpans(exporter)
    with dspy.context(lm=wb.sim_lm(latency=0.0, cache=False), callbacks=[spans]):
        dspy.ChainOfThought("question -> answer")(question="traced with OpenTelemetry")
    finished = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    roots = [s for s in finished if s.parent is None]
    assert [r.name for r in roots] == ["module ChainOfThought"]
    lm_span = next(s for s in finished if s.attributes["dspy.kind"] == "lm")
    assert by_id[lm_span.parent.span_id].name == "module Predict"
    assert lm_span.attributes["gen_ai.usage.input_tokens"] > 0
    assert lm_span.attributes["gen_ai.request.model"] == "sim/course-provider"
    assert {s.attributes["dspy.kind"] for s in finished} == {"module", "lm", "format", "parse"}
    assert len({s.context.trace_id for s in finished}) == 1
    exporter.clear()
    failing = wb.sim_lm(latency=0.0, error_rate=1.0, num_retries=0)
    with dspy.context(lm=failing, callbacks=[spans]), pytest.raises(dspy.LMError):
        dspy.Predict("question -> answer")(question="fails")
    errors = [s for s in exporter.get_finished_spans() if s.status.status_code == StatusCode.ERROR]
    assert {s.attributes["dspy.kind"] for s in errors} == {"module", "lm"}
    assert not spans._open
    spans.shutdown()


# -- the collector's given half ------------------------------------------------------------------
class _Reader(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = dspy.Predict("question, context -> answer")

    def forward(self, question: str, context: str = "") -> dspy.Prediction:
        return self.inner(question=question, context=context)


def test_named_inputs_binds_positional_and_keyword_arguments_without_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    predict = dspy.Predict("question -> answer")
    reader = _Reader()
    with caplog.at_level(logging.WARNING):
        assert wbm.named_inputs(predict, {"args": (), "kwargs": {"question": "q"}}) == {
            "question": "q"
        }
        assert wbm.named_inputs(reader, {"args": ("q",), "kwargs": {"context": "c"}}) == {
            "question": "q",
            "context": "c",
        }
        assert wbm.named_inputs(reader, {"args": ("q", "c", "extra"), "kwargs": {}}) == {}
        assert wbm.named_inputs(object(), {"args": ("q",), "kwargs": {"k": 1}}) == {"k": 1}
        assert wbm.named_inputs(predict, None) == {}
    assert not caplog.records, caplog.text  # DSPy warns when `module.forward` is fetched


def test_collector_base_records_listens_and_shields_user_code() -> None:
    heard: list = []

    def deaf(observation: wbm.Observation) -> None:
        raise RuntimeError("listener bug")

    base = wbm.CollectorBase(capacity=2, listeners=[heard.append, deaf])
    for i in range(3):
        base.record(wbm.Observation(latency=0.1, error="X" if i == 0 else None, cache_hit=i == 2))
    assert len(base.observations) == 2 and len(heard) == 3
    assert base.totals == {"predictions": 3, "errors": 1, "cache_hits": 1, "hook_errors": 3}
    assert base.safely(None) is None and base.safely(lambda: 1 / 0) is None
    for bad in (0, -1, 2.5, True, "10"):
        with pytest.raises(ValueError, match="capacity"):
            wbm.CollectorBase(capacity=bad)


def test_prediction_state_turns_its_counts_into_an_observation() -> None:
    state = wbm.PredictionState(started=0.0, inputs={})
    assert (
        state.observation(latency=0.5).cost == 0.0 and not state.observation(latency=0.5).cache_hit
    )
    recorder = Recorder()
    with dspy.context(lm=wb.sim_lm(latency=0.0), callbacks=[recorder]):
        dspy.Predict("question -> answer")(question="state twice")
        dspy.Predict("question -> answer")(question="state twice")
    miss, hit = recorder.done
    miss.model = hit.model = "sim/course-provider"  # what `CollectorBase.on_lm_start` passes
    state.add(miss)
    state.add(hit)
    obs = state.observation(latency=0.2, error=None, quality=1.0, confidence=0.5)
    assert (obs.lm_calls, obs.input_tokens, obs.cache_hit) == (2, miss.input_tokens, False)
    assert obs.cost == pytest.approx(
        wbm.answer_cost("sim/course-provider", miss.input_tokens, miss.output_tokens)
    )
    only_hit = wbm.PredictionState(started=0.0, inputs={})
    only_hit.add(hit)
    assert only_hit.observation(latency=0.0).cache_hit
    unknown = wbm.PredictionState(started=0.0, inputs={}, model="acme/unknown", input_tokens=5)
    assert math.isnan(unknown.cost), "an unpriced model's cost is unknown (NaN), not 0"


# -- time order: a wall clock that steps back ----------------------------------------------------
def test_observations_are_ordered_by_the_monotonic_clock_when_the_wall_clock_steps_back() -> None:
    """NTP or a resume can move `time.time()` back; before, the rolling-window cell raised
    `ValueError: index values must be monotonic`."""
    walls = [1000.0, 1001.0, 940.0, 941.0, 942.5]  # stepped back a minute after the second
    clocks = [10.0, 11.0, 12.0, 13.0, 14.5]
    observations = [
        wbm.Observation(latency=0.1 * (i + 1), at=a, clock=c)
        for i, (a, c) in enumerate(zip(walls, clocks, strict=True))
    ]
    frame = wbm.observations_frame(observations[2:] + observations[:2])  # recorded out of order
    assert frame.index.is_monotonic_increasing
    assert frame["clock"].tolist() == clocks and frame["at"].tolist() == walls  # wall time kept
    assert frame.index[-1] == pd.Timestamp(942.5, unit="s", tz="UTC")  # anchored at the latest
    window = frame["latency"].rolling("2s").count()
    assert window.tolist() == [1.0, 2.0, 2.0, 2.0, 2.0]
    assert wbm.observations_frame([]).empty


def test_system_samples_are_ordered_by_the_monotonic_clock_too() -> None:
    sampler = wbm.SystemSampler(interval=1.0)
    base = wbm.sample_system()
    for wall, clock in ((500.0, 3.0), (100.0, 1.0), (200.0, 2.0)):
        sampler.samples.append(dataclasses.replace(base, at=wall, clock=clock))
    frame = sampler.frame()
    assert frame.index.is_monotonic_increasing and frame["clock"].tolist() == [1.0, 2.0, 3.0]
    assert frame["cpu_percent"].rolling("2s").mean().notna().all()


# -- the report ----------------------------------------------------------------------------------
def test_metric_stats_agrees_with_the_latency_summary_and_skips_what_is_unknown() -> None:
    obs = [
        wbm.Observation(
            latency=0.1 * (i + 1), input_tokens=10 * i, output_tokens=5, quality=i % 2, cost=0.001
        )
        for i in range(10)
    ]
    table = wbm.metric_stats(obs)
    assert list(table.columns) == wbm.STAT_COLUMNS
    lat = table.loc["latency_ms"]
    assert lat["count"] == 10 and lat["median"] == pytest.approx(550.0)
    assert lat["p95"] == pytest.approx(float(np.percentile([100 * (i + 1) for i in range(10)], 95)))
    assert (lat["min"], lat["max"]) == pytest.approx((100.0, 1000.0))
    assert table.loc["input_tokens", "stdev"] == pytest.approx(
        float(np.std([10 * i for i in range(10)], ddof=1))
    )
    assert table.loc["quality", "mean"] == pytest.approx(0.5)
    one = wbm.metric_stats([wbm.Observation(latency=0.2, quality=None, cost=math.nan)])
    assert "quality" not in one.index and "cost_usd" not in one.index
    assert one.loc["latency_ms", "stdev"] == 0.0
    assert wbm.metric_stats([]).empty and list(wbm.metric_stats([]).columns) == wbm.STAT_COLUMNS


def test_business_metrics_add_up_and_guard_every_division() -> None:
    obs = [
        wbm.Observation(latency=0.1, cost=0.002, confidence=0.9, quality=1.0),
        wbm.Observation(latency=0.1, cost=0.004, confidence=0.5, quality=0.0),
        wbm.Observation(latency=0.0, cost=0.0, cache_hit=True, confidence=0.9),
        wbm.Observation(latency=0.1, error="ServerError"),
        wbm.Observation(latency=0.1, cost=math.nan),
    ]
    money = wbm.business_metrics(obs)
    assert money["answers_served"] == 4 and money["error_rate"] == pytest.approx(0.2)
    assert money["cache_hit_rate"] == pytest.approx(0.25)
    assert money["total_cost"] == pytest.approx(0.006), "an unknown price (NaN) is skipped"
    assert money["cost_per_answer"] == pytest.approx(0.0015)
    assert money["cost_saved_by_cache"] == pytest.approx(0.003)
    assert money["confident_share"] == pytest.approx(2 / 3)
    assert money["mean_quality"] == pytest.approx(0.5)
    assert wbm.business_metrics(obs, confidence_threshold=0.4)["confident_share"] == 1.0
    empty = wbm.business_metrics([])
    assert empty["answers_served"] == 0 and empty["error_rate"] == 0.0
    assert empty["confident_share"] is None and empty["mean_quality"] is None


# -- alert management ----------------------------------------------------------------------------
def test_alert_manager_confirms_deduplicates_and_resolves() -> None:
    got: list[dict] = []
    dispatcher = wbm.AlertDispatcher([wbm.CallbackSink(got.append)])
    manager = wbm.AlertManager(dispatcher, pending=2, clear_after=3, clock=lambda: 42.0)
    verdicts = [False, True, True, True, True, False, False, False, False]
    sent = [manager.evaluate("slow", v, severity="critical", value=1.5) for v in verdicts]
    assert dispatcher.flush(5)
    assert [s is not None for s in sent] == [
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
    assert [(a["status"], a["severity"], a["rule"]) for a in got] == [
        ("firing", "critical", "slow"),
        ("resolved", "critical", "slow"),
    ]
    assert not manager.active and manager.history[0].count == 4
    assert (manager.history[0].started_at, manager.history[0].resolved_at) == (42.0, 42.0)
    got.clear()
    other = wbm.AlertManager(dispatcher, pending=1, clear_after=2)
    for v in [True, False, True, False, False, True]:
        other.evaluate("a", v)
    other.evaluate("b", True, severity="warning")
    assert dispatcher.flush(5)
    assert [(a["rule"], a["status"]) for a in got] == [
        ("a", "firing"),
        ("a", "resolved"),
        ("a", "firing"),
        ("b", "firing"),
    ], "one normal verdict between anomalies does not resolve; rules are independent"
    dispatcher.close()
    with pytest.raises(ValueError):
        wbm.AlertManager(pending=0)


def test_alert_managers_without_a_dispatcher_share_one_delivery_thread() -> None:
    """Re-running a cell that makes `AlertManager()` must not start a thread each time."""
    first = wbm.AlertManager()
    before = threading.active_count()
    managers = [wbm.AlertManager(pending=1) for _ in range(50)]
    assert all(m.dispatcher is first.dispatcher for m in managers)
    assert threading.active_count() <= before + 1


def test_sending_an_alert_never_waits_for_a_sink() -> None:
    class Slow:
        def deliver(self, alert: dict) -> None:
            time.sleep(0.5)

    manager = wbm.AlertManager(wbm.AlertDispatcher([Slow()]), pending=1)
    started = time.perf_counter()
    for i in range(5):
        manager.evaluate(f"rule{i}", True)
    assert time.perf_counter() - started < 0.4  # five sends; delivering them takes 2.5 s
    manager.dispatcher.close(timeout=0.1)


def test_batch_means_give_one_value_per_full_batch() -> None:
    batches = wbm.BatchMeans(3)
    got = [batches.add(v) for v in (1.0, None, 0.0, 1.0, 1.0, 1.0, 1.0)]
    assert got == [None, None, None, pytest.approx(2 / 3), None, None, 1.0]
    with pytest.raises(ValueError):
        wbm.BatchMeans(0)


def test_fresh_cache_starts_empty_and_gives_the_old_cache_back() -> None:
    """The notebook's measurement shows 20 misses then 5 hits on every run, not only the first."""
    lm = wb.sim_lm(latency=0.0)
    program = dspy.Predict("question -> answer")
    question = f"fresh cache {time.time_ns()}"
    before = dspy.cache
    with dspy.context(lm=lm):
        program(question=question)
        with wbm.fresh_cache() as fresh:
            assert dspy.cache is fresh
            program(question=question)  # a miss again: the fresh cache is empty
            program(question=question)  # a hit in the fresh cache
        assert dspy.cache is before
        program(question=question)  # still in the old cache
    assert lm.engine.stats.calls == 2
