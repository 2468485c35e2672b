"""Benchmark Exercise 4: overlapped vs sequential model calls, memory, batching, llama.cpp.

Run from the repository root:  PYTHONPATH=. python bench/bench_performance.py [--runs N]

Prints, with the master's own answers (`NotesQA`, `FastNotesQA`, `Profiler`, loaded with
`load_solutions`):

* NotesQA against FastNotesQA (the note calls of a question overlapped) on the simulated hosted
  provider (0.1 s per call) and on the course LM (`$WORKBOOK_LM`, default the local model):
  median seconds over N alternating runs, the speed-up with its per-run range, CPU seconds, and
  whether every answer is identical. Goal on the simulated provider: >= 1.8x with k=3 and
  identical answers. On the local model the goal is the opposite finding: about 1x, because its
  engine runs one call at a time on the CPU (the notebook says so);
* the stage profile of one question on each backend (the student's `Profiler`): CPU/wall near 0
  on the simulated provider (waiting), high on the local model (computing);
* tracemalloc peak vs process RSS for one LM call;
* `Module.batch` (6 threads) against one call after another, on both backends;
* llama.cpp's RAM prompt cache on alternating system prompts, and the quantization table
  (fresh processes; local model only).

Timings vary with load; the machine line (load average, model threads) is printed first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MPLBACKEND", "Agg")

import dspy  # noqa: E402
import pandas as pd  # noqa: E402

import dspy_workbook as wb  # noqa: E402
from dspy_workbook import env as var  # noqa: E402
from dspy_workbook import performance as perf  # noqa: E402
from tools.answer_key import load_solutions  # noqa: E402

os.environ.setdefault(var.PROGRESS, "off")  # no progress bars between the figures
pd.set_option("display.width", 160)
pd.set_option("display.max_columns", 20)

QUESTIONS = ["What is DSPy?", "How do I cache LM calls?", "What is ChainOfThought?"]


def overlap(key, name: str, backend: dspy.LM, questions: list[str], runs: int) -> None:
    """Alternate NotesQA and FastNotesQA runs on `backend`; print medians and the speed-up."""
    seconds: dict[str, list[float]] = {"NotesQA": [], "FastNotesQA": []}
    cpu: dict[str, list[float]] = {"NotesQA": [], "FastNotesQA": []}
    answers: dict[str, list[list[str]]] = {"NotesQA": [], "FastNotesQA": []}
    with dspy.context(lm=backend):
        key.NotesQA()(question="Warm-up: say hello.")  # load the model and build the grammars
        for _ in range(runs):
            for program_class in (key.NotesQA, key.FastNotesQA):
                program = program_class()
                start, cpu_start = time.perf_counter(), time.process_time()
                got = [program(question=q).answer for q in questions]
                seconds[program_class.__name__].append(time.perf_counter() - start)
                cpu[program_class.__name__].append(time.process_time() - cpu_start)
                answers[program_class.__name__].append(got)
    ratios = [n / f for n, f in zip(seconds["NotesQA"], seconds["FastNotesQA"], strict=True)]
    speedup = statistics.median(seconds["NotesQA"]) / statistics.median(seconds["FastNotesQA"])
    identical = all(a == answers["NotesQA"][0] for a in answers["FastNotesQA"])
    table = pd.DataFrame(
        {
            label: {
                "median s": round(statistics.median(seconds[label]), 3),
                "min s": round(min(seconds[label]), 3),
                "max s": round(max(seconds[label]), 3),
                "median CPU s": round(statistics.median(cpu[label]), 3),
            }
            for label in seconds
        }
    ).T
    print(f"\n== {name}: {len(questions)} questions (k=3), {runs} alternating runs")
    print(table.to_string())
    print(
        f"speed-up {speedup:.2f}x (per run {min(ratios):.2f}x-{max(ratios):.2f}x), identical "
        f"answers: {identical}"
    )


def stages(key, name: str, backend: dspy.LM) -> None:
    profiler = key.Profiler()
    program = key.NotesQA(profiler=profiler)
    with dspy.context(lm=backend):
        program(question="Warm-up: say hello.")
        profiler.records.clear()
        with profiler.profile("question"):
            program(question=QUESTIONS[0])
    print(f"\n== stage profile of one NotesQA question on {name}")
    print(perf.stage_table(profiler.records).to_string())


def memory_of_one_call(key) -> None:
    profiler = key.Profiler()
    program = dspy.Predict("question -> answer", cache=False)
    with profiler.profile("one LM call (first of its signature)"):
        program(question="What does tracemalloc measure?")
    with profiler.profile("one LM call (warm)"):
        program(question="What does RSS measure?")
    print("\n== tracemalloc peak vs process RSS")
    print(profiler.report().to_string(index=False))


def batching(name: str, backend: dspy.LM) -> None:
    examples = [dspy.Example(question=q).with_inputs("question") for q in QUESTIONS * 2]
    program = dspy.Predict("question -> answer", cache=False)
    with dspy.context(lm=backend):
        program(question="Warm-up.")
        start = time.perf_counter()
        for example in examples:
            program(**example.inputs())
        sequential = time.perf_counter() - start
        start = time.perf_counter()
        program.batch(examples, num_threads=6, disable_progress_bar=True)
        batched = time.perf_counter() - start
    print(
        f"{name:<34} one after another {sequential:6.2f} s, batch of 6 threads {batched:6.2f} s, "
        f"speed-up {sequential / batched:.1f}x"
    )


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
    import tempfile

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
    key = load_solutions("04_optimization", "profiler", "overlap", definitions=("NotesQA",))
    remote = wb.sim_lm(latency=0.1)
    course = f"the course LM ({wb.describe(lm).name})"

    overlap(key, "simulated hosted provider (0.1 s per call)", remote, QUESTIONS, args.runs)
    overlap(key, course, lm, QUESTIONS, args.runs)
    stages(key, "the simulated hosted provider", remote)
    stages(key, course, lm)
    memory_of_one_call(key)
    print("\n== Module.batch against one call after another (6 questions)")
    batching("simulated hosted provider (0.1 s)", remote)
    batching(course, lm)
    if wb.describe(lm).name == "local":
        distinct = sorted(set(perf.workload(distinct=6, repeats=1)))
        prompt_cache(distinct[:4])
        quantization(distinct)
    else:
        print("\n(prompt cache and quantization need the local model: unset WORKBOOK_LM)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
