"""Small DSPy programs with known behaviour, to run a student's concurrency code against."""

from __future__ import annotations

import asyncio
import os

import dspy

from ..lm._sim import sim_lm
from ._inflight import InFlight

__all__ = ["FlakyQA", "GatedQA", "demo_latency", "distinct_questions"]


def demo_latency(default: float = 0.2) -> float:
    """The simulated provider's latency for demos: `$WORKBOOK_SIM_LATENCY` (0.01 s when grading)."""
    return float(os.environ.get("WORKBOOK_SIM_LATENCY", default))


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


class GatedQA(dspy.Module):
    """Questions starting with "slow" wait until `release()` is called; the others answer at once.

    A collector that waits for every answer before handing out the first (like `gather`) never
    sees a fast answer before the gate opens; one that yields answers as they finish does.
    """

    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("question -> answer")
        self.in_flight = InFlight()
        self._gate: asyncio.Event | None = None

    @property
    def gate(self) -> asyncio.Event:
        # Created on first use, inside the running loop that will wait on it.
        if self._gate is None:
            self._gate = asyncio.Event()
        return self._gate

    def release(self) -> None:
        """Let the slow questions finish."""
        self.gate.set()

    def forward(self, question: str) -> dspy.Prediction:
        return self.predict(question=question)

    async def aforward(self, question: str) -> dspy.Prediction:
        async with self.in_flight:
            if question.startswith("slow"):
                await self.gate.wait()
            return await self.predict.acall(question=question)
