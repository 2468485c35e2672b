"""How failures become HTTP errors: which status and type, and the one JSON body they all share.

Kept in one place so that the routes, the exception handlers and the middleware (which answers
413 before any route runs) cannot drift apart in how they name or render an error.
"""

from collections.abc import Mapping

import dspy
from fastapi import HTTPException
from fastapi.responses import JSONResponse

from .models import ErrorBody, ErrorDetail

__all__ = ["OUR_LM_FAULTS", "STATUS_TYPES", "ServiceError", "classify_error", "error_response"]

# The error type of a status when nothing more specific was raised (e.g. Starlette's own 404).
STATUS_TYPES = {
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


# Failures of the LM that are ours to fix, not the client's or the provider's: a wrong or expired
# provider key, a model or setting that does not exist, an account out of credit. Retrying will not
# help and the client can do nothing: 500 (an operator is needed), like a bug in our own code.
OUR_LM_FAULTS = (dspy.LMAuthError, dspy.LMConfigurationError, dspy.LMBillingError)


def classify_error(exc: BaseException) -> tuple[int, str]:
    """Map a failure while answering to (HTTP status, error type), by whose fault it is.

    * too slow — ours (`asyncio.timeout`) or the provider's: **504**, retry later;
    * the question does not fit the model's context window: **422**, the client must shorten it;
    * the LM is misconfigured (key, model, billing): **500**, an operator must act;
    * any other failure of the LM or of DSPy around it (down, rate-limited, garbled): **503**,
      back off and retry;
    * anything else is a bug in our code: **500**.

    Order matters: `LMTimeoutError` and `ContextWindowExceededError` are `DSPyError`s too.
    """
    if isinstance(exc, TimeoutError | dspy.LMTimeoutError):
        return 504, "lm_timeout"
    if isinstance(exc, dspy.ContextWindowExceededError):
        return 422, "question_too_long"
    if isinstance(exc, OUR_LM_FAULTS):
        return 500, "internal_error"
    if isinstance(exc, dspy.DSPyError):
        return 503, "lm_unavailable"
    return 500, "internal_error"


def error_response(
    status: int,
    error_type: str,
    message: str,
    request_id: str,
    headers: Mapping[str, str] | None = None,
    fields: list[dict[str, str]] | None = None,
) -> JSONResponse:
    """The `ErrorBody` JSON response (fields left out when there are none)."""
    detail = ErrorDetail(type=error_type, message=message, request_id=request_id, fields=fields)
    return JSONResponse(
        ErrorBody(error=detail).model_dump(exclude_none=True),
        status_code=status,
        headers=dict(headers or {}),
    )
