"""One model per kernel vs one shared model server: memory and latency with N students at once.

    PYTHONPATH=. .venv/bin/python bench/bench_class_server.py [--students 10] \\
        [--mode both|shared|per-kernel]

Each simulated student is a fresh Python process set up as a notebook kernel is (`wb.setup()`,
then one `dspy.Predict` call), started together and released at once by a shared start time.
*per-kernel*: every process loads the embedded model (``WORKBOOK_LM=local``). *shared*: one
OpenAI-compatible server (`dspy_workbook.lm.class_server`) and every process reaches it through
the hosted path. Reports each process's resident and unique memory after its call (and the
server's; the GGUF file is memory-mapped, so its pages are shared between kernels and count in
RSS, not in USS), and
the p50/p95 latency of the one call. Prints the load average: on a shared machine the latencies
are as good as the cores that were free.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from dspy_workbook import env as var
from dspy_workbook.lm.class_server import ClassServer

ROOT = Path(__file__).resolve().parents[1]

STUDENT = r"""
import json, os, sys, time
import psutil
import dspy, dspy_workbook as wb
lm = wb.setup(quiet=True)
predict = dspy.Predict("question -> answer")
start = float(sys.argv[1])
while time.time() < start:
    time.sleep(0.01)
began = time.perf_counter()
predict(question="What is the capital of France?")
took = time.perf_counter() - began
info = psutil.Process().memory_full_info()
print(json.dumps({"latency": took, "rss": info.rss, "uss": info.uss}))
"""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(students: int, env: dict[str, str], lead: float) -> list[dict[str, float]]:
    script = Path(tempfile.mkdtemp()) / "student.py"
    script.write_text(STUDENT)
    start = time.time() + lead  # everyone imports and loads first, then all call at once
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **env},
            text=True,
        )
        for _ in range(students)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=900)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if lines:
            results.append(json.loads(lines[-1]))
    return results


def report(name: str, results: list[dict[str, float]], server_rss: float = 0.0) -> None:
    lat = [r["latency"] for r in results]
    rss = [r["rss"] / 2**20 for r in results]
    uss = [r["uss"] / 2**20 for r in results]  # unique: what the kernel adds (mmapped model shared)
    print(
        f"{name:11s} students={len(results)}  kernel RSS median {statistics.median(rss):.0f} MB"
        f" (unique {statistics.median(uss):.0f} MB)  + server {server_rss:.0f} MB"
        f"  = unique total {sum(uss) + server_rss:.0f} MB"
        f"  | one call p50 {_percentile(lat, 0.5):.1f} s  p95 {_percentile(lat, 0.95):.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=10)
    parser.add_argument("--mode", choices=["both", "shared", "per-kernel"], default="both")
    parser.add_argument("--lead", type=float, default=40.0, help="seconds to import before calling")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}  cores: {os.cpu_count()}")
    if args.mode in ("both", "shared"):
        with ClassServer(n_threads=2) as server:
            results = run(args.students, server.env(), args.lead)
            server_rss = psutil.Process(server.process.pid).memory_info().rss / 2**20
        report("shared", results, server_rss)
    if args.mode in ("both", "per-kernel"):
        results = run(args.students, {var.LM: "local"}, args.lead)
        report("per-kernel", results)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
