"""Benchmark the embedded local model through DSPy: latency, parse failures, decode speed.

Run from the repository root:  PYTHONPATH=. python bench/bench_local.py [--rounds N]

* Latency of `dspy.Predict` and `dspy.ChainOfThought` ("question -> answer", JSON adapter) on 20
  distinct short questions with DSPy's cache off, so every call really generates: p50 and p95.
* Adapter parse failures for each (the engine's bounded grammar should make this 0).
* Decode speed (generated tokens/s) of the engine against raw
  `llama_cpp.Llama.create_chat_completion` on the same prompt, thread count and thread, so the
  engine's own overhead shows as the ratio.

Goals on a 2-core machine: Predict p50 <= 0.3 s, CoT p50 <= 0.5 s, 0 parse failures, engine decode
within 10% of raw. Other processes competing for the two cores inflate every figure: the load
average is printed so a slow run can be told from a slow engine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import dspy
from dspy.lm15 import Config, Message, Request
from dspy.utils.exceptions import AdapterParseError

from dspy_workbook.lm._local import LOCAL_MODEL, LocalLlamaEngine, local_lm, local_model_path
from dspy_workbook.lm._questions import FACT_QUESTIONS

QUESTIONS = FACT_QUESTIONS  # 20 distinct questions
DECODE_PROMPT = [
    {"role": "user", "content": "Write a long story about a brave dragon and a small village."},
]
DECODE_TOKENS = 128
GOALS = {"predict_p50": 0.3, "cot_p50": 0.5, "decode_ratio": 0.9}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def time_program(program: dspy.Module, questions: list[str]) -> tuple[list[float], int, list[Any]]:
    """Latency of each call, the number of adapter parse failures, and the predictions."""
    latencies, failures, outputs = [], 0, []
    for question in questions:
        start = time.perf_counter()
        try:
            outputs.append(program(question=question))
        except AdapterParseError:
            failures += 1
            outputs.append(None)
        latencies.append(time.perf_counter() - start)
    return latencies, failures, outputs


def decode_rates(generators: dict[str, Callable[[], int]], rounds: int) -> dict[str, float]:
    """Median generated tokens/s of each generator (returning its token count), prompts cached."""
    for generate in generators.values():
        generate()  # evaluates the prompt once; later calls reuse it, so the time is decoding
    rates: dict[str, list[float]] = {name: [] for name in generators}
    for _ in range(rounds):  # alternate, so a change in machine load affects both sides alike
        for name, generate in generators.items():
            start = time.perf_counter()
            tokens = generate()
            rates[name].append(tokens / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def main() -> int:
    """Run the benchmark, print the table; exit status 1 if any answer failed to parse."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5,
                        help="decode-speed repetitions (the median is reported)")
    options = parser.parse_args()

    load_before = os.getloadavg()[0]
    engine = LocalLlamaEngine()
    lm = local_lm(engine=engine, cache=False)
    dspy.configure(lm=lm, adapter=dspy.JSONAdapter())
    predict, cot = dspy.Predict("question -> answer"), dspy.ChainOfThought("question -> answer")

    start = time.perf_counter()
    predict(question="Warm-up: what is 1 plus 1?")  # loads the model, evaluates the system prompt
    cold = time.perf_counter() - start
    cot(question="Warm-up: what is 1 plus 1?")

    p_lat, p_fail, p_out = time_program(predict, QUESTIONS)
    c_lat, c_fail, c_out = time_program(cot, QUESTIONS)

    # Decode speed: the engine (through its Request path) vs llama-cpp-python on its own.
    import llama_cpp

    raw = llama_cpp.Llama(
        model_path=str(local_model_path()), n_ctx=engine.n_ctx, n_batch=engine.n_batch,
        n_threads=engine.n_threads, n_threads_batch=engine.n_threads, verbose=False,
    )
    request = Request(model=LOCAL_MODEL, messages=(Message.user(DECODE_PROMPT[0]["content"]),),
                      config=Config(max_tokens=DECODE_TOKENS, temperature=0.0))

    def engine_generate() -> int:
        return engine.complete(request).usage.output_tokens

    def raw_generate() -> int:
        # On the engine's model thread, like the engine's own calls: llama.cpp's OpenMP workers
        # belong to the calling thread, and alternating threads would slow the raw side down.
        result = engine._runtime.submit(lambda: raw.create_chat_completion(
            messages=DECODE_PROMPT, max_tokens=DECODE_TOKENS, temperature=0.0,
            repeat_penalty=engine.repeat_penalty)).result()
        return result["usage"]["completion_tokens"]

    rates = decode_rates({"engine": engine_generate, "raw": raw_generate}, options.rounds)
    engine_rate, raw_rate = rates["engine"], rates["raw"]
    ratio = engine_rate / raw_rate
    load_after = os.getloadavg()[0]

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    p50p, p95p = percentile(p_lat, 50), percentile(p_lat, 95)
    p50c, p95c = percentile(c_lat, 50), percentile(c_lat, 95)
    ok_p = p50p <= GOALS["predict_p50"] and p_fail == 0
    ok_c = p50c <= GOALS["cot_p50"] and c_fail == 0
    print(f"Local model: {LOCAL_MODEL}  ({local_model_path().name}, n_ctx={engine.n_ctx}, "
          f"n_batch={engine.n_batch}, n_threads={engine.n_threads}, {os.cpu_count()} CPUs)")
    print(f"Load average: {load_before:.2f} before, {load_after:.2f} after; "
          f"cold first call {cold:.2f} s")
    print()
    header = f"{'program (20 questions, cache off)':<36}{'p50 s':>8}{'p95 s':>8}{'parse fail':>12}"
    print(f"{header}  goal")
    print(f"{'Predict(question -> answer)':<36}{p50p:>8.3f}{p95p:>8.3f}{p_fail:>12d}  "
          f"p50 <= {GOALS['predict_p50']} s: {verdict(ok_p)}")
    print(f"{'ChainOfThought(question -> answer)':<36}{p50c:>8.3f}{p95c:>8.3f}{c_fail:>12d}  "
          f"p50 <= {GOALS['cot_p50']} s: {verdict(ok_c)}")
    print()
    print(f"{f'decode speed ({DECODE_TOKENS} tokens, prompt cached)':<36}{'tok/s':>8}")
    print(f"{'raw Llama.create_chat_completion':<36}{raw_rate:>8.1f}")
    print(f"{'LocalLlamaEngine.complete':<36}{engine_rate:>8.1f}  ratio {ratio:.2f}: "
          f"{verdict(ratio >= GOALS['decode_ratio'])} (goal >= {GOALS['decode_ratio']})")
    print()
    samples = [f"{q} -> {o.answer!r}" for q, o in zip(QUESTIONS[:4], p_out) if o is not None]
    print("Sample Predict answers:", "; ".join(samples))
    raw.close()
    return 1 if p_fail or c_fail else 0


if __name__ == "__main__":
    sys.exit(main())
