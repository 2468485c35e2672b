"""Benchmark the embedded local model through DSPy: quality, repetition, latency, decode speed.

Run from the repository root:  PYTHONPATH=. python bench/bench_local.py [--limit N] [--rounds N]

* On the workbook's labelled question set (`dspy_workbook.data`, 40 questions), `dspy.Predict` and
  `dspy.ChainOfThought` ("question -> answer", JSON adapter, DSPy's cache off), each **without and
  with the repetition guard** (calls interleaved, so machine load affects both alike):
  - share of answers with a repeated word 4-gram inside one output field,
  - exact-match and contains-match accuracy (`exact_match`, `answer_match`),
  - adapter parse failures (the bounded grammar makes this 0 by construction),
  - latency p50/p95 (`dspy_workbook.stats.summarize_latencies`).
* The same repetition share on prompts that invite loops (explanations, lists, counting).
* Decode speed (generated tokens/s) of the engine's request path against llama-cpp-python's own
  `create_chat_completion` on the same loaded model and thread: the engine's overhead.

Goals (issue 7): repetition share down by at least half with the guard, accuracy not lower,
Predict p50 not slower by more than 10%; Predict p50 <= 0.3 s and CoT p50 <= 0.5 s on an idle
2-core machine; engine decode within 10% of raw. Other processes competing for the cores inflate
every time: the load average is printed so a slow run can be told from a slow engine.
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

from dspy_workbook.data import answer_match, exact_match, labelled_questions
from dspy_workbook.lm import LOCAL_MODEL, LocalLlamaEngine, local_lm, local_model_path
from dspy_workbook.stats import summarize_latencies

LOOP_PROMPTS = [
    "List every animal you know.",
    "Repeat the word banana forever: banana banana banana banana banana",
    "Write one billion in digits, then keep writing zeros forever.",
    "Explain what a century year is.",
    "Describe the water cycle in detail.",
    "List every animal you know.",
    "Count from 1 to 100.",
    "What is the meaning of life? Explain at length.",
    "Write a poem about the sea.",
    "Explain how a computer works, step by step.",
    "Tell me everything about the number seven.",
]
DECODE_PROMPT = "Write a long story about a brave dragon and a small village."
DECODE_TOKENS = 128
GOALS = {"predict_p50": 0.3, "cot_p50": 0.5, "decode_ratio": 0.9}


def repeats_4gram(text: str) -> bool:
    """Whether `text` contains the same four words twice."""
    words = text.lower().split()
    grams = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
    return len(grams) != len(set(grams))


def repetitive(prediction: Any) -> bool:
    """Whether any text output field of a prediction repeats a 4-gram within itself."""
    return any(
        isinstance(v, str) and repeats_4gram(v) for k, v in prediction.items() if k != "logprobs"
    )


class Arm:
    """One configuration (guard off or on) of one program; collects its results."""

    def __init__(self, name: str, lm: dspy.LM, program: dspy.Module) -> None:
        self.name, self.lm, self.program = name, lm, program
        self.latencies: list[float] = []
        self.predictions: list[Any] = []
        self.failures = 0

    def run(self, question: str) -> None:
        with dspy.context(lm=self.lm, adapter=dspy.JSONAdapter()):
            start = time.perf_counter()
            try:
                prediction = self.program(question=question)
            except AdapterParseError:
                self.failures += 1
                prediction = None
            self.latencies.append(time.perf_counter() - start)
        self.predictions.append(prediction)

    def share(self, judge: Callable[[Any], bool]) -> float:
        return sum(bool(p is not None and judge(p)) for p in self.predictions) / len(
            self.predictions
        )


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
    """Run the benchmark, print the tables; exit status 1 if any answer failed to parse."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="use the first N questions")
    parser.add_argument(
        "--rounds", type=int, default=5, help="decode-speed repetitions (the median is reported)"
    )
    options = parser.parse_args()

    load_before = os.getloadavg()[0]
    plain = LocalLlamaEngine(repetition_guard=None)
    guarded = LocalLlamaEngine()  # the default: guard on; shares the loaded model with `plain`
    lms = {"off": local_lm(engine=plain, cache=False), "on": local_lm(engine=guarded, cache=False)}
    start = time.perf_counter()
    with dspy.context(lm=lms["on"], adapter=dspy.JSONAdapter()):
        dspy.Predict("question -> answer")(question="Warm-up: what is 1 plus 1?")  # loads it
    cold = time.perf_counter() - start

    examples = labelled_questions(options.limit)
    arms: dict[tuple[str, str], Arm] = {}
    for module_name, module in (("Predict", dspy.Predict), ("CoT", dspy.ChainOfThought)):
        for guard in ("off", "on"):
            arms[module_name, guard] = Arm(
                f"{module_name} guard {guard}", lms[guard], module("question -> answer")
            )
        # One module at a time keeps llama.cpp's prompt prefix cached. The arm that runs second
        # finds the whole prompt cached, so the two take turns going first.
        for index, example in enumerate(examples):
            for guard in ("off", "on") if index % 2 == 0 else ("on", "off"):
                arms[module_name, guard].run(example.question)
    loops = {
        (module_name, guard): Arm(
            f"{module_name} guard {guard}", lms[guard], module("question -> answer")
        )
        for module_name, module in (("Predict", dspy.Predict), ("CoT", dspy.ChainOfThought))
        for guard in ("off", "on")
    }
    for module_name in ("Predict", "CoT"):
        for index, prompt in enumerate(LOOP_PROMPTS):
            for guard in ("off", "on") if index % 2 == 0 else ("on", "off"):
                loops[module_name, guard].run(prompt)

    # Decode speed: the engine's request path vs llama-cpp-python on the same loaded model.
    request = Request(
        model=LOCAL_MODEL,
        messages=(Message.user(DECODE_PROMPT),),
        config=Config(max_tokens=DECODE_TOKENS, temperature=0.0),
    )
    runtime = plain._runtime  # the bench measures the engine's own internals on purpose

    def engine_generate() -> int:
        return plain.complete(request).usage.output_tokens

    def raw_generate() -> int:
        # On the model's thread, like the engine's calls: llama.cpp's workers belong to it.
        result = runtime.submit(
            lambda: runtime.llama().create_chat_completion(
                messages=[{"role": "user", "content": DECODE_PROMPT}],
                max_tokens=DECODE_TOKENS,
                temperature=0.0,
            )
        ).result()
        return result["usage"]["completion_tokens"]

    rates = decode_rates({"engine": engine_generate, "raw": raw_generate}, options.rounds)
    ratio = rates["engine"] / rates["raw"]
    load_after = os.getloadavg()[0]

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print(
        f"Local model: {LOCAL_MODEL}  ({local_model_path().name}, n_ctx={plain.n_ctx}, "
        f"n_batch={plain.n_batch}, n_threads={plain.n_threads}, {os.cpu_count()} CPUs)"
    )
    print(
        f"Load average: {load_before:.2f} before, {load_after:.2f} after; "
        f"cold first call {cold:.2f} s"
    )
    print()
    print(f"{len(examples)} labelled questions, cache off")
    header = (
        f"{'program':<22}{'p50 s':>8}{'p95 s':>8}{'parse fail':>11}{'repeat 4g':>11}"
        f"{'exact':>8}{'contains':>10}"
    )
    print(header)
    for arm in arms.values():
        stats = summarize_latencies(arm.latencies)
        exact = sum(
            p is not None and exact_match(e, p)
            for e, p in zip(examples, arm.predictions, strict=True)
        )
        contains = sum(
            p is not None and answer_match(e, p)
            for e, p in zip(examples, arm.predictions, strict=True)
        )
        print(
            f"{arm.name:<22}{stats.p50:>8.3f}{stats.p95:>8.3f}{arm.failures:>11d}"
            f"{arm.share(repetitive):>10.0%}{exact / len(examples):>8.0%}"
            f"{contains / len(examples):>10.0%}"
        )
    print()
    print(f"{len(LOOP_PROMPTS)} loop-inviting prompts")
    for arm in loops.values():
        print(
            f"{arm.name:<22} repeated 4-gram in {arm.share(repetitive):.0%} of answers, "
            f"parse failures {arm.failures}"
        )
    print()

    def share_of(arm_list: list[Arm]) -> float:
        total = sum(len(a.predictions) for a in arm_list)
        return sum(a.share(repetitive) * len(a.predictions) for a in arm_list) / total

    before = share_of(
        [arm for (_, guard), arm in [*arms.items(), *loops.items()] if guard == "off"]
    )
    after = share_of([arm for (_, guard), arm in [*arms.items(), *loops.items()] if guard == "on"])
    p50 = {key: summarize_latencies(arm.latencies).p50 for key, arm in arms.items()}
    accuracy = {
        guard: sum(
            answer_match(e, p)
            for m in ("Predict", "CoT")
            for e, p in zip(examples, arms[m, guard].predictions, strict=True)
            if p is not None
        )
        for guard in ("off", "on")
    }
    print("Goals")
    print(
        f"  repetition share {before:.0%} -> {after:.0%}: "
        f"{verdict(after <= before / 2 if before else after == 0)} (at least halved)"
    )
    print(
        f"  accuracy (contains, Predict+CoT) {accuracy['off']} -> {accuracy['on']} correct: "
        f"{verdict(accuracy['on'] >= accuracy['off'])} (not lower)"
    )
    slower = p50["Predict", "on"] / p50["Predict", "off"] - 1
    print(f"  Predict p50 with guard {slower:+.0%}: {verdict(slower <= 0.10)} (at most +10%)")
    print(
        f"  Predict p50 {p50['Predict', 'on']:.3f} s: "
        f"{verdict(p50['Predict', 'on'] <= GOALS['predict_p50'])} (<= {GOALS['predict_p50']} s)"
    )
    print(
        f"  CoT p50 {p50['CoT', 'on']:.3f} s: "
        f"{verdict(p50['CoT', 'on'] <= GOALS['cot_p50'])} (<= {GOALS['cot_p50']} s)"
    )
    print(
        f"  decode {rates['engine']:.1f} tok/s vs raw {rates['raw']:.1f} tok/s, ratio "
        f"{ratio:.2f}: {verdict(ratio >= GOALS['decode_ratio'])} "
        f"(>= {GOALS['decode_ratio']})"
    )
    print()
    samples = [
        f"{e.question} -> {p.answer!r}"
        for e, p in zip(examples[:4], arms["Predict", "on"].predictions, strict=False)
        if p is not None
    ]
    print("Sample Predict answers:", "; ".join(samples))
    failures = sum(arm.failures for arm in [*arms.values(), *loops.values()])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
