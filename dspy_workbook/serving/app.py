"""The DSPy question-answering service: `create_app(settings)` builds it, everything else uses it.

The notebook, the tests, `uvicorn --factory dspy_workbook.serving.app:app_from_env`, the
container and the AWS Lambda handler all build the app with this one factory, so what the tests
prove is what runs in production.

Endpoints:

* `POST /predict` — `{"question": "..."}` → answer, confidence, whether it came from the cache.
  Needs an API key in the `X-API-Key` header. Errors are JSON `{"error": {"type", "message",
  "request_id"}}`: 400 unreadable body, 401 no/wrong key, 413 body over the size limit,
  422 invalid body, 429 over the rate limit (with `Retry-After`), 503 the LM failed, 504 the
  LM took longer than the timeout.
* `GET /health` — liveness: the process answers (never touches the LM).
* `GET /ready` — readiness: the LM answers a tiny prompt (result reused for a few seconds).
* `GET /metrics` — Prometheus text format (metric names in `dspy_workbook.serving.metrics`).

Every response carries `X-Request-ID` (the client's, when it sent a sane one) and, on `/predict`,
`X-RateLimit-Limit/Remaining/Reset`. DSPy is configured once at start-up (the lifespan); each
request runs under `dspy.context(lm=..., adapter=...)` so that several apps — each with its own
LM — can live in one process, as they do in the tests and the notebook.
"""

import asyncio
import contextvars
import hmac
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import dspy
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from .cache import AnswerCache, MemoryAnswerCache, RedisAnswerCache, answer_key
from .confidence import agreement_confidence, logprob_confidence
from .limiter import MemoryRateLimiter, RateDecision, RateLimiter, RedisRateLimiter, rate_headers
from .logs import service_logger
from .metrics import CONTENT_TYPE_LATEST, ServiceMetrics
from .settings import Settings

__all__ = [
    "ErrorBody",
    "PredictResponse",
    "ServiceError",
    "ServiceParts",
    "app_from_env",
    "check_api_key",
    "classify_error",
    "create_app",
    "question_model",
]

API_KEY_HEADER = "X-API-Key"
API_KEY_SCHEME = "APIKeyHeader"
READY_CACHE_SECONDS = 5.0
_PROBING = contextvars.ContextVar("readiness_probe", default=False)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_STATUS_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    422: "validation_error",
    429: "rate_limited",
    503: "lm_unavailable",
    504: "lm_timeout",
}


# --- the request and response models ------------------------------------------------------------
def question_model(max_chars: int) -> type[BaseModel]:
    """The `/predict` body: one non-blank question of at most `max_chars` characters, no more."""
    return create_model(
        "QuestionRequest",
        __config__=ConfigDict(extra="forbid", str_strip_whitespace=True),
        question=(
            str,
            Field(
                min_length=1,
                max_length=max_chars,
                description=f"The question, 1 to {max_chars} characters after "
                "leading/trailing whitespace is removed.",
                examples=["What is the capital of France?"],
            ),
        ),
    )


class PredictResponse(BaseModel):
    """A served answer."""

    question: str
    answer: str
    confidence: float = Field(
        ge=0.0,
        le=1.0,
        description=(
            "How sure the model was, in [0, 1]: token log-probabilities when the model gives them, "
            "else agreement across samples (see `confidence_method`)."
        ),
    )
    confidence_method: str = Field(description="`logprobs` or `agreement`")
    cached: bool = Field(description="true when served from the answer cache")
    request_id: str


class ErrorDetail(BaseModel):
    type: str = Field(
        description="machine-readable: unauthorized, validation_error, rate_limited, "
        "lm_unavailable, lm_timeout, payload_too_large, internal_error, …"
    )
    message: str = Field(description="what went wrong and what to do about it")
    request_id: str = Field(description="quote it when reporting a problem; it is in our logs")
    fields: list[dict[str, str]] | None = Field(default=None, description="validation errors only")


class ErrorBody(BaseModel):
    """Every error response has this shape; no stack trace, no secret, no echo of the input."""

    error: ErrorDetail


def _error_doc(text: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": text}


PREDICT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error_doc("The body could not be read as JSON text (e.g. it is not UTF-8)."),
    401: _error_doc(f"Missing or wrong API key (send it in the `{API_KEY_HEADER}` header)."),
    413: _error_doc("Request body larger than the documented limit."),
    422: _error_doc("Invalid body: blank or oversized question, wrong type, or an unknown field."),
    429: _error_doc("Over this key's rate limit; wait `Retry-After` seconds."),
    503: _error_doc("The language model failed; retrying later may work."),
    504: _error_doc("The language model did not answer within the timeout."),
}


# --- errors ---------------------------------------------------------------------------------------
class ServiceError(HTTPException):
    """An HTTP error with a machine-readable `error_type`, rendered as `ErrorBody`."""

    def __init__(
        self,
        status_code: int,
        error_type: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status_code, detail=message, headers=dict(headers or {}))
        self.error_type = error_type


def classify_error(exc: BaseException) -> tuple[int, str]:
    """Map a failure of the DSPy program to (HTTP status, error type).

    A time-out (ours, `asyncio.timeout`, or the provider's) is 504: the client may retry with a
    longer budget. Any other LM or adapter failure is 503: the dependency is unavailable, not the
    request wrong. Anything else is a bug of ours: 500.
    """
    if isinstance(exc, TimeoutError | dspy.LMTimeoutError):
        return 504, "lm_timeout"
    if isinstance(exc, dspy.DSPyError):
        return 503, "lm_unavailable"
    return 500, "internal_error"


def _error_response(
    status: int,
    error_type: str,
    message: str,
    request_id: str,
    headers: Mapping[str, str] | None = None,
    fields: list[dict[str, str]] | None = None,
) -> JSONResponse:
    detail = ErrorDetail(type=error_type, message=message, request_id=request_id, fields=fields)
    return JSONResponse(
        ErrorBody(error=detail).model_dump(exclude_none=True),
        status_code=status,
        headers=dict(headers or {}),
    )


# --- authentication ------------------------------------------------------------------------------
def check_api_key(presented: str | None, keys: Mapping[str, str]) -> str:
    """The client name whose key was presented; `HTTPException(401)` otherwise.

    Every configured key is compared, each with `hmac.compare_digest`, so the time taken does not
    reveal how many leading characters were right, nor which key was close. The presented key is
    never put in the message.
    """
    challenge = {"WWW-Authenticate": "ApiKey"}
    if not presented:
        raise ServiceError(
            401,
            "unauthorized",
            f"missing API key: send it in the {API_KEY_HEADER} header",
            challenge,
        )
    given = presented.encode("utf-8", "surrogateescape")
    match = None
    for name, key in keys.items():
        if hmac.compare_digest(given, key.encode("utf-8")) and match is None:
            match = name
    if match is None:
        raise ServiceError(401, "unauthorized", "invalid API key", challenge)
    return match


# --- the parts a deployment (or a student) can swap ----------------------------------------------
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
            _configure_dspy_once(self.lm, self.adapter, self.log)
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


def _configure_dspy_once(lm: dspy.LM, adapter: dspy.Adapter, log: logging.Logger) -> None:
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


class _QuietProbe(logging.Filter):
    """Drop DSPy's "response was truncated" warning for the readiness probe's short answer."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_PROBING.get() and "truncated" in record.getMessage())


_PROBE_FILTER = _QuietProbe()


def _service(request: Request) -> Service:
    return request.app.state.service


def _request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id") or uuid.uuid4().hex


# --- the ASGI middleware: request id, size limit, metrics, rate headers, JSON access log ---------
class ObserveMiddleware:
    """Pure ASGI (no `BaseHTTPMiddleware`: that one costs a task and a queue per request)."""

    def __init__(self, app: Any, service: Service, max_body_bytes: int) -> None:
        self.app, self.service, self.max_body_bytes = app, service, max_body_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        metrics, started = self.service.metrics, time.perf_counter()
        outcome = {"status": 500}

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                headers["X-Served-By"] = f"worker-{os.getpid()}"  # which worker answered
                decision: RateDecision | None = state.get("rate")
                if decision is not None:
                    for name, value in rate_headers(decision).items():
                        headers[name] = value
            await send(message)

        route = scope.get("path", "")
        length = dict(scope.get("headers") or ()).get(b"content-length")
        metrics.in_flight.inc()
        try:
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                response = _error_response(
                    413,
                    "payload_too_large",
                    f"request body over {self.max_body_bytes} bytes",
                    request_id,
                )
                await response(scope, receive, send_with_headers)
            else:
                await self.app(scope, receive, send_with_headers)
        finally:
            metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            status = outcome["status"]
            known = route if route in ("/predict", "/health", "/ready", "/metrics") else "other"
            metrics.requests.labels(known, scope.get("method", ""), str(status)).inc()
            metrics.duration.labels(known).observe(elapsed)
            if status >= 400:
                metrics.errors.labels(
                    state.get("error_type")
                    or _STATUS_TYPES.get(
                        status, "internal_error" if status >= 500 else "client_error"
                    )
                ).inc()
            if route != "/metrics":
                self.service.log.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": scope.get("method"),
                        "path": route,
                        "status": status,
                        "latency_ms": round(elapsed * 1000, 2),
                        "client": state.get("client"),
                        "error_type": state.get("error_type"),
                    },
                )


# --- the app -------------------------------------------------------------------------------------
def create_app(
    settings: Settings | None = None,
    *,
    lm: dspy.LM | None = None,
    program: dspy.Module | None = None,
    parts: ServiceParts | None = None,
) -> FastAPI:
    """A new, independent app: its own LM (default: the course LM of `settings.backend`), limiter,
    cache and metrics registry. Nothing is shared with another app built in the same process."""
    settings = settings or Settings.from_env()
    parts = parts or ServiceParts()
    metrics = ServiceMetrics()
    service = Service(settings, parts, lm, program, metrics)
    RequestModel = parts.request_model or question_model(settings.max_question_chars)
    # JSON escapes make a body up to ~6 bytes per character; the rest is room for the envelope.
    max_body_bytes = settings.max_question_chars * 6 + 1024

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        yield
        await service.close()

    app = FastAPI(
        title="DSPy question answering",
        version="1.0.0",
        lifespan=lifespan,
        description=(
            f"Answers questions with a DSPy program. Send your API key in the `{API_KEY_HEADER}` "
            f"header. Each key may send {settings.rate_burst} requests at once and "
            f"{settings.rate_per_second:g} per second on average; questions are at most "
            f"{settings.max_question_chars} characters and bodies at most {max_body_bytes} bytes. "
            'Errors are JSON `{"error": {"type", "message", "request_id"}}`.'
        ),
    )
    app.state.service = service
    app.add_middleware(ObserveMiddleware, service=service, max_body_bytes=max_body_bytes)

    async def within_rate_limit(request: Request) -> str:
        """Authenticate (401), then take a token from the client's bucket (429).

        One dependency that reads the header itself: every level of nested dependencies (e.g.
        FastAPI's `APIKeyHeader`) costs time on every request. The scheme is still documented:
        see `_document_api_key` below.
        """
        client = parts.check_api_key(request.headers.get(API_KEY_HEADER), settings.api_keys)
        request.state.client = client
        await service.start()
        assert service.limiter is not None
        decision = await service.limiter.acquire(client)
        request.state.rate = decision
        if not decision.allowed:
            raise ServiceError(
                429,
                "rate_limited",
                (
                    f"rate limit of {service.limiter.rate:g} requests/s "
                    f"(burst {service.limiter.burst})"
                    f" exceeded; retry after {rate_headers(decision)['Retry-After']} s"
                ),
                rate_headers(decision),
            )
        return client

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses=PREDICT_ERRORS,
        summary="Answer a question",
        openapi_extra={"security": [{API_KEY_SCHEME: []}]},
    )
    async def predict(
        body: RequestModel,
        request: Request,  # type: ignore[valid-type]
        client: Annotated[str, Depends(within_rate_limit)],
    ) -> JSONResponse:
        request_id = _request_id(request)
        question = body.question
        key = answer_key(service.program_id, question)
        assert service.cache is not None
        hit = await service.cache.get(key)
        if hit is not None:  # validated when it was stored: serialise directly (the hot path)
            metrics.cache_hits.inc()
            return JSONResponse(
                {"question": question, **hit, "cached": True, "request_id": request_id}
            )
        metrics.cache_misses.inc()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(settings.lm_timeout):
                result = await service.answer(question)
        except Exception as exc:  # the LM's failures become 503/504; our bugs stay 500
            status, error_type = parts.classify_error(exc)
            service.log.warning(
                "prediction failed",
                extra={
                    "request_id": request_id,
                    "error_type": error_type,
                    "exception": type(exc).__name__,
                },
            )
            if status >= 500 and status not in (503, 504):
                raise
            message = (
                f"the language model did not answer within {settings.lm_timeout:g} s; retry later"
                if status == 504
                else "the language model is unavailable; retry later"
            )
            raise ServiceError(status, error_type, message) from None
        finally:
            metrics.lm_duration.observe(time.perf_counter() - started)
        metrics.confidence.labels(result.method).observe(result.confidence)
        value = {
            "answer": result.answer,
            "confidence": result.confidence,
            "confidence_method": result.method,
        }
        answer = PredictResponse(question=question, cached=False, request_id=request_id, **value)
        await service.cache.put(key, value)
        return JSONResponse(answer.model_dump())

    @app.get("/health", summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        summary="Readiness: the language model answers",
        responses={503: _error_doc("The language model does not answer.")},
    )
    async def ready(request: Request) -> dict[str, Any]:
        await service.start()
        if time.monotonic() - service.ready_at > READY_CACHE_SECONDS:
            dspy_log = logging.getLogger("dspy.clients.lm")
            if _PROBE_FILTER not in dspy_log.filters:
                dspy_log.addFilter(_PROBE_FILTER)
            token = _PROBING.set(True)
            try:
                async with asyncio.timeout(min(settings.lm_timeout, 10.0)):
                    with dspy.context(lm=service.lm):
                        await service.lm.acall(
                            "Reply with the word ready.", max_tokens=8, cache=False
                        )
            except Exception as exc:
                service.log.warning(
                    "readiness probe failed",
                    extra={"request_id": _request_id(request), "exception": type(exc).__name__},
                )
                raise ServiceError(
                    503, "lm_unavailable", "the language model does not answer"
                ) from None
            finally:
                _PROBING.reset(token)
            service.ready_at = time.monotonic()
        return {"status": "ready", "model": str(getattr(service.lm, "model", "?"))}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics_endpoint() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error_type = getattr(exc, "error_type", None) or _STATUS_TYPES.get(exc.status_code, "error")
        request.state.error_type = error_type
        message = exc.detail if isinstance(exc.detail, str) else error_type.replace("_", " ")
        return _error_response(
            exc.status_code, error_type, message, _request_id(request), exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        request.state.error_type = "validation_error"
        fields = [
            {
                "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body",
                "problem": str(err.get("msg", "invalid")),
            }
            for err in exc.errors()
        ]
        message = "; ".join(f"{f['field']}: {f['problem']}" for f in fields[:5])
        return _error_response(
            422, "validation_error", message, _request_id(request), fields=fields
        )

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        request.state.error_type = "internal_error"
        service.log.error(
            "unhandled error",
            extra={"request_id": _request_id(request), "exception": type(exc).__name__},
        )
        return _error_response(
            500, "internal_error", "internal error; quote the request id", _request_id(request)
        )

    _document_api_key(app)
    return app


def _document_api_key(app: FastAPI) -> None:
    """Declare the `X-API-Key` scheme in the OpenAPI schema (/docs shows an "Authorize" button)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes[API_KEY_SCHEME] = {
                "type": "apiKey",
                "in": "header",
                "name": API_KEY_HEADER,
                "description": "Your API key (ask the operator for one).",
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def app_from_env() -> FastAPI:
    """The app configured entirely by environment variables (`uvicorn --factory` and containers)."""
    return create_app(Settings.from_env())
