"""Small DSPy programs with known behaviour, to run a student's concurrency code against."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping

import dspy

from .. import env
from ..lm import sim_lm
from ._inflight import InFlight

__all__ = ["FlakyQA", "ScriptedFailure", "ScriptedQA", "demo_latency", "distinct_questions"]


def demo_latency(default: float = 0.2) -> float:
    """The simulated provider's latency for demos: `$WORKBOOK_SIM_LATENCY` (0.01 s when grading)."""
    return env.sim_latency(default)


def distinct_questions(n: int, tag: str = "q") -> list[str]:
    """`n` different questions, so that no answer can come from DSPy's cache."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [f"[{tag} {i}] What is {i} squared?" for i in range(n)]


class FlakyQA(dspy.Module):
    """Answers questions, except that every question containing `marker` always fails.

    The failing questions go to a provider that answers every call with HTTP 503 and is not
    retried, so each of them raises `dspy.LMServerError` while the others succeed: a test of
    whether a runner keeps the good results when some calls fail for good.
    """

    def __init__(self, marker: str = "FAIL") -> None:
        super().__init__()
        self.marker = marker
        self.predict = dspy.Predict("question -> answer")
        self.broken_lm = sim_lm(latency=0.001, error_rate=1.0, num_retries=0, cache=False)

    def forward(self, question: str) -> dspy.Prediction:
        if self.marker in question:
            with dspy.context(lm=self.broken_lm):
                return self.predict(question=question)
        return self.predict(question=question)

    async def aforward(self, question: str) -> dspy.Prediction:
        if self.marker in question:
            with dspy.context(lm=self.broken_lm):
                return await self.predict.acall(question=question)
        return await self.predict.acall(question=question)


class ScriptedFailure(Exception):
    """What `ScriptedQA` raises for a question it was told to fail."""


class ScriptedQA(dspy.Module):
    """Answers each question after its own scripted delay, without an LM; some may fail.

    Nothing in a question's text tells how long it takes: the delays live in this object. So a
    collector can only hand out answers in finishing order by really running the calls
    concurrently. `finished` records the order in which calls completed (the order an "as
    completed" collector must follow), and `in_flight` how many ran at once.
    """

    def __init__(self, delays: Mapping[str, float], fail: Iterable[str] = ()) -> None:
        super().__init__()
        if any(not (isinstance(d, int | float) and 0 <= d < 60) for d in delays.values()):
            raise ValueError("delays are seconds between 0 and 60")
        self.delays = dict(delays)
        self.fail = frozenset(fail)
        self.in_flight = InFlight()
        self.finished: list[str] = []

    def _answer(self, question: str) -> dspy.Prediction:
        self.finished.append(question)
        if question in self.fail:
            raise ScriptedFailure(f"scripted failure for {question!r}")
        return dspy.Prediction(answer=f"Answer to: {question}")

    def forward(self, question: str) -> dspy.Prediction:
        time.sleep(self.delays.get(question, 0.0))
        return self._answer(question)

    async def aforward(self, question: str) -> dspy.Prediction:
        async with self.in_flight:
            await asyncio.sleep(self.delays.get(question, 0.0))
            return self._answer(question)
