"""Exercise 2 benchmark: what concurrency and rate limiting do, measured on the simulated provider.

Prints four things:
1. throughput and latency (p50/p95): sequential, then concurrency 1, 2, 5, 10 and 20 (50 requests,
   0.2 s ± 0.05 s latency);
2. the goal figure: the speed-up at concurrency 10 over sequential (target ≥ 8×; ideal 10×);
3. a token bucket's budget: the most requests in any 1-second window, against rate × 1 s + burst;
4. with `--local`, a small run on the embedded local model, where concurrency buys almost nothing.

The runner and the bucket are the notebook's own answers (`run_bounded`, `TokenBucket`), loaded
from the master by `tools/answer_key.py`.

Run: PYTHONPATH=. python bench/bench_async.py [--requests N] [--latency S] [--local] [--chart f.png]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import dspy

import dspy_workbook as wb
from dspy_workbook import concurrency as cc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from answer_key import load_solutions  # noqa: E402

LEVELS = (1, 2, 5, 10, 20)
KEY = load_solutions("02_async", "run_bounded", "token_bucket")  # the notebook's own answers


async def sim_sweep(n: int, latency: float) -> list[cc.ThroughputRow]:
    """Sequential, then each concurrency level, each on a fresh provider with distinct questions."""
    qa = dspy.Predict("question -> answer")

    def provider() -> dspy.LM:
        return wb.sim_lm(latency=latency, jitter=latency / 4, cache=False)

    rows = [cc.measure_sequential(qa, cc.distinct_questions(n, "seq"), lm=provider())]
    for limit in LEVELS:
        rows.append(
            await cc.measure_concurrent(
                KEY.run_bounded, qa, cc.distinct_questions(n, f"c{limit}"), limit, lm=provider()
            )
        )
    return rows


async def bucket_budget(rate: float, burst: int, n: int) -> tuple[int, float, float]:
    """Push `n` requests through a bucket at once: the worst 1 s window, the budget, the time."""
    bucket, times = KEY.TokenBucket(rate, burst), []

    async def take() -> None:
        await bucket.acquire()
        times.append(time.monotonic())

    start = time.monotonic()
    await asyncio.gather(*(take() for _ in range(n)))
    return cc.max_per_window(times, 1.0), rate + burst, time.monotonic() - start


async def local_run(n: int) -> list[cc.ThroughputRow]:
    """A small run on the in-process model: sequential versus concurrency n."""
    lm = wb.local_lm(cache=False)
    qa = dspy.Predict("question -> answer")
    with dspy.context(adapter=dspy.JSONAdapter(), lm=lm):
        qa(question="Warm up: load the model before timing.")  # the first call loads the weights
        # The same kind of question in both runs, so the answers (and their cost) are comparable.
        questions = [f"Name a colour ({i})." for i in range(2 * n)]
        rows = [cc.measure_sequential(qa, questions[:n], lm=lm)]
        rows.append(await cc.measure_concurrent(KEY.run_bounded, qa, questions[n:], n, lm=lm))
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument(
        "--local", action="store_true", help="also measure the embedded local model"
    )
    parser.add_argument("--chart", help="save the throughput chart to this PNG file")
    args = parser.parse_args()

    wb.setup("sim", quiet=True)
    rows = await sim_sweep(args.requests, args.latency)
    latency = f"{args.latency:g} s ± {args.latency / 4:g} s"
    print(f"Simulated provider: {args.requests} requests, latency {latency}")
    print(cc.format_table(rows))
    at10 = next(r for r in rows if r.concurrency == 10)
    speedup = at10.requests_per_second / rows[0].requests_per_second
    print(
        f"\nGoal: concurrency 10 reaches {speedup:.1f}× sequential throughput "
        "(target ≥ 8×, ideal 10×): "
        f"{'MET' if speedup >= 8 else 'NOT MET'}"
    )

    worst, budget, seconds = await bucket_budget(rate=20, burst=5, n=100)
    print(
        f"Token bucket 20/s, burst 5, 100 requests in {seconds:.1f} s: "
        f"at most {worst} in any 1 s window "
        f"(budget {budget:g}): {'within budget' if worst <= budget else 'OVER BUDGET'}"
    )

    if args.chart:
        cc.plot_throughput(rows, "Simulated remote provider").savefig(args.chart, dpi=100)
        print(f"chart saved to {args.chart}")
    if args.local:
        print("\nLocal model (in-process, CPU-bound), 4 requests:")
        print(cc.format_table(await local_run(4)))


if __name__ == "__main__":
    asyncio.run(main())
