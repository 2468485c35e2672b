"""Exercise 6's support package: usage capture, prices, labels, the scenario provider, system
sampling, bounded memory, export and dashboards."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from pathlib import Path
from typing import Any

import dspy
import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from answer_key import load_solutions  # noqa: E402 (tools/ is on sys.path: see conftest)

import dspy_workbook as wb  # noqa: E402
from dspy_workbook import monitoring as wbm  # noqa: E402
from dspy_workbook.data import labelled_questions  # noqa: E402
from dspy_workbook.threads import run_async  # noqa: E402


@pytest.fixture(scope="module")
def key() -> Any:
    return load_solutions("06_monitoring", "collector", "stats", "business")


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
    table = key.metric_stats(observations)
    assert table.loc["latency_ms", "count"] == 30 and table.loc["quality", "count"] == 30
    money = key.business_metrics(observations)
    assert money["answers_served"] == 30 and money["cost_per_answer"] > 0


def test_dashboard_draws_every_panel(key: Any) -> None:
    sampler = wbm.SystemSampler(interval=0.01)
    with sampler:
        observations = _observations(key)
    fig = wbm.dashboard_figure(observations, sampler.frame(), marks=[(5, "fault")])
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
