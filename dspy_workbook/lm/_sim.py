"""A simulated remote provider, as a DSPy 3.4 engine.

Why simulate? A real provider is what makes concurrency, retries and rate limits matter, but it
needs a key, a network and money, and it is never the same twice. The simulator behaves like one:
every call takes time (latency + seeded jitter, spent *waiting*, like network I/O), it can fail
(`error_rate`), and it enforces a requests-per-second budget by answering with a rate-limit error
that carries `retry_after`, like an HTTP 429. Answers are deterministic and name the question they
answer ("Simulated answer to: …"), so a test can prove that answers were not mixed up.

Randomness is decided per request content and attempt number, never by a shared random stream, so
the same run gives the same faults whatever the scheduling of concurrent calls.

A cancelled or interrupted call (`asyncio` timeout, task cancellation, Ctrl-C) ends at once with
that cancellation: the simulated fault of an attempt is only raised when its wait completed, so it
can never replace a cancellation (which DSPy would then retry).

`logprobs=True` gets deterministic token log-probabilities: the text is cut into word and
punctuation tokens, and each request has a "certainty" drawn from its content, so the same
question always gets the same confidence and different questions get different ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import dspy
from dspy.clients.engines import AsyncEngine, Engine
from dspy.lm15 import (
    Message,
    RateLimitError,
    Request,
    Response,
    ServerError,
    StreamDeltaEvent,
    StreamEndEvent,
    StreamStartEvent,
    TextDelta,
    TextPart,
    TokenLogprob,
    Usage,
)

from ._request import request_inputs, request_text

__all__ = ["SimEngine", "AsyncSimEngine", "SimStats", "sim_lm", "request_inputs", "request_text"]

SIM_MODEL = "sim/course-provider"
_TOKEN_RE = re.compile(r"\w+|\s+|[^\w\s]")
_OUTPUT_FIELDS_RE = re.compile(r"Your output fields are:\n(.*?)(?:\n\n|\Z)", re.S)


@dataclass
class SimStats:
    """What the simulated provider saw: counts and the timing of every accepted call."""

    calls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    started_at: list[float] = field(default_factory=list)


def _output_fields(request: Request) -> tuple[list[str], bool]:
    """Output field names, and whether the caller asked for JSON (JSONAdapter) or markers."""
    fmt = request.config.response_format or {}
    schema = fmt.get("schema") if isinstance(fmt, dict) else None
    if schema and "properties" in schema:
        return list(schema["properties"]), True
    system = request_text(request)
    match = _OUTPUT_FIELDS_RE.search(system)
    names = re.findall(r"`(\w+)`", match.group(1)) if match else []
    return names or ["answer"], bool(fmt)


def _logprobs(text: str, key: str) -> tuple[TokenLogprob, ...]:
    """Deterministic log-probabilities for `text`: a certainty per `key`, a jitter per token."""
    certainty = 0.5 + 0.49 * _unit(f"certainty:{key}")
    out = []
    for index, token in enumerate(_TOKEN_RE.findall(text)):
        logprob = math.log(certainty) * (0.5 + _unit(f"{key}:{index}:{token}"))
        out.append(TokenLogprob(token=token, logprob=logprob, bytes=tuple(token.encode())))
    return tuple(out)


def _unit(text: str) -> float:
    """A number in [0, 1) fixed by `text`."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) / 16**12


class SimEngine(Engine):
    """Synchronous engine of the simulated provider (waits with `time.sleep`)."""

    supports_response_schema = True
    supported_params = frozenset(
        {
            "response_format",
            "temperature",
            "max_tokens",
            "top_p",
            "seed",
            "stop",
            "logprobs",
            "top_logprobs",
        }
    )

    def __init__(
        self,
        latency: float = 0.2,
        jitter: float = 0.0,
        seed: int = 0,
        error_rate: float = 0.0,
        rate_limit: float | None = None,
        answers: dict[str, str] | None = None,
        stream_chunks: int = 8,
    ) -> None:
        if not (math.isfinite(latency) and math.isfinite(jitter)) or latency < 0 or jitter < 0:
            raise ValueError(
                f"latency and jitter must be >= 0, got latency={latency}, jitter={jitter}"
            )
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error_rate is a probability between 0 and 1, got {error_rate}")
        if rate_limit is not None and not (0 < rate_limit < math.inf):
            raise ValueError(f"rate_limit is requests per second and must be > 0, got {rate_limit}")
        self.latency, self.jitter, self.seed = latency, jitter, seed
        self.error_rate, self.rate_limit = error_rate, rate_limit
        self.answers = dict(answers or {})
        self.stream_chunks = max(1, stream_chunks)
        self.stats = SimStats()
        self._lock = threading.Lock()
        self._attempts: dict[str, int] = {}
        self._window: deque[float] = deque()

    # -- the provider's decisions -------------------------------------------------------------
    def _admit(self, request: Request) -> tuple[float, random.Random]:
        """Count the call, apply the rate limit and pick this attempt's latency and fate."""
        digest = hashlib.sha256(request_text(request).encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            attempt = self._attempts.get(digest, 0)
            self._attempts[digest] = attempt + 1
            if self.rate_limit is not None:
                while self._window and now - self._window[0] >= 1.0:
                    self._window.popleft()
                if len(self._window) >= self.rate_limit:
                    self.stats.rate_limited += 1
                    retry_after = max(0.001, 1.0 - (now - self._window[0]))
                    raise RateLimitError(
                        f"simulated provider: more than {self.rate_limit:g} requests per second",
                        provider="sim",
                        status=429,
                        retry_after=round(retry_after, 3),
                    )
                self._window.append(now)
            rng = random.Random(f"{self.seed}:{digest}:{attempt}")
            self.stats.calls += 1
            self.stats.started_at.append(now)
            self.stats.in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
        delay = max(0.0, self.latency + rng.uniform(-self.jitter, self.jitter))
        return delay, rng

    def _finish(self, rng: random.Random) -> None:
        """The attempt's wait completed: leave, and fail now if this attempt is a fault."""
        with self._lock:
            self.stats.in_flight -= 1
            if rng.random() < self.error_rate:
                self.stats.server_errors += 1
                raise ServerError(
                    "simulated provider: transient server error (HTTP 503)",
                    provider="sim",
                    status=503,
                )

    def _abandon(self) -> None:
        """The attempt was cancelled or interrupted: leave, raising nothing (the cause wins)."""
        with self._lock:
            self.stats.in_flight -= 1

    def _answer(self, request: Request) -> Response:
        inputs = request_inputs(request)
        subject = next(iter(inputs.values()), "") or (request.messages[-1].text or "").strip()
        names, as_json = _output_fields(request)
        scripted = next((a for key, a in self.answers.items() if key in subject), None)
        values = {
            name: (
                scripted
                if scripted is not None and name == names[-1]
                else f"Simulated {name} to: {subject}"
                if name == names[-1]
                else f"Simulated {name} about: {subject}"
            )
            for name in names
        }
        if as_json:
            text = json.dumps(values)
        else:
            fields = "".join(f"[[ ## {k} ## ]]\n{v}\n\n" for k, v in values.items())
            text = fields + "[[ ## completed ## ]]"
        prompt_tokens = max(1, len(request_text(request)) // 4)
        logprobs = None
        if request.config.logprobs is not None:
            logprobs = _logprobs(text, f"{self.seed}:{subject}")
        return Response(
            id=None,
            model=SIM_MODEL,
            message=Message.assistant((TextPart(text),)),
            finish_reason="stop",
            usage=Usage(input_tokens=prompt_tokens, output_tokens=max(1, len(text) // 4)),
            logprobs=logprobs,
        )

    def _chunks(self, text: str) -> list[str]:
        size = max(1, -(-len(text) // self.stream_chunks))
        return [text[i : i + size] for i in range(0, len(text), size)]

    # -- the engine contract ------------------------------------------------------------------
    def _deltas(self, response: Response) -> list[TextDelta]:
        """The response's text in chunks; with logprobs, each chunk carries its own tokens'."""
        chunks = self._chunks(response.message.parts[0].text)
        if response.logprobs is None:
            return [TextDelta(text=chunk) for chunk in chunks]
        # Tokens go to the chunk their first character is in.
        tokens, starts, pos = response.logprobs, [], 0
        for token in tokens:
            starts.append(pos)
            pos += len(token.token)
        deltas, begin, t = [], 0, 0
        for chunk in chunks:
            end, mine = begin + len(chunk), []
            while t < len(tokens) and starts[t] < end:
                mine.append(tokens[t])
                t += 1
            deltas.append(TextDelta(text=chunk, logprobs=tuple(mine)))
            begin = end
        return deltas

    def complete(self, request: Request) -> Response:
        delay, rng = self._admit(request)
        try:
            time.sleep(delay)
        except BaseException:  # Ctrl-C: the interrupt propagates, no fault is raised over it
            self._abandon()
            raise
        self._finish(rng)
        return self._answer(request)

    def stream(self, request: Request) -> Iterator:
        delay, rng = self._admit(request)
        response = self._answer(request)
        deltas = self._deltas(response)
        try:
            yield StreamStartEvent(model=SIM_MODEL)
            for delta in deltas:
                time.sleep(delay / len(deltas))
                yield StreamDeltaEvent(delta=delta)
        except BaseException:  # closed early or interrupted: leave quietly
            self._abandon()
            raise
        self._finish(rng)
        yield StreamEndEvent(finish_reason="stop", usage=response.usage)

    def close(self) -> None:
        """Nothing to release: the simulator holds no connections."""


class AsyncSimEngine(AsyncEngine):
    """Asynchronous twin sharing the sync engine's state; waits with `asyncio.sleep` (like I/O)."""

    def __init__(self, sync: SimEngine) -> None:
        self.sync = sync
        self.supports_response_schema = sync.supports_response_schema
        self.supported_params = sync.supported_params

    async def complete(self, request: Request) -> Response:
        delay, rng = self.sync._admit(request)
        try:
            await asyncio.sleep(delay)
        except BaseException:  # cancelled (a timeout): the cancellation wins, never a fault
            self.sync._abandon()
            raise
        self.sync._finish(rng)
        return self.sync._answer(request)

    async def stream(self, request: Request) -> AsyncIterator:
        delay, rng = self.sync._admit(request)
        response = self.sync._answer(request)
        deltas = self.sync._deltas(response)
        try:
            yield StreamStartEvent(model=SIM_MODEL)
            for delta in deltas:
                await asyncio.sleep(delay / len(deltas))
                yield StreamDeltaEvent(delta=delta)
        except BaseException:  # cancelled or closed early: leave quietly
            self.sync._abandon()
            raise
        self.sync._finish(rng)
        yield StreamEndEvent(finish_reason="stop", usage=response.usage)

    async def aclose(self) -> None:
        """Nothing to release."""


def sim_lm(
    latency: float = 0.2,
    jitter: float = 0.0,
    seed: int = 0,
    error_rate: float = 0.0,
    rate_limit: float | None = None,
    answers: dict[str, str] | None = None,
    **lm_kwargs,
) -> dspy.LM:
    """A `dspy.LM` backed by the simulated provider; its engine's `.stats` counts what it saw.

    >>> lm = sim_lm(latency=0.0)
    >>> lm.engine.stats.calls
    0
    """
    engine = SimEngine(
        latency=latency,
        jitter=jitter,
        seed=seed,
        error_rate=error_rate,
        rate_limit=rate_limit,
        answers=answers,
    )
    lm_kwargs.setdefault("num_retries", 3)
    lm = dspy.LM(SIM_MODEL, engine=engine, async_engine=AsyncSimEngine(engine), **lm_kwargs)
    return lm
