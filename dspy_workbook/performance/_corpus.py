"""A small document store for Exercise 4's program: short passages about DSPy, and a retriever.

The retriever is deliberately plain (word overlap, no index, no model): it is the part of the
program that runs in Python, so a profile can compare it with the model calls around it.
"""

from __future__ import annotations

import re

__all__ = ["PASSAGES", "retrieve"]

PASSAGES: tuple[str, ...] = (
    "DSPy is a framework for programming language models: you write modules and signatures, "
    "and DSPy builds the prompts.",
    "A signature declares a task's inputs and outputs, for example question -> answer.",
    "dspy.Predict turns a signature into a prompt, calls the language model, and parses the "
    "output fields.",
    "ChainOfThought adds a reasoning field before the answer, so the model writes its steps first.",
    "An optimizer such as MIPROv2 or BootstrapFewShot tunes a program's instructions and "
    "few-shot demos against a metric.",
    "DSPy caches LM calls in memory and on disk; a repeated call with the same inputs is "
    "answered from the cache.",
    "dspy.Evaluate runs a program over a dev set and averages a metric over the examples.",
    "A few-shot demo is an input/output example placed in the prompt to show the model the task.",
    "program.save(path) stores a compiled program's demos and instructions; load() restores them.",
    "An adapter formats a signature into messages and parses the reply; JSONAdapter asks for JSON.",
    "dspy.streamify wraps a program so that it yields the answer's tokens as they arrive.",
    "A retriever finds the passages most related to a question, so the model can answer from them.",
    "Module.batch and dspy.Parallel run a module over many inputs on several threads at once.",
    "Each call to a hosted language model waits for the network; the local model computes on "
    "your CPU.",
)

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an and are as at be by do does for from how i in is it its of on or so such that the "
    "them to what when with you your".split()
)


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def retrieve(question: str, k: int = 3) -> list[str]:
    """The `k` passages sharing the most words with `question` (ties: the earlier passage)."""
    if not isinstance(k, int) or not 1 <= k <= len(PASSAGES):
        raise ValueError(f"k must be a whole number between 1 and {len(PASSAGES)}, got {k!r}")
    wanted = _words(question)
    scored = sorted(range(len(PASSAGES)), key=lambda i: (-len(wanted & _words(PASSAGES[i])), i))
    return [PASSAGES[i] for i in scored[:k]]
