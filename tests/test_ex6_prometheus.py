"""Exercise 6, advanced part: the real Prometheus and promtool (Debian's `prometheus` package).

These tests need `prometheus` and `promtool` on PATH (`apt-get install -y prometheus`); CI
installs them, so they run there rather than skip. Everything listens on 127.0.0.1 only, each
server is stopped at the end, and every wait is bounded.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import dspy
import numpy as np
import pytest
import yaml

from dspy_workbook import monitoring as wbm
from tools.answer_key import load_solutions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "monitoring"
# Series Prometheus itself creates (not exported by a target) that a dashboard may query.
PROMETHEUS_BUILTINS = {"ALERTS", "ALERTS_FOR_STATE", "up", "scrape_duration_seconds"}
PROMQL_WORDS = {
    "sum",
    "by",
    "without",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "avg",
    "max",
    "min",
    "count",
    "offset",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "le",
    "bool",
    "topk",
    "bottomk",
    "abs",
    "clamp_min",
    "clamp_max",
    "delta",
    "deriv",
    "time",
    "vector",
}


def test_prometheus_and_promtool_are_installed(prometheus_binary, promtool_binary) -> None:
    # the fixtures (conftest) skip without them and fail under CI; wbm finds them on PATH
    for tool in ("prometheus", "promtool"):
        assert shutil.which(tool), f"{tool} missing: {wbm._promserver.INSTALL_HINT}"


def test_alerting_rules_are_valid(promtool_binary) -> None:
    result = wbm.promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout


def test_alerting_rules_pass_their_unit_tests(promtool_binary) -> None:
    result = wbm.promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_unit_tests_can_fail(tmp_path: Path, promtool_binary) -> None:
    """The unit tests have teeth: expecting no alert where one fires is reported as a failure."""
    tests = yaml.safe_load((CONFIG / "alerts_test.yml").read_text())
    tests["rule_files"] = [str(CONFIG / "alerts.yml")]
    tests["tests"][0]["alert_rule_test"][1]["exp_alerts"] = []
    broken = tmp_path / "broken_test.yml"
    broken.write_text(yaml.safe_dump(tests))
    result = wbm.promtool("test", "rules", str(broken))
    assert result.returncode != 0 and "DSPyLatencySpike" in result.stdout + result.stderr


def test_shipped_prometheus_config_is_valid(promtool_binary) -> None:
    result = wbm.promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def _served(count: int) -> list[wbm.Observation]:
    """`count` real predictions on the scenario provider, a quarter of them slowed down."""
    key = load_solutions("06_monitoring", "collector")
    collector = key.MetricsCollector(quality=wbm.LabelledQuality())
    lm = wbm.scenario_lm(latency=0.02, jitter=0.005)

    def schedule(i: int) -> None:
        lm.engine.faults.extra_latency = 0.12 if i >= 3 * count // 4 else 0.0

    with dspy.context(lm=lm, callbacks=[collector], adapter=dspy.JSONAdapter()):
        wbm.run_workload(
            dspy.Predict("question -> answer"), wbm.workload_questions(count), before=schedule
        )
    return list(collector.observations)


def _bucket(value: float) -> tuple[float, float]:
    edges = (0.0, *wbm.LATENCY_BUCKETS, float("inf"))
    return next((lo, hi) for lo, hi in zip(edges, edges[1:], strict=False) if lo < value <= hi)


def test_a_real_prometheus_scrapes_the_collector_and_promql_matches_what_was_served(
    prometheus_binary,
) -> None:
    observations = _served(40)
    metrics = wbm.PrometheusMetrics()
    for obs in observations:
        metrics.observe(obs)
    with (
        metrics.serve() as endpoint,
        wbm.PrometheusServer([endpoint.target], scrape_interval="1s") as server,
    ):
        count = server.wait_for("sum(dspy_predictions_total)", lambda v: v >= 40, timeout=30)
        assert count == 40
        assert server.value('sum(dspy_predictions_total{status="error"})') in (None, 0.0)
        p95 = server.value(
            "histogram_quantile(0.95, sum by (le) (dspy_prediction_latency_seconds_bucket))"
        )
        tokens = server.value('sum(dspy_tokens_total{direction="input"})')
        up = server.value('up{job="dspy"}')
        rules = [r["name"] for g in server.api("rules")["groups"] for r in g["rules"]]
    ordered = sorted(o.latency for o in observations)
    # numpy's p95 of 40 values sits between the 38th and 39th; both and Prometheus's bucketed
    # estimate must fall in the buckets those samples occupy.
    low, high = _bucket(ordered[36])[0], _bucket(ordered[39])[1]
    assert low <= p95 <= high, (p95, ordered[35:], float(np.percentile(ordered, 95)))
    assert _bucket(float(np.percentile(ordered, 95)))[0] >= low
    assert tokens == sum(o.input_tokens for o in observations)
    assert up == 1.0
    assert set(rules) == {
        "DSPyLatencySpike",
        "DSPyQualityDrop",
        "DSPyErrorRateHigh",
        "DSPyTargetDown",
    }


def test_prometheus_server_cleans_up(tmp_path: Path, prometheus_binary) -> None:
    server = wbm.PrometheusServer(["127.0.0.1:9"], scrape_interval="1s", rules=False)
    folder, url = server._dir, server.url
    server.close()
    assert not folder.exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/-/ready", timeout=2)


def test_metrics_registry_is_per_exporter_so_cells_can_run_twice() -> None:
    first, second = (
        wbm.PrometheusMetrics(),
        wbm.PrometheusMetrics(),
    )  # the global registry would raise
    first.observe(wbm.Observation(at=0.0, latency=0.1, model="m"))
    assert 'dspy_predictions_total{model="m",status="ok"} 1.0' in first.text()
    assert 'dspy_predictions_total{model="m"' not in second.text()


def test_exposition_over_http_is_what_text_returns() -> None:
    metrics = wbm.PrometheusMetrics(process=False)
    metrics.observe(
        wbm.Observation(
            at=0.0,
            latency=0.3,
            input_tokens=5,
            output_tokens=2,
            cost=0.01,
            quality=1.0,
            confidence=0.8,
            cache_hit=True,
            model="m",
        )
    )
    metrics.observe_system(wbm.sample_system())
    with metrics.serve() as endpoint:
        body = urllib.request.urlopen(endpoint.url, timeout=5).read().decode()
    assert 'dspy_cache_hits_total{model="m"} 1.0' in body
    assert 'dspy_cost_dollars_total{model="m"} 0.01' in body
    assert 'dspy_answer_quality_count{model="m"} 1.0' in body
    assert re.search(r"^dspy_process_threads \d", body, re.M)


def _exported_names(metrics: wbm.PrometheusMetrics) -> set[str]:
    """Every sample name the exposition holds once each kind of prediction has been seen."""
    for obs in (
        wbm.Observation(at=0.0, latency=0.1, quality=1.0, confidence=0.9, cost=0.01, model="m"),
        wbm.Observation(at=1.0, latency=0.0, cache_hit=True, model="m"),
        wbm.Observation(at=2.0, latency=0.2, error="ServerError", model="m"),
    ):
        metrics.observe(obs)
    metrics.observe_system(wbm.sample_system())
    names = set()
    for line in metrics.text().splitlines():
        if line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return names


def _metric_names(expr: str) -> set[str]:
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r'"[^"]*"', "", expr)  # strings
    expr = re.sub(r"\b\d+(\.\d+)?(ms|[smhdwy])?\b", "", expr)  # numbers and durations (offset 30m)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return words - PROMQL_WORDS


def _queries(node: Any):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from _queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from _queries(item)


def test_every_grafana_query_names_an_exported_metric() -> None:
    dashboard = json.loads((CONFIG / "grafana-dashboard.json").read_text())
    exported = _exported_names(wbm.PrometheusMetrics())
    queries = list(_queries(dashboard))
    assert len(queries) >= 12
    used = set().union(*(_metric_names(q) for q in queries))
    unknown = used - exported - PROMETHEUS_BUILTINS
    assert not unknown, f"the dashboard queries metrics nobody exports: {sorted(unknown)}"
    assert {
        "dspy_prediction_latency_seconds_bucket",
        "dspy_predictions_total",
        "dspy_answer_quality_sum",
        "process_resident_memory_bytes",
    } <= used


def test_every_alerting_rule_names_an_exported_metric() -> None:
    rules = yaml.safe_load((CONFIG / "alerts.yml").read_text())
    exported = _exported_names(wbm.PrometheusMetrics())
    used = set().union(*(_metric_names(r["expr"]) for g in rules["groups"] for r in g["rules"]))
    assert used - exported <= {"up"}, sorted(used - exported)


def test_the_name_check_catches_a_typo() -> None:
    assert _metric_names('sum(rate(dspy_predictons_total{status="ok"}[5m]))') == {
        "dspy_predictons_total"
    }
