"""Exercise 6's support code under the probes of an adversarial review (issue 21).

Alert delivery leaks no thread when a cell re-creates its alert manager; a webhook delivery is
bounded as a whole (not per socket read); a slow sink does not delay the others; the Prometheus
exporter validates an observation once, before touching any metric, and never exports NaN.
Loopback only; every wait is bounded.
"""

from __future__ import annotations

import gc
import math
import re
import threading
import time

import pytest

from dspy_workbook import monitoring as wbm


def _threads_settle(limit: int, seconds: float = 10.0) -> int:
    """The thread count once it is at most `limit` (or what it is after `seconds`)."""
    deadline = time.monotonic() + seconds
    while threading.active_count() > limit and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    return threading.active_count()


# -- 6. no thread per re-run cell -----------------------------------------------------------------
def test_re_creating_the_alert_manager_200_times_leaks_no_thread() -> None:
    gc.collect()
    before = threading.active_count()
    for i in range(200):  # a notebook cell run 200 times, each alerting once
        manager = wbm.AlertManager(pending=1)
        manager.evaluate(f"rule{i}", True)
    del manager
    assert _threads_settle(before + 1) <= before + 1, threading.enumerate()[:5]


def test_re_creating_a_dispatcher_200_times_leaks_no_thread() -> None:
    gc.collect()
    before = threading.active_count()
    for _ in range(200):  # what the given AlertManager() used to build each time
        dispatcher = wbm.AlertDispatcher([wbm.LogSink()])
    del dispatcher
    assert _threads_settle(before + 1) <= before + 1, threading.enumerate()[:5]


def test_dispatchers_that_delivered_and_were_dropped_leave_no_thread() -> None:
    gc.collect()
    before = threading.active_count()
    got: list[dict] = []
    for i in range(50):
        dispatcher = wbm.AlertDispatcher([wbm.CallbackSink(got.append)])
        dispatcher.send(wbm.Alert(f"rule{i}", "warning"))
        assert dispatcher.flush(5)
    del dispatcher
    assert len(got) == 50
    assert _threads_settle(before + 1) <= before + 1, threading.enumerate()[:5]


def test_a_dispatcher_kept_alive_still_delivers_after_it_went_idle() -> None:
    got: list[dict] = []
    dispatcher = wbm.AlertDispatcher([wbm.CallbackSink(got.append)], idle_seconds=0.05)
    dispatcher.send(wbm.Alert("first", "warning"))
    assert dispatcher.flush(5)
    time.sleep(0.3)  # long past idle_seconds: the delivery thread has exited
    dispatcher.send(wbm.Alert("second", "warning"))
    assert dispatcher.flush(5)
    assert [a["rule"] for a in got] == ["first", "second"]
    dispatcher.close()


# -- 7. a delivery is bounded as a whole; one slow sink does not delay the others -----------------
def test_a_trickling_webhook_is_cut_at_the_delivery_timeout() -> None:
    outcome: dict[str, object] = {}

    with wbm.WebhookReceiver(trickle=0.3) as receiver:  # one byte every 0.3 s: ~30 s in all
        sink = wbm.WebhookSink(receiver.url, timeout=1.0)

        def deliver() -> None:
            started = time.perf_counter()
            try:
                sink.deliver({"rule": "r", "status": "firing"})
                outcome["result"] = "delivered"
            except Exception as exc:  # noqa: BLE001 (the test records what happened)
                outcome["result"] = exc
            outcome["seconds"] = time.perf_counter() - started

        worker = threading.Thread(target=deliver, daemon=True)
        worker.start()
        worker.join(10)  # the test's own bound: a per-read timeout would still be trickling
        assert not worker.is_alive(), "deliver(timeout=1) was still running after 10 s"
    print(f"delivery gave up after {outcome['seconds']:.2f} s")
    assert isinstance(outcome["result"], TimeoutError), outcome
    assert "1" in str(outcome["result"]) and receiver.url in str(outcome["result"])


def test_a_slow_sink_does_not_delay_the_others() -> None:
    release = threading.Event()

    class Stuck:
        def deliver(self, alert: dict) -> None:
            release.wait(20)

    fast: list[dict] = []
    dispatcher = wbm.AlertDispatcher([Stuck(), wbm.CallbackSink(fast.append)])
    try:
        for i in range(3):
            dispatcher.send(wbm.Alert(f"r{i}", "critical"))
        deadline = time.monotonic() + 5
        while len(fast) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [a["rule"] for a in fast] == ["r0", "r1", "r2"], fast
        assert not dispatcher.flush(0.1)  # the stuck sink still has work
    finally:
        release.set()
    assert dispatcher.flush(5)
    assert dispatcher.delivered == 6
    dispatcher.close()


def test_a_trickling_webhook_does_not_delay_a_callback_on_the_same_dispatcher() -> None:
    fast: list[dict] = []
    with wbm.WebhookReceiver(trickle=0.3) as receiver:
        dispatcher = wbm.AlertDispatcher(
            [wbm.WebhookSink(receiver.url, timeout=1.0), wbm.CallbackSink(fast.append)]
        )
        for i in range(3):
            dispatcher.send(wbm.Alert(f"r{i}", "warning"))
        deadline = time.monotonic() + 2
        while len(fast) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(fast) == 3, f"the callback had {len(fast)} of 3 alerts after 2 s"
        assert dispatcher.flush(10)  # three webhook deliveries, each cut at 1 s
        assert len(dispatcher.failures) == 3 and "TimeoutError" in dispatcher.failures[0]
        dispatcher.close()


def test_close_stops_every_delivery_thread() -> None:
    gc.collect()
    before = threading.active_count()
    dispatcher = wbm.AlertDispatcher([wbm.LogSink(), wbm.CallbackSink(lambda a: None)])
    dispatcher.send(wbm.Alert("r", "info"))
    dispatcher.close()
    assert _threads_settle(before) <= before
    assert not dispatcher.send(wbm.Alert("after close", "info"))


# -- 8. the Prometheus exporter: all or nothing, never NaN ----------------------------------------
GOOD = dict(at=0.0, latency=0.2, input_tokens=10, output_tokens=5, cost=0.001, model="m")


def _series(metrics: wbm.PrometheusMetrics) -> list[str]:
    """Every sample line except the rejection counter's own."""
    return [
        line
        for line in metrics.text().splitlines()
        if line and not line.startswith("#") and "rejected" not in line
    ]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"latency": math.nan}, "latency"),
        ({"latency": math.inf}, "latency"),
        ({"latency": -0.5}, "latency"),
        ({"latency": "0.2"}, "latency"),
        ({"input_tokens": -3}, "tokens"),
        ({"output_tokens": -1}, "tokens"),
        ({"input_tokens": 2.5}, "tokens"),
        ({"cost": math.inf}, "cost"),
        ({"cost": -0.01}, "cost"),
        ({"quality": math.nan}, "quality"),
        ({"quality": 1.5}, "quality"),
        ({"confidence": -0.1}, "confidence"),
        ({"confidence": math.inf}, "confidence"),
    ],
)
def test_a_bad_observation_changes_no_metric_and_is_counted(change, reason) -> None:
    metrics = wbm.PrometheusMetrics(process=False)
    assert metrics.observe(wbm.Observation(**GOOD)) is True
    before = _series(metrics)
    assert metrics.observe(wbm.Observation(**{**GOOD, **change})) is False
    assert _series(metrics) == before, "a rejected observation changed a metric"
    text = metrics.text()
    assert f'dspy_observations_rejected_total{{reason="{reason}"}} 1.0' in text, text
    assert not re.search(r"(?i)\bnan\b|[+-]inf\b", text.replace('le="+Inf"', ""))
    assert metrics.observe(wbm.Observation(**GOOD)) is True  # and the exporter goes on working
    assert 'dspy_predictions_total{model="m",status="ok"} 2.0' in metrics.text()


def test_an_unknown_price_is_unknown_cost_never_nan_and_agrees_with_business_metrics() -> None:
    business_metrics = wbm.business_metrics
    observations = [
        wbm.Observation(at=0.0, latency=0.1, input_tokens=100, output_tokens=20, cost=0.002,
                        model="m"),
        wbm.Observation(at=1.0, latency=0.1, input_tokens=100, output_tokens=20, cost=math.nan,
                        model="m"),
        wbm.Observation(at=2.0, latency=0.1, input_tokens=7, output_tokens=3, cost=math.nan,
                        model="mystery"),
    ]  # fmt: skip
    metrics = wbm.PrometheusMetrics(process=False)
    assert all(metrics.observe(o) for o in observations)
    text = metrics.text()
    assert "nan" not in text.lower(), text
    exported = sum(
        float(v) for v in re.findall(r"^dspy_cost_dollars_total\{[^}]*\} (\S+)$", text, re.M)
    )
    assert exported == pytest.approx(business_metrics(observations)["total_cost"]) == 0.002
    assert 'dspy_cost_unknown_total{model="mystery"} 1.0' in text
    assert 'dspy_cost_unknown_total{model="m"} 1.0' in text
    assert 'dspy_tokens_total{direction="input",model="mystery"} 7.0' in text
    assert 'dspy_predictions_total{model="m",status="ok"} 2.0' in text


def test_the_histogram_count_keeps_up_with_the_prediction_counter() -> None:
    metrics = wbm.PrometheusMetrics(process=False)
    for latency in (0.1, math.nan, 0.2, math.inf, -1.0, 0.3):
        metrics.observe(wbm.Observation(**{**GOOD, "latency": latency}))
    text = metrics.text()
    assert 'dspy_predictions_total{model="m",status="ok"} 3.0' in text
    assert 'dspy_prediction_latency_seconds_count{model="m"} 3.0' in text
    assert re.search(r'dspy_prediction_latency_seconds_sum\{model="m"\} 0\.6000', text), text
