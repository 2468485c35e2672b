"""API-key authentication: the header, and its entry in the OpenAPI schema.

The check itself is yours to write (Exercise 5, Task 2: `ServiceParts(check_api_key=…)`). The key
is read from the header by the app's own dependency rather than FastAPI's `APIKeyHeader` (a nested
dependency costs time on every request), so the scheme is declared in the schema here, by hand, for
`/docs` to show its "Authorize" button.
"""

from typing import Any

from fastapi import FastAPI

__all__ = ["API_KEY_HEADER", "API_KEY_SCHEME", "document_api_key"]

API_KEY_HEADER = "X-API-Key"
API_KEY_SCHEME = "APIKeyHeader"


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
