"""How failures become HTTP errors: which status and type, and the one JSON body they all share.

Kept in one place so that the routes, the exception handlers and the middleware (which answers
413 before any route runs) cannot drift apart in how they name or render an error.
"""

from collections.abc import Mapping

import dspy
from fastapi import HTTPException
from fastapi.responses import JSONResponse

from .models import ErrorBody, ErrorDetail

__all__ = ["STATUS_TYPES", "ServiceError", "classify_error", "error_response"]

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
