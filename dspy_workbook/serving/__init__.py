"""Exercise 5's service: a DSPy program behind a production-grade FastAPI app.

    from dspy_workbook.serving import Settings, create_app
    app = create_app(Settings.from_env())

Modules: `settings` (environment), `app` (the factory and the routes), `limiter` (per-key token
buckets, memory or Redis), `cache` (answers, memory or Redis), `confidence` (logprobs or
agreement), `metrics` (Prometheus names), `logs` (JSON lines), `server` (uvicorn in a background
thread), `lambda_handler` (AWS Lambda via Mangum).
"""

from .app import (
    ErrorBody,
    PredictResponse,
    ServiceError,
    ServiceParts,
    app_from_env,
    check_api_key,
    classify_error,
    create_app,
    question_model,
)
from .cache import MemoryAnswerCache, RedisAnswerCache, answer_key
from .confidence import agreement_confidence, logprob_confidence
from .limiter import MemoryRateLimiter, RateDecision, RedisRateLimiter, rate_headers
from .server import BackgroundServer, find_free_port, start_background
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
