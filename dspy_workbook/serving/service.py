"""The state an app keeps between requests, and how it turns a question into an answer.

Separate from the routes so that the HTTP layer only validates, authenticates and renders, while
everything that touches DSPy — building the LM once, configuring DSPy once, running the program
with `acall` and measuring its confidence — is in one class. `ServiceParts` is the seam where the
notebook plugs in a student's own pieces.
"""

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import dspy
from pydantic import BaseModel

from .auth import check_api_key
from .cache import AnswerCache, MemoryAnswerCache, RedisAnswerCache
from .confidence import agreement_confidence, logprob_confidence
from .errors import classify_error
from .limiter import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from .logs import service_logger
from .metrics import ServiceMetrics
from .settings import Settings

__all__ = ["Answer", "Service", "ServiceParts", "configure_dspy_once"]


@dataclass(frozen=True)
class ServiceParts:
    """Replaceable pieces of the service; `None` means the production default built from settings.

    The notebook plugs the student's own versions in here, so that grading drives the real app.
    """

    request_model: type[BaseModel] | None = None
    check_api_key: Callable[[str | None, Mapping[str, str]], str] = check_api_key
    classify_error: Callable[[BaseException], tuple[int, str]] = classify_error
    limiter: RateLimiter | None = None
    cache: AnswerCache | None = None


@dataclass
class Answer:
    answer: str
    confidence: float
    method: str


class Service:
    """What the app holds between requests: the LM and program, limiter, cache and metrics."""

    def __init__(
        self,
        settings: Settings,
        parts: ServiceParts,
        lm: dspy.LM | None,
        program: dspy.Module | None,
        metrics: ServiceMetrics,
    ) -> None:
        self.settings, self.parts, self.metrics = settings, parts, metrics
        self.lm, self.program = lm, program
        self.adapter = dspy.JSONAdapter()
        self.limiter: RateLimiter | None = parts.limiter
        self.cache: AnswerCache | None = parts.cache
        self.redis: Any = None
        self.logprobs_ok: bool | None = None if settings.confidence != "agreement" else False
        self.ready_at = 0.0
        self.log = service_logger()
        self._started = False
        self._program_id: str | None = None
        self._lock = asyncio.Lock()

    @property
    def program_id(self) -> str:
        """Model and program, as part of every cache key (computed once: `repr` is not cheap)."""
        if self._program_id is None:
            self._program_id = f"{getattr(self.lm, 'model', '?')}:{self.program}"
        return self._program_id

    async def start(self) -> None:
        """Build the LM, program and shared state once (idempotent; also run lazily)."""
        if self._started:
            return
        async with self._lock:
            if self._started:
                return
            if self.lm is None:
                from ..lm import course_lm

                self.lm = await asyncio.to_thread(course_lm, self.settings.backend)
            if self.program is None:
                self.program = dspy.Predict("question -> answer")
            configure_dspy_once(self.lm, self.adapter, self.log)
            if self.settings.redis_url and (self.limiter is None or self.cache is None):
                import redis.asyncio as aioredis

                self.redis = aioredis.from_url(self.settings.redis_url, decode_responses=True)
            if self.limiter is None:
                s = self.settings
                self.limiter = (
                    RedisRateLimiter(self.redis, s.rate_per_second, s.rate_burst, s.namespace)
                    if self.redis is not None
                    else MemoryRateLimiter(s.rate_per_second, s.rate_burst)
                )
            if self.cache is None:
                self.cache = (
                    RedisAnswerCache(self.redis, self.settings.namespace)
                    if self.redis is not None
                    else MemoryAnswerCache(self.settings.cache_size)
                )
            self._started = True
            self.log.info("service started", extra={"settings": self.settings.public()})

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None
        self._started = False

    async def answer(self, question: str) -> Answer:
        """Run the program with `acall` (never blocking the loop) and measure its confidence."""
        assert self.program is not None
        with dspy.context(lm=self.lm, adapter=self.adapter):
            served = None
            if self.logprobs_ok is not False:
                try:
                    served = await self.program.acall(question=question, config={"logprobs": True})
                except dspy.LMUnsupportedFeatureError:
                    if self.settings.confidence == "logprobs":
                        raise
                    self.logprobs_ok = False  # this model has none: stop asking
                else:
                    confidence = logprob_confidence(served)
                    if confidence is not None:
                        self.logprobs_ok = True
                        return Answer(str(served.answer), confidence, "logprobs")
                    if self.settings.confidence == "logprobs":
                        raise dspy.LMUnsupportedFeatureError("the model returned no logprobs")
                    self.logprobs_ok = False
            if served is None:
                served = await self.program.acall(question=question)
            samples = await asyncio.gather(
                *(
                    self.program.acall(
                        question=question, config={"rollout_id": i, "temperature": 1.0}
                    )
                    for i in range(1, self.settings.confidence_samples)
                )
            )
            confidence = agreement_confidence(str(served.answer), [str(s.answer) for s in samples])
            return Answer(str(served.answer), confidence, "agreement")


def configure_dspy_once(lm: dspy.LM, adapter: dspy.Adapter, log: logging.Logger) -> None:
    """`dspy.configure` once per process, from the thread that owns DSPy's settings.

    In a worker process this is the first and only call. In a notebook the kernel has already
    configured DSPy (and the embedded server runs in another thread, where `configure` is not
    allowed): the per-request `dspy.context` is then what selects this app's LM.
    """
    if dspy.settings.lm is not None:
        return
    try:
        dspy.configure(lm=lm, adapter=adapter, max_trace_size=0)
    except RuntimeError as exc:
        log.info(
            "dspy already configured elsewhere; using per-request dspy.context",
            extra={"reason": str(exc)},
        )
