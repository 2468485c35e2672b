"""Exercise 6: faults injected through the simulated provider are flagged; normal jitter is not.

The collector and the detectors are the master's answers (`tools/answer_key.py`), wired as the
notebook's drill wires them: collector listener → detectors → `wbm.AlertManager` → sinks.
Detection delay is counted in requests after the injected fault; the benchmark prints it.
"""

from __future__ import annotations

import time
from typing import Any

import dspy
import pytest

from dspy_workbook import monitoring as wbm
from tools.answer_key import load_solutions  # noqa: E402

SLOW_FROM, DEGRADED_FROM, HEALTHY_FROM, TOTAL = 50, 80, 120, 150


@pytest.fixture(scope="module")
def key() -> Any:
    return load_solutions("06_monitoring", "collector", "detector")


class Pipeline:
    """The notebook's wiring: two detectors and an alert manager fed by the collector."""

    def __init__(self, key: Any, sinks: list) -> None:
        self.dispatcher = wbm.AlertDispatcher(sinks)
        self.latency_alerts = wbm.AlertManager(self.dispatcher, pending=3, clear_after=5)
        self.quality_alerts = wbm.AlertManager(self.dispatcher, pending=1, clear_after=2)
        self.latency = key.AdaptiveDetector(threshold=4.0, warmup=20, min_spread=0.01)
        self.quality = key.AdaptiveDetector(
            alpha=0.2, threshold=4.0, warmup=3, direction="down", min_spread=0.1
        )
        self.batches = wbm.BatchMeans(10)
        self.fired: dict[str, int] = {}  # rule -> request number when its alert opened
        self.collector = key.MetricsCollector(
            quality=wbm.LabelledQuality(), listeners=[self.observe]
        )

    def observe(self, obs: wbm.Observation) -> None:
        n = len(self.collector.observations) - 1
        sent = [
            self.latency_alerts.evaluate(
                "latency_spike", self.latency.update(obs.latency), value=obs.latency
            )
        ]
        batch = self.batches.add(obs.quality)
        if batch is not None:
            sent.append(
                self.quality_alerts.evaluate(
                    "quality_drop", self.quality.update(batch), severity="critical", value=batch
                )
            )
        for alert in sent:
            if alert is not None and alert.status == "firing":
                self.fired.setdefault(alert.rule, n)

    @property
    def active(self) -> dict:
        return {**self.latency_alerts.active, **self.quality_alerts.active}

    def run(self, lm: dspy.LM, schedule=None) -> list:
        program = dspy.Predict("question -> answer")
        with dspy.context(lm=lm, callbacks=[self.collector], adapter=dspy.JSONAdapter()):
            return wbm.run_workload(program, wbm.workload_questions(TOTAL), before=schedule)


def faults(lm: dspy.LM):
    def schedule(i: int) -> None:
        lm.engine.faults.clear()
        if SLOW_FROM <= i < DEGRADED_FROM:
            lm.engine.faults.extra_latency = 0.15
        if DEGRADED_FROM <= i < HEALTHY_FROM:
            lm.engine.faults.degraded = True

    return schedule


def test_injected_slowdown_and_quality_drop_each_raise_one_alert_that_resolves(key: Any) -> None:
    received: list[dict] = []
    pipeline = Pipeline(key, [wbm.CallbackSink(received.append)])
    lm = wbm.scenario_lm(latency=0.02, jitter=0.005)
    pipeline.run(lm, faults(lm))
    assert pipeline.dispatcher.flush(10)
    assert SLOW_FROM <= pipeline.fired["latency_spike"] < SLOW_FROM + 10, pipeline.fired
    assert DEGRADED_FROM <= pipeline.fired["quality_drop"] < DEGRADED_FROM + 20, pipeline.fired
    events = [(a["rule"], a["status"]) for a in received]
    assert (
        events.count(("latency_spike", "firing")) == 1
        and events.count(("latency_spike", "resolved")) == 1
    )
    assert (
        events.count(("quality_drop", "firing")) == 1
        and events.count(("quality_drop", "resolved")) == 1
    )
    assert len(events) == 4, events
    severities = {a["rule"]: a["severity"] for a in received}
    assert severities == {"latency_spike": "warning", "quality_drop": "critical"}
    assert not pipeline.active, "both incidents must be resolved once the faults are gone"
    pipeline.dispatcher.close()


def test_a_normal_run_with_jitter_raises_no_alert(key: Any) -> None:
    received: list[dict] = []
    pipeline = Pipeline(key, [wbm.CallbackSink(received.append)])
    pipeline.run(wbm.scenario_lm(latency=0.02, jitter=0.01, seed=3))
    assert pipeline.dispatcher.flush(10)
    assert received == [] and pipeline.fired == {}
    observed = pipeline.collector.observations
    assert len(observed) == TOTAL and all(o.error is None for o in observed)
    spread = max(o.latency for o in observed) - min(o.latency for o in observed)
    assert spread >= 0.01, "the normal run must really have jitter for this test to mean anything"
    pipeline.dispatcher.close()


def test_alerts_reach_a_webhook_on_loopback_and_a_slow_one_does_not_slow_predictions(
    key: Any,
) -> None:
    with wbm.WebhookReceiver(delay=1.0) as pager:
        pipeline = Pipeline(key, [wbm.WebhookSink(pager.url, timeout=5)])
        lm = wbm.scenario_lm(latency=0.0, jitter=0.0)

        def schedule(i: int) -> None:
            lm.engine.faults.clear()
            if 30 <= i < 60:
                lm.engine.faults.degraded = True

        started = time.perf_counter()
        pipeline.run(lm, schedule)
        elapsed = time.perf_counter() - started
        assert "quality_drop" in pipeline.fired
        assert elapsed < 1.0 + 0.02 * TOTAL, (
            f"the workload waited for a 1 s webhook ({elapsed:.2f} s)"
        )
        received = pager.wait_for(2, timeout=15)
    assert [(a["rule"], a["status"]) for a in received] == [
        ("quality_drop", "firing"),
        ("quality_drop", "resolved"),
    ]
    pipeline.dispatcher.close()


def test_a_failing_sink_never_breaks_a_prediction_and_is_reported(key: Any) -> None:
    class Broken:
        def deliver(self, alert: dict) -> None:
            raise ConnectionError("pager down")

    received: list[dict] = []
    pipeline = Pipeline(key, [Broken(), wbm.CallbackSink(received.append)])
    lm = wbm.scenario_lm(latency=0.0, jitter=0.0)

    def schedule(i: int) -> None:
        lm.engine.faults.degraded = 30 <= i < 60

    results = pipeline.run(lm, schedule)
    assert pipeline.dispatcher.flush(10)
    assert all(not isinstance(r, Exception) for r in results)
    assert len(received) == 2, "the sink after a broken one still gets every alert"
    assert (
        len(pipeline.dispatcher.failures) == 2 and "pager down" in pipeline.dispatcher.failures[0]
    )
    pipeline.dispatcher.close()


def test_a_webhook_that_is_down_costs_no_prediction_time(key: Any) -> None:
    with wbm.WebhookReceiver() as gone:
        url = gone.url  # the port is closed again when the block ends: connection refused
    dispatcher = wbm.AlertDispatcher([wbm.WebhookSink(url, timeout=1)])
    manager = wbm.AlertManager(dispatcher, pending=1)
    started = time.perf_counter()
    for i in range(50):
        manager.evaluate(f"rule{i}", True)
    assert time.perf_counter() - started < 0.5
    assert dispatcher.flush(30) and len(dispatcher.failures) == 50
    dispatcher.close()


def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    class Stuck:
        def deliver(self, alert: dict) -> None:
            time.sleep(0.5)

    dispatcher = wbm.AlertDispatcher([Stuck()], queue_size=2)
    started = time.perf_counter()
    sent = [dispatcher.send({"rule": str(i)}) for i in range(10)]
    assert time.perf_counter() - started < 0.2
    assert sent.count(False) == dispatcher.dropped >= 7
    dispatcher.close(timeout=0.1)


def test_a_hook_that_raises_loses_no_observation(key: Any) -> None:
    def bad_quality(inputs, prediction):
        raise RuntimeError("metric bug")

    def bad_listener(obs):
        raise RuntimeError("listener bug")

    collector = key.MetricsCollector(quality=bad_quality, listeners=[bad_listener])
    with dspy.context(
        lm=wbm.scenario_lm(latency=0.0), callbacks=[collector], adapter=dspy.JSONAdapter()
    ):
        answer = dspy.Predict("question -> answer")(question="What is the capital of France?")
    assert answer.answer
    assert len(collector.observations) == 1 and collector.observations[0].quality is None
    assert collector.totals["hook_errors"] == 2
