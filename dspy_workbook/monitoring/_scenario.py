"""A simulated provider with a scenario: mostly right answers, a confidence, and faults on demand.

Monitoring needs something to notice. `scenario_lm()` wraps the course's simulated provider
(`wb.sim_lm`'s engine: real waiting, seeded jitter, usage, errors) and rewrites its answers so
that the labelled questions are answered *correctly* for a seeded share `accuracy` of them, with a
`confidence` field when the signature asks for one. Then, while a workload runs, you break it:

    lm = scenario_lm(latency=0.02, jitter=0.005)
    lm.engine.faults.extra_latency = 0.2     # the provider slows down
    lm.engine.faults.degraded = True         # a bad deploy: answers go wrong
    lm.engine.faults.clear()                 # incident over

The faults apply to calls that start after you set them, from any thread or task.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field, replace

import dspy
from dspy.lm15 import Message, Request, Response, TextPart

from ..lm import SimEngine, request_inputs
from ._labels import LabelledQuality

__all__ = ["Faults", "ScenarioEngine", "scenario_lm"]

SIM_MODEL = "sim/scenario-provider"  # its own id, so DSPy cache entries never mix with wb.sim_lm
WRONG_ANSWER = "I am not sure."
_MARKER_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\Z)", re.S)


@dataclass
class Faults:
    """Switches for injected faults; change them at any time (they are read per call)."""

    extra_latency: float = 0.0  # seconds added to every call
    degraded: bool = False  # answers are wrong (a quality incident)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def clear(self) -> None:
        """End every injected fault."""
        with self._lock:
            self.extra_latency, self.degraded = 0.0, False


def _unit(seed: int, *parts: str) -> float:
    """A deterministic number in [0, 1) from the seed and some text (no shared random stream)."""
    digest = hashlib.sha256(":".join((str(seed), *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class ScenarioEngine:
    """Sync engine: the simulated provider's call, then the scenario's answer and its faults."""

    def __init__(
        self,
        inner: SimEngine,
        *,
        accuracy: float = 0.8,
        seed: int = 0,
        labelled: list | None = None,
    ) -> None:
        if not 0.0 <= accuracy <= 1.0:
            raise ValueError(f"accuracy is a share between 0 and 1, got {accuracy}")
        self.inner, self.accuracy, self.seed = inner, accuracy, seed
        self.labels = LabelledQuality(labelled)
        self.faults = Faults()
        self.supports_response_schema = inner.supports_response_schema
        self.supported_params = inner.supported_params

    @property
    def stats(self):
        """The simulated provider's counters (calls, in flight, errors)."""
        return self.inner.stats

    def _values(self, question: str, degraded: bool) -> dict[str, str]:
        example = self.labels.example_for(question)
        gold = example.answer if example is not None else None
        right = (
            gold is not None
            and not degraded
            and _unit(self.seed, "right", question) < self.accuracy
        )
        answer = gold if right else WRONG_ANSWER
        low, high = (0.6, 1.0) if right else (0.2, 0.7)
        confidence = low + (high - low) * _unit(self.seed, "confidence", question)
        return {"answer": answer, "confidence": f"{confidence:.2f}"}

    def _rewrite(self, request: Request, response: Response, degraded: bool) -> Response:
        question = request_inputs(request).get("question", "")
        values = self._values(question, degraded)
        text = "".join(getattr(p, "text", "") or "" for p in response.message.parts)
        if text.lstrip().startswith("{"):
            data = json.loads(text)
            data.update(
                {k: (float(v) if k == "confidence" else v) for k, v in values.items() if k in data}
            )
            text = json.dumps(data)
        else:
            text = _MARKER_FIELD.sub(
                lambda m: f"[[ ## {m.group(1)} ## ]]\n{values.get(m.group(1), m.group(2))}", text
            )
        return replace(response, message=Message.assistant((TextPart(text),)))

    def complete(self, request: Request) -> Response:
        extra, degraded = self.faults.extra_latency, self.faults.degraded
        response = self.inner.complete(request)
        if extra > 0:
            time.sleep(extra)
        return self._rewrite(request, response, degraded)

    def close(self) -> None:
        self.inner.close()


class AsyncScenarioEngine:
    """Async twin sharing the sync engine's scenario and faults (waits with `asyncio.sleep`)."""

    def __init__(self, sync: ScenarioEngine, inner_async) -> None:
        self.sync, self.inner = sync, inner_async
        self.supports_response_schema = sync.supports_response_schema
        self.supported_params = sync.supported_params

    async def complete(self, request: Request) -> Response:
        extra, degraded = self.sync.faults.extra_latency, self.sync.faults.degraded
        response = await self.inner.complete(request)
        if extra > 0:
            await asyncio.sleep(extra)
        return self.sync._rewrite(request, response, degraded)

    async def aclose(self) -> None:
        await self.inner.aclose()


def scenario_lm(
    latency: float = 0.02,
    jitter: float = 0.005,
    *,
    accuracy: float = 0.8,
    seed: int = 0,
    error_rate: float = 0.0,
    labelled: list | None = None,
    cache: bool = False,
    **lm_kwargs,
) -> dspy.LM:
    """A `dspy.LM` on the scenario engine; `lm.engine.faults` switches faults on and off.

    `cache=False` by default: a fault must reach the provider to be seen (a cached answer would
    hide it). Pass `cache=True` to measure cache hits and the money they save.
    """
    from ..lm import AsyncSimEngine

    inner = SimEngine(latency=latency, jitter=jitter, seed=seed, error_rate=error_rate)
    engine = ScenarioEngine(inner, accuracy=accuracy, seed=seed, labelled=labelled)
    lm_kwargs.setdefault("num_retries", 0)  # an injected error should be seen, not retried away
    return dspy.LM(
        SIM_MODEL,
        engine=engine,
        async_engine=AsyncScenarioEngine(engine, AsyncSimEngine(inner)),
        cache=cache,
        **lm_kwargs,
    )
