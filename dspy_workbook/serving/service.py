"""The state an app keeps between requests, and how it turns a question into an answer.

Separate from the routes so that the HTTP layer only validates, authenticates and renders, while
everything that touches DSPy — building the LM once, configuring DSPy once, running the program
with `acall` and measuring its confidence — is in one class. `ServiceParts` is the seam where the
three parts Exercise 5 has you write go in: the package ships no default for them.
"""

import asyncio
import importlib
import importlib.util
import inspect
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import dspy
from pydantic import BaseModel

from ..env import SERVICE_PARTS
from .cache import AnswerCache, MemoryAnswerCache, RedisAnswerCache
from .confidence import agreement_confidence, logprob_confidence
from .errors import classify_error
from .limiter import RateDecision, RateLimiter
from .logs import service_logger
from .metrics import ServiceMetrics
from .redis_limiter import RedisRateLimiter
from .redis_state import redis_client
from .settings import Settings

__all__ = [
    "PARTS_VARIABLE",
    "Answer",
    "Service",
    "ServiceParts",
    "configure_dspy_once",
    "parts_from_env",
]

PARTS_VARIABLE = SERVICE_PARTS  # `module:name` of the parts (dspy_workbook/env.py)


@dataclass(frozen=True, kw_only=True)
class ServiceParts:
    """The pieces of the service that are yours to write (Exercise 5), and two replaceable ones.

    * `request_model(max_chars)` returns the pydantic model of `POST /predict`'s body (Task 1);
    * `check_api_key(presented, keys)` returns the client's name or raises a 401 (Task 2);
    * `limiter(rate, burst)` builds an object whose `acquire(key)` returns a `RateDecision`,
      plainly or awaited (Task 3) — one per app, from the app's settings;
    * `classify_error(exc)` maps a failure to (status, error type) — given: `errors.classify_error`;
    * `cache`: the answer cache (default: in memory, or Redis when settings name one).
    """

    request_model: Callable[[int], type[BaseModel]]
    check_api_key: Callable[[str | None, Mapping[str, str]], str]
    limiter: Callable[[float, int], Any]
    classify_error: Callable[[BaseException], tuple[int, str]] = classify_error
    cache: AnswerCache | None = None


def parts_from_env(env: Mapping[str, str] | None = None) -> ServiceParts:
    """The parts `WORKBOOK_SERVICE_PARTS` names: `module:name` or `/path/to/file.py:name`.

    `name` is a `ServiceParts` or a function that returns one. This is how a process that is not
    your notebook — `uvicorn --factory …:app_from_env`, a container, AWS Lambda — gets *your* parts:
    put them in a module and name it here.
    """
    env = os.environ if env is None else env
    spec = (env.get(PARTS_VARIABLE) or "").strip()
    if not spec:
        raise ValueError(
            "the service needs its parts: create_app(settings, parts=ServiceParts(request_model=…, "
            f"check_api_key=…, limiter=…)), or {PARTS_VARIABLE}=module:name naming them"
        )
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name.isidentifier():
        raise ValueError(f"{PARTS_VARIABLE} is 'module:name' or 'file.py:name', got {spec!r}")
    try:
        if where.endswith(".py"):
            module_name = f"_service_parts_{abs(hash(os.path.abspath(where)))}"
            module = sys.modules.get(module_name)
            if module is None:
                found = importlib.util.spec_from_file_location(module_name, where)
                if found is None or found.loader is None or not os.path.isfile(where):
                    raise ImportError(f"no Python file at {where}")
                module = importlib.util.module_from_spec(found)
                sys.modules[module_name] = module
                try:
                    found.loader.exec_module(module)
                except BaseException:
                    del sys.modules[module_name]
                    raise
        else:
            module = importlib.import_module(where)
    except ImportError as exc:
        raise ValueError(f"{PARTS_VARIABLE}={spec!r}: cannot import {where!r} ({exc})") from None
    value = getattr(module, name, None)
    if value is None:
        raise ValueError(f"{PARTS_VARIABLE}={spec!r}: {where!r} defines no {name!r}")
    parts = value
    if callable(value) and not isinstance(value, ServiceParts):
        try:
            parts = value()
        except TypeError:  # not a function of no arguments: reported as what it is, below
            parts = value
    if not isinstance(parts, ServiceParts):
        raise ValueError(
            f"{PARTS_VARIABLE}={spec!r} is a {type(parts).__name__}, not a ServiceParts "
            "(or a function returning one)"
        )
    return parts


async def take_token(limiter: Any, key: str) -> RateDecision:
    """`limiter.acquire(key)`, awaited when it is a coroutine (a shared limiter awaits Redis)."""
    decision = limiter.acquire(key)
    if inspect.isawaitable(decision):
        decision = await decision
    if not isinstance(decision, RateDecision):
        kind = type(decision).__name__
        raise TypeError(f"the limiter's acquire returned {kind}, not a RateDecision")
    return decision


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
        self.limiter: RateLimiter | None = None  # built at start: `parts.limiter` or Redis
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
            if self.settings.redis_url:  # bounded calls, one log line per outage: see redis_state
                self.redis = redis_client(
                    self.settings.redis_url,
                    timeout=self.settings.redis_timeout,
                    when_down=self.settings.when_redis_down,
                    log=self.log,
                    on_unavailable=self.metrics.count_redis_unavailable,
                )
            if self.limiter is None:
                s = self.settings
                self.limiter = (  # Redis: one bucket per key shared by every worker
                    RedisRateLimiter(self.redis, s.rate_per_second, s.rate_burst, s.namespace)
                    if self.redis is not None
                    else self.parts.limiter(s.rate_per_second, s.rate_burst)
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
