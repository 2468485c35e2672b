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
* `GET /docs`, `GET /redoc` — the API's documentation pages, served offline (no CDN).

Every response carries `X-Request-ID` (the client's, when it sent a sane one) and, on `/predict`,
`X-RateLimit-Limit/Remaining/Reset`. DSPy is configured once at start-up (the lifespan); each
request runs under `dspy.context(lm=..., adapter=...)` so that several apps — each with its own
LM — can live in one process, as they do in the tests and the notebook.

Three parts are the student's (Exercise 5): the request model, the API-key check and the rate
limiter, passed as `create_app(settings, parts=ServiceParts(...))`. The package has no default
for them; a process started from the command line names its parts in `WORKBOOK_SERVICE_PARTS`.
"""

import asyncio
import time
from contextlib import asynccontextmanager
from typing import Annotated, Any

import dspy
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from .auth import API_KEY_HEADER, API_KEY_SCHEME, document_api_key
from .cache import answer_key
from .errors import STATUS_TYPES, ServiceError, error_response
from .limiter import rate_headers
from .metrics import CONTENT_TYPE_LATEST, ServiceMetrics
from .middleware import ObserveMiddleware, request_id_of
from .models import PredictResponse, error_doc
from .readiness import READY_CACHE_SECONDS, probe_lm
from .service import Service, ServiceParts, parts_from_env, take_token
from .settings import Settings

__all__ = ["PREDICT_ERRORS", "app_from_env", "create_app"]

# The documented error responses of `POST /predict` (the schema is `ErrorBody` for all of them).
PREDICT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: error_doc("The body could not be read as JSON text (e.g. it is not UTF-8)."),
    401: error_doc(f"Missing or wrong API key (send it in the `{API_KEY_HEADER}` header)."),
    413: error_doc("Request body larger than the documented limit."),
    422: error_doc(
        "Invalid body (blank or oversized question, wrong type, an unknown field), or a question "
        "too long for the language model's context window."
    ),
    429: error_doc("Over this key's rate limit; wait `Retry-After` seconds."),
    503: error_doc(
        "The language model failed, or the rate limiter's store (Redis) is down and the service "
        "refuses requests meanwhile (`limiter_unavailable`, with `Retry-After`); retry later."
    ),
    504: error_doc("The language model did not answer within the timeout."),
}


def create_app(
    settings: Settings | None = None,
    *,
    lm: dspy.LM | None = None,
    program: dspy.Module | None = None,
    parts: ServiceParts | None = None,
) -> FastAPI:
    """A new, independent app: its own LM (default: the course LM of `settings.backend`), limiter,
    cache and metrics registry. Nothing is shared with another app built in the same process.

    `parts` are the request model, API-key check and limiter (Exercise 5); without them, the ones
    `WORKBOOK_SERVICE_PARTS` names (see `service.parts_from_env`)."""
    settings = settings or Settings.from_env()
    parts = parts if parts is not None else parts_from_env()
    if not isinstance(parts, ServiceParts):
        raise TypeError(f"parts must be a ServiceParts, got {type(parts).__name__}")
    metrics = ServiceMetrics()
    service = Service(settings, parts, lm, program, metrics)
    RequestModel = parts.request_model(settings.max_question_chars)
    if not (isinstance(RequestModel, type) and issubclass(RequestModel, BaseModel)):
        raise TypeError(
            f"request_model({settings.max_question_chars}) returned {RequestModel!r}, "
            "not a pydantic BaseModel subclass"
        )
    # JSON escapes make a body up to ~6 bytes per character; the rest is room for the envelope.
    max_body_bytes = settings.max_question_chars * 6 + 1024

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        yield
        await service.close()

    # /docs and /redoc from files in the installed package, not a CDN: they work offline.
    app = FastAPIOffline(
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
        see `auth.document_api_key`.
        """
        client = parts.check_api_key(request.headers.get(API_KEY_HEADER), settings.api_keys)
        request.state.client = client
        await service.start()
        assert service.limiter is not None
        decision = await take_token(service.limiter, client)
        request.state.rate = decision
        if not decision.allowed:
            raise ServiceError(
                429,
                "rate_limited",
                (
                    f"rate limit of {settings.rate_per_second:g} requests/s "
                    f"(burst {settings.rate_burst})"
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
        request_id = request_id_of(request)
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
            message = {
                504: f"the language model did not answer within {settings.lm_timeout:g} s; "
                "retry later",
                503: "the language model is unavailable; retry later",
            }.get(status, "the question is too long for the language model; shorten it")
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
        responses={503: error_doc("The language model does not answer.")},
    )
    async def ready(request: Request) -> dict[str, Any]:
        await service.start()
        if time.monotonic() - service.ready_at > READY_CACHE_SECONDS:
            try:
                await probe_lm(service.lm, min(settings.lm_timeout, 10.0))
            except Exception as exc:
                service.log.warning(
                    "readiness probe failed",
                    extra={"request_id": request_id_of(request), "exception": type(exc).__name__},
                )
                raise ServiceError(
                    503, "lm_unavailable", "the language model does not answer"
                ) from None
            service.ready_at = time.monotonic()
        return {"status": "ready", "model": str(getattr(service.lm, "model", "?"))}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics_endpoint() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error_type = getattr(exc, "error_type", None) or STATUS_TYPES.get(exc.status_code, "error")
        request.state.error_type = error_type
        message = exc.detail if isinstance(exc.detail, str) else error_type.replace("_", " ")
        return error_response(
            exc.status_code, error_type, message, request_id_of(request), exc.headers
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
        return error_response(
            422, "validation_error", message, request_id_of(request), fields=fields
        )

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        # Rarely reached: `ObserveMiddleware` answers a bug itself, so that the 500 carries the
        # X-Request-ID/X-Served-By headers (this handler runs outside it, in Starlette's
        # ServerErrorMiddleware). What is left here is a failure after the response had started.
        request.state.error_type = "internal_error"
        service.log.error(
            "unhandled error",
            extra={"request_id": request_id_of(request), "exception": type(exc).__name__},
        )
        return error_response(
            500, "internal_error", "internal error; quote the request id", request_id_of(request)
        )

    document_api_key(app)
    return app


def app_from_env() -> FastAPI:
    """The app configured entirely by environment variables (`uvicorn --factory` and containers)."""
    return create_app(Settings.from_env())
