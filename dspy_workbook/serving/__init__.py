"""Exercise 5's service: a DSPy program behind a production-grade FastAPI app.

    from dspy_workbook.serving import ServiceParts, Settings, create_app
    parts = ServiceParts(request_model=..., check_api_key=..., limiter=...)  # yours
    app = create_app(Settings.from_env(), parts=parts)

The request model, the API-key check and the per-key rate limiter are yours to write (Exercise 5);
the app takes them as `create_app(settings, parts=ServiceParts(...))` — this package ships no
answer for them. `standins` has deliberately simple ones, to try one part of yours alone.

Modules, one concept each: `settings` (environment), `app` (the factory and the routes), `models`
(answer and error shapes), `errors` (status and type of a failure, the JSON error body), `auth`
(the API-key header and its documentation), `service` (the LM, program and state an app keeps;
`ServiceParts`), `standins`, `readiness` (the LM probe behind `/ready`), `middleware` (request id,
size limit, metrics, access log), `limiter` (`RateDecision` and its headers), `redis_limiter`
(one bucket per key for every worker), `redis_state` (bounded Redis calls; the policy when Redis
fails), `cache` (answers, memory or Redis), `confidence` (logprobs or agreement), `metrics`
(Prometheus names), `logs` (JSON lines), `server` (uvicorn in a background thread),
`lambda_handler` (AWS Lambda via Mangum).
"""

from .app import app_from_env, create_app
from .cache import MemoryAnswerCache, RedisAnswerCache, answer_key
from .confidence import agreement_confidence, logprob_confidence
from .errors import ServiceError, classify_error
from .limiter import RateDecision, rate_headers
from .models import ErrorBody, PredictResponse
from .redis_limiter import RedisRateLimiter
from .server import BackgroundServer, find_free_port, start_background
from .service import PARTS_VARIABLE, ServiceParts, parts_from_env
from .settings import Settings
from .standins import standin_parts

__all__ = [
    "PARTS_VARIABLE",
    "BackgroundServer",
    "ErrorBody",
    "MemoryAnswerCache",
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
    "classify_error",
    "create_app",
    "find_free_port",
    "logprob_confidence",
    "parts_from_env",
    "rate_headers",
    "standin_parts",
    "start_background",
]
