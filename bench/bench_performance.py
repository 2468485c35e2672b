"""Benchmark Exercise 4: optimised vs naive on the workbook's workload, memory, quantization.

Run from the repository root:  PYTHONPATH=. python bench/bench_performance.py [--runs N]

Prints, on the course LM (`$WORKBOOK_LM`, default the local model):

* naive vs optimised (Exercise 4's answer key, `NaiveQA` / `OptimizedQA`) on the fixed workload
  (6 distinct questions × 4): median seconds over N alternating runs, the speed-up with its
  per-run range, model calls, tokens, and whether every answer is identical. Goal: >= 3x faster
  with identical answers. The same for Exercise 1's answer key (`CachedPredict` on a `DiskCache`)
  against a plain `Predict`, the cache technique with persistence;
* tracemalloc peak vs process RSS for one LM call (the answer key's `Profiler`);
* llama.cpp's RAM prompt cache on alternating system prompts (fresh process each);
* the quantization table: requantized files of the shipped Q4_1 model (size, load time, tokens/s,
  RSS, agreement of answers with Q4_1), each measured in a fresh process.

Timings vary with load; the load average is printed first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
os.environ.setdefault("WORKBOOK_PROGRESS", "off")
os.environ.setdefault("MPLBACKEND", "Agg")

import dspy  # noqa: E402
import pandas as pd  # noqa: E402
from answer_key import load_solutions  # noqa: E402

import dspy_workbook as wb  # noqa: E402
from dspy_workbook import performance as perf  # noqa: E402

pd.set_option("display.width", 140)
pd.set_option("display.max_columns", 20)


def compare(title: str, make_naive, make_fast, questions: list[str], runs: int) -> None:
    """Alternate naive and optimised runs; print the table and the speed-up."""
    results: dict[str, list[perf.WorkloadRun]] = {"naive": [], "optimised": []}
    for _ in range(runs):
        results["naive"].append(perf.run_workload(make_naive(), questions, label="naive"))
        results["optimised"].append(perf.run_workload(make_fast(), questions, label="optimised"))
    table = perf.compare_runs(results)
    ratios = [
        n.seconds / o.seconds for n, o in zip(results["naive"], results["optimised"], strict=True)
    ]
    speedup = statistics.median(r.seconds for r in results["naive"]) / statistics.median(
        r.seconds for r in results["optimised"]
    )
    identical = all(o.answers == results["naive"][0].answers for o in results["optimised"])
    print(f"\n== {title}: {len(questions)} questions ({len(set(questions))} distinct), {runs} runs")
    print(table.to_string())
    print(
        f"speed-up {speedup:.1f}x (per run {min(ratios):.1f}x-{max(ratios):.1f}x), "
        f"identical answers: {identical}  (goal: >= 3x, identical)"
    )


def memory_of_one_call() -> None:
    key = load_solutions("04_optimization", "profiler")
    profiler = key.Profiler()
    program = dspy.Predict("question -> answer", cache=False)
    with profiler.profile("one LM call (first: loads the model)"):
        program(question="What does tracemalloc measure?")
    with profiler.profile("one LM call (warm)"):
        program(question="What does RSS measure?")
    print("\n== tracemalloc peak vs process RSS")
    print(profiler.report().to_string(index=False))


def prompt_cache(questions: list[str]) -> None:
    system_a = perf.long_system_prompt("classify the topic of the question")
    system_b = perf.long_system_prompt("answer the question in a few words")
    calls = [(system_a if i % 2 == 0 else system_b, q) for i, q in enumerate(questions * 2)]
    rows = []
    answers = {}
    for ram_cache in (False, True):
        probe = perf.probe_model(perf.shipped_model_path(), calls, threads=1, ram_cache=ram_cache)
        steady = probe.seconds[2:]
        answers[ram_cache] = probe.answers
        rows.append(
            {
                "LlamaRAMCache": ram_cache,
                "prompt tokens": probe.prompt_tokens[0],
                "median s per call": round(statistics.median(steady), 3),
                "RSS MiB": perf.to_mb(probe.rss_after),
            }
        )
    print(
        "\n== llama.cpp prompt cache, two system prompts taking turns"
        " (1 thread, a fresh process each)"
    )
    print(pd.DataFrame(rows).to_string(index=False))
    print("same answers with and without:", answers[False] == answers[True])


def quantization(questions: list[str]) -> None:
    calls = [("Answer in a few words.", q) for q in questions]
    original = perf.probe_model(perf.shipped_model_path(), calls, threads=1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("Q4_1", "Q4_0", "Q2_K", "Q2_0", "IQ2_XS"):
            if name == "Q4_1":
                made, probe = None, original
            else:
                made = perf.quantize_model(name, dest_dir=Path(tmp))
                probe = perf.probe_model(made.path, calls, threads=1) if made.ok else None
            rows.append(perf.quantization_row(name, made, probe, original))
    table = pd.DataFrame(rows).set_index("type").drop(columns="sample answer")
    print(f"\n== quantization of the shipped Q4_1 model ({len(calls)} questions, greedy)")
    print(table.to_string())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="alternating runs per program")
    args = parser.parse_args()
    lm = wb.setup()
    print("machine:", perf.machine_info(lm))
    print("llama.cpp:", perf.llama_system_info() or "(not installed)")
    questions = perf.workload(distinct=6, repeats=4)
    distinct = sorted(set(questions))

    key4 = load_solutions("04_optimization", "optimized", definitions=("QA", "NaiveQA"))
    key4.NaiveQA()(question="Warm-up: say hello.")  # load the model before timing anything
    compare(
        "Exercise 4: NaiveQA vs OptimizedQA (ChainOfThought, in-memory answers)",
        key4.NaiveQA,
        key4.OptimizedQA,
        questions,
        args.runs,
    )

    key1 = load_solutions("01_caching", "cache_key", "atomic_io", "disk_cache", "cached_module")
    with tempfile.TemporaryDirectory() as tmp:
        folders = (Path(tmp) / str(n) for n in range(10**6))  # a fresh cache folder per run

        def cached_predict() -> dspy.Module:
            return key1.CachedPredict(key4.QA, cache=key1.DiskCache(next(folders)))

        compare(
            "Exercise 1's DiskCache: Predict vs CachedPredict (a fresh cache folder per run)",
            lambda: dspy.Predict(key4.QA, cache=False),
            cached_predict,
            questions,
            args.runs,
        )

    memory_of_one_call()
    if wb.describe(lm).name == "local":
        prompt_cache(distinct[:4])
        quantization(distinct)
    else:
        print("\n(prompt cache and quantization need the local model: unset WORKBOOK_LM)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
