"""The shapes of `/predict`'s answer and errors, as pydantic models.

They live apart from the routes because they are the API's contract: the OpenAPI schema (and so
`/docs`) is generated from them, and every error response, wherever it is raised, has `ErrorBody`'s
shape. The request's model is yours to write (Exercise 5, Task 1: `ServiceParts(request_model=…)`).
"""

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["ErrorBody", "ErrorDetail", "PredictResponse", "error_doc"]


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


def error_doc(text: str) -> dict[str, Any]:
    """One entry of a route's `responses=`: an error documented with the `ErrorBody` schema."""
    return {"model": ErrorBody, "description": text}
