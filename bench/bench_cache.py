"""Exercise 1 bench: miss latency on the course backend vs hit latency of three caches, in one run.

Run:  PYTHONPATH=. python bench/bench_cache.py [--hits 300] [--misses 5]
      (backend from $WORKBOOK_LM, default local; WORKBOOK_LM=sim for the simulated provider)

Rows: a miss (the LM really answers), a hit of the notebook's own `CachedPredict` over its
`DiskCache` (the answer key, loaded from the master by `tools/answer_key.py`), a DSPy memory-cache
hit, and a DSPy disk-cache hit (memory tier emptied before each call). Percentiles come from
`dspy_workbook.stats`, the workbook's one latency summary. Figures only: nothing asserts a speed.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import dspy

import dspy_workbook as wb
from dspy_workbook import caching as wbc
from dspy_workbook.stats import summarize_latencies, summary_table
from tools.answer_key import load_solutions

# The notebook's own answers: `CachedPredict` over `DiskCache` (and what they call).
KEY = load_solutions("01_caching", "cache_key", "disk_cache", "cached_module")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--hits", type=int, default=300, help="timed hits per cache (>= 200 recommended)"
    )
    parser.add_argument("--misses", type=int, default=5, help="timed misses (distinct questions)")
    args = parser.parse_args()

    lm = wb.setup()
    question = {"question": "What is DSPy?"}
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        root = Path(tmp)
        misser = dspy.Predict("question -> answer", cache=False)
        misses = [
            wbc.time_calls(lambda i=i: misser(question=f"Bench question number {i}?"), 1)[0]
            for i in range(args.misses)
        ]

        ours = KEY.CachedPredict("question -> answer", cache=KEY.DiskCache(root / "ours", ttl=3600))
        ours(**question)  # the one miss that fills the entry
        our_hits = wbc.time_calls(lambda: ours(**question), args.hits)
        assert ours.hits == args.hits, "the answer key's cache missed during the timed hits"

        dspy.configure_cache(
            enable_disk_cache=True, enable_memory_cache=True, disk_cache_dir=str(root / "dspy")
        )
        builtin = dspy.Predict("question -> answer")
        builtin(**question)  # warm: written to memory and disk
        memory_hits = wbc.time_calls(lambda: builtin(**question), args.hits)
        disk_hits = wbc.time_calls(
            lambda: builtin(**question), args.hits, before_each=dspy.cache.reset_memory_cache
        )
        if lm.history[-1]["usage"] != {}:
            raise SystemExit(
                "DSPy's cache did not answer the timed calls; the figures would be misses"
            )
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)

    table = summary_table(
        {
            f"miss ({wb.describe(lm).name} backend)": misses,
            "hit: answer-key DiskCache (1 JSON file)": our_hits,
            "hit: DSPy memory cache": memory_hits,
            "hit: DSPy disk cache (diskcache/SQLite)": disk_hits,
        }
    )
    print()
    print(table[["count", "p50 ms", "p90 ms", "p99 ms"]].to_string())
    ratio = summarize_latencies(memory_hits).p50 / summarize_latencies(our_hits).p50
    print(
        f"\nanswer-key hit vs DSPy memory hit (p50): ours is {ratio:.1f}x "
        f"{'faster' if ratio >= 1 else 'slower'}"
    )


if __name__ == "__main__":
    main()
