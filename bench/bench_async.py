"""Exercise 2 benchmark: what concurrency and rate limiting do, measured on the simulated provider.

Prints four things:
1. throughput and latency (p50/p95): sequential, then concurrency 1, 2, 5, 10 and 20 (50 requests,
   0.2 s ± 0.05 s latency);
2. the goal figure: the speed-up at concurrency 10 over sequential (target ≥ 8×; ideal 10×);
3. a token bucket's promises: a burst at once, the rate sustained, and the budget
   (rate × T + burst) held in every window of 0.25, 0.5 and 1 s — also after idling — with the
   longest event-loop stall while requests waited; then the same trial on a clock that skips idle
   waits (`cc.trial_bucket`, what the self-check and the graded cell use), and its real duration;
4. with `--local`, a small run on the embedded local model, where concurrency buys almost nothing.

The runner and the bucket are the notebook's own answers (`run_bounded`, `TokenBucket`), loaded
from the master by `tools/answer_key.py`.

Run: PYTHONPATH=. python bench/bench_async.py [--requests N] [--latency S] [--local] [--chart f.png]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import dspy

import dspy_workbook as wb
from dspy_workbook import concurrency as cc
from tools.answer_key import load_solutions

LEVELS = (1, 2, 5, 10, 20)
KEY = load_solutions("02_async", "run_bounded", "token_bucket")  # the notebook's own answers


async def sim_sweep(n: int, latency: float) -> list[cc.ThroughputRow]:
    """Sequential, then each concurrency level, each on a fresh provider with distinct questions."""
    qa = dspy.Predict("question -> answer")

    def provider() -> dspy.LM:
        return wb.sim_lm(latency=latency, jitter=latency / 4, cache=False)

    rows = [
        cc.measure_sequential(
            qa, cc.distinct_questions(n, "seq"), lm=provider(), show_progress=True
        )
    ]
    for limit in LEVELS:
        rows.append(
            await cc.measure_concurrent(
                KEY.run_bounded,
                qa,
                cc.distinct_questions(n, f"c{limit}"),
                limit,
                lm=provider(),
                show_progress=True,
            )
        )
    return rows


async def bucket_promises(rate: float, burst: int, n: int, idle: float) -> None:
    """Print what a bucket promises, measured: n at once, `idle` seconds of rest, n again."""
    bucket = KEY.TokenBucket(rate, burst)
    one = await cc.flood(bucket, n)
    await asyncio.sleep(idle)
    two = await cc.flood(bucket, n)
    start, first, restart, second = one.start, one.passed, two.start, two.passed
    lag1, lag2 = one.longest_stall, two.longest_stall
    print(f"Token bucket {rate:g}/s, burst {burst}: {n} requests, {idle:g} s idle, {n} again")
    for label, began, times in (("first", start, first), ("after idle", restart, second)):
        times = sorted(times)
        sustained = (n - burst) / (times[-1] - times[burst - 1])
        print(
            f"  {label:<11} burst of {burst} in {1000 * (times[burst - 1] - began):5.1f} ms; "
            f"sustained {sustained:5.1f}/s (target {rate:g}/s)"
        )
    for window in (0.25, 0.5, 1.0):
        worst, budget = cc.max_per_window(first + second, window), rate * window + burst
        verdict = "within budget" if worst <= budget else "OVER BUDGET"
        print(f"  most in any {window:g} s window: {worst} (budget {budget:g}): {verdict}")
    print(f"  longest event-loop stall while waiting: {1000 * max(lag1, lag2):.1f} ms")
    real = time.perf_counter()
    fast = cc.trial_bucket(KEY.TokenBucket, rate=rate, burst=burst, n=n, idle=idle)
    took = time.perf_counter() - real
    loop_seconds = fast[1].start + fast[1].took - fast[0].start
    print(
        f"  fast-forwarded (as the checks run it): {loop_seconds:.2f} s of traffic in "
        f"{1000 * took:.0f} ms; most in any 1 s window: "
        f"{cc.max_per_window(fast[0].passed + fast[1].passed, 1.0)} (budget {rate + burst:g})"
    )


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

    print()
    await bucket_promises(rate=20, burst=5, n=60, idle=1.0)

    if args.chart:
        cc.plot_throughput(rows, "Simulated remote provider").savefig(args.chart, dpi=100)
        print(f"chart saved to {args.chart}")
    if args.local:
        print("\nLocal model (in-process, CPU-bound), 4 requests:")
        print(cc.format_table(await local_run(4)))


if __name__ == "__main__":
    asyncio.run(main())
