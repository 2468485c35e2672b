"""API-key authentication: the header, the constant-time check, and its entry in the OpenAPI schema.

The key is read from the header by the app's own dependency rather than FastAPI's `APIKeyHeader`
(a nested dependency costs time on every request), so the scheme is declared in the schema here,
by hand, for `/docs` to show its "Authorize" button.
"""

import hmac
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI

from .errors import ServiceError

__all__ = ["API_KEY_HEADER", "API_KEY_SCHEME", "check_api_key", "document_api_key"]

API_KEY_HEADER = "X-API-Key"
API_KEY_SCHEME = "APIKeyHeader"


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


def document_api_key(app: FastAPI) -> None:
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
