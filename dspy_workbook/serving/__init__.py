"""Exercise 5's service: a DSPy program behind a production-grade FastAPI app.

    from dspy_workbook.serving import Settings, create_app
    app = create_app(Settings.from_env())

Modules, one concept each: `settings` (environment), `app` (the factory and the routes), `models`
(request, answer and error shapes), `errors` (status and type of a failure, the JSON error body),
`auth` (API keys), `service` (the LM, program and state an app keeps; `ServiceParts`), `readiness`
(the LM probe behind `/ready`), `middleware` (request id, size limit, metrics, access log),
`limiter` (per-key token buckets, memory or Redis), `cache` (answers, memory or Redis),
`confidence` (logprobs or agreement), `metrics` (Prometheus names), `logs` (JSON lines), `server`
(uvicorn in a background thread), `lambda_handler` (AWS Lambda via Mangum).
"""

from .app import app_from_env, create_app
from .auth import check_api_key
from .cache import MemoryAnswerCache, RedisAnswerCache, answer_key
from .confidence import agreement_confidence, logprob_confidence
from .errors import ServiceError, classify_error
from .limiter import MemoryRateLimiter, RateDecision, RedisRateLimiter, rate_headers
from .models import ErrorBody, PredictResponse, question_model
from .server import BackgroundServer, find_free_port, start_background
from .service import ServiceParts
from .settings import Settings

__all__ = [
    "BackgroundServer",
    "ErrorBody",
    "MemoryAnswerCache",
    "MemoryRateLimiter",
    "PredictResponse",
    "RateDecision",
    "RedisAnswerCache",
    "RedisRateLimiter",
    "ServiceError",
    "ServiceParts",
    "Settings",
    "agreement_confidence",
    "answer_key",
    "app_from_env",
    "check_api_key",
    "classify_error",
    "create_app",
    "find_free_port",
    "logprob_confidence",
    "question_model",
    "rate_headers",
    "start_background",
]
