"""Exercise 6 benchmark: what monitoring costs, how fast it sees a fault, how often it cries wolf.

1. **Collector overhead per prediction.** `dspy.Predict` on the simulated provider with zero
   latency and DSPy's cache off, so what remains is pure overhead. Three modes take turns call by
   call (so CPU contention hits all equally): no callback; the answer key's `MetricsCollector`;
   the collector plus Prometheus exposition and two detectors as listeners (the full pipeline).
2. **Detection delay.** The notebook's drill (collector → detectors → alert managers) on the
   scenario provider: normal for 50 requests, then 150 ms slower for 30, then wrong answers for
   40. Printed: requests after each injected fault until its alert fired.
3. **False alerts on a normal run.** The same wiring with the usual jitter and no fault, over
   several seeds: the number of alerts raised (the goal is 0).

Run: PYTHONPATH=. python bench/bench_monitoring.py [--calls 300] [--seeds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dspy

import dspy_workbook as wb
from dspy_workbook import monitoring as wbm
from tools.answer_key import load_solutions

ROOT = Path(__file__).resolve().parents[1]

SLOW_FROM, DEGRADED_FROM, HEALTHY_FROM, TOTAL = 50, 80, 120, 150


def overhead(key: Any, calls: int) -> None:
    def full() -> list:
        prom = wbm.PrometheusMetrics(process=False)
        latency = key.AdaptiveDetector(threshold=4.0, warmup=20, min_spread=0.01)
        return [key.MetricsCollector(listeners=[prom.observe, lambda o: latency.update(o.latency)])]

    modes: dict[str, Callable[[], list]] = {
        "no callback": list,
        "MetricsCollector": lambda: [key.MetricsCollector()],
        "collector + Prometheus + detector": full,
    }
    program = dspy.Predict("question -> answer")
    times: dict[str, list[float]] = {name: [] for name in modes}
    names = list(modes)
    lm = wb.sim_lm(latency=0.0, cache=False)
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        program(question="warm-up")
        for i in range(calls):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                with dspy.context(callbacks=modes[name]()):
                    start = time.perf_counter()
                    program(question="What is the capital of France?")
                    times[name].append(time.perf_counter() - start)
    base = statistics.median(times["no callback"])
    print(f"\n1. Overhead per prediction ({calls} calls per mode, medians, sim latency 0)")
    for name, values in times.items():
        med = statistics.median(values)
        extra = "" if name == "no callback" else f"   overhead {(med - base) * 1e6:+7.0f} µs"
        print(f"  {name:<36} {med * 1000:8.3f} ms{extra}")


class Wiring:
    """The notebook's pipeline; records the request number at which each alert opened."""

    def __init__(self, key: Any) -> None:
        self.dispatcher = wbm.AlertDispatcher([])
        self.latency_alerts = wbm.AlertManager(self.dispatcher, pending=3, clear_after=5)
        self.quality_alerts = wbm.AlertManager(self.dispatcher, pending=1, clear_after=2)
        self.latency = key.AdaptiveDetector(threshold=4.0, warmup=20, min_spread=0.01)
        self.quality = key.AdaptiveDetector(
            alpha=0.2, threshold=4.0, warmup=3, direction="down", min_spread=0.1
        )
        self.batches = wbm.BatchMeans(10)
        self.opened: list[tuple[str, int]] = []
        self.collector = key.MetricsCollector(
            quality=wbm.LabelledQuality(), listeners=[self.observe]
        )

    def observe(self, obs: wbm.Observation) -> None:
        n = len(self.collector.observations) - 1
        sent = [self.latency_alerts.evaluate("latency_spike", self.latency.update(obs.latency))]
        batch = self.batches.add(obs.quality)
        if batch is not None:
            sent.append(self.quality_alerts.evaluate("quality_drop", self.quality.update(batch)))
        self.opened += [(a.rule, n) for a in sent if a is not None and a.status == "firing"]

    def run(self, lm: dspy.LM, schedule: Callable[[int], None] | None) -> None:
        with dspy.context(lm=lm, callbacks=[self.collector], adapter=dspy.JSONAdapter()):
            wbm.run_workload(
                dspy.Predict("question -> answer"), wbm.workload_questions(TOTAL), before=schedule
            )
        self.dispatcher.close()


def detection(key: Any) -> None:
    wiring = Wiring(key)
    lm = wbm.scenario_lm(latency=0.02, jitter=0.005)

    def schedule(i: int) -> None:
        lm.engine.faults.clear()
        if SLOW_FROM <= i < DEGRADED_FROM:
            lm.engine.faults.extra_latency = 0.15
        if DEGRADED_FROM <= i < HEALTHY_FROM:
            lm.engine.faults.degraded = True

    wiring.run(lm, schedule)
    print("\n2. Detection delay (requests after the fault until the alert fired; 0 = the first)")
    for rule, start in (("latency_spike", SLOW_FROM), ("quality_drop", DEGRADED_FROM)):
        fired = [n for r, n in wiring.opened if r == rule and n >= start]
        delay = f"{fired[0] - start} requests" if fired else "NOT DETECTED"
        print(f"  {rule:<14} fault at request {start:>3}: {delay}")
    print(f"  alerts opened in total: {len(wiring.opened)} (expected 2)")


def false_alerts(key: Any, seeds: int) -> None:
    total, requests = 0, 0
    for seed in range(seeds):
        wiring = Wiring(key)
        wiring.run(wbm.scenario_lm(latency=0.02, jitter=0.01, seed=seed), None)
        total += len(wiring.opened)
        requests += TOTAL
    print(
        f"\n3. False alerts on normal runs (20 ms ± 10 ms jitter): {total} in {requests} requests "
        f"({seeds} seeds)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=300, help="calls per mode for the overhead")
    parser.add_argument(
        "--seeds", type=int, default=5, help="normal runs for the false-alert count"
    )
    args = parser.parse_args()
    print(
        f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores"
    )
    key = load_solutions("06_monitoring", "collector", "detector")
    overhead(key, args.calls)
    detection(key)
    false_alerts(key, args.seeds)


if __name__ == "__main__":
    main()
