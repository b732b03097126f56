"""One JSON error shape for the whole HTTP surface: ``{"error": {code, message, field?}}``.

`install_error_handlers` maps the admin service's domain exceptions, `HTTPException`
and request validation errors to that shape, so clients parse one format.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.schemas import ErrorDetail, ErrorResponse
from app.services.admin.errors import AdminError, Conflict, NotFound, Unavailable, ValidationFailed

logger = logging.getLogger(__name__)

_STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class AdminUnavailable(Exception):
    """The admin surface refuses to serve (e.g. no usable admin password): HTTP 503."""

    def __init__(self, reason: str) -> None:
        """Keep the reason, which is shown to the client (it holds no secret)."""
        super().__init__(reason)
        self.reason = reason


def error_response(
    status_code: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Build a JSON error answer in the one shape."""
    body = ErrorResponse(error=ErrorDetail(code=code, message=message, field=field))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status_code, headers=headers)


def field_from_loc(loc: Sequence[Any]) -> str | None:
    """Dotted field path from a pydantic error location, without ``body``/``query``/``path``."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    # Drop pydantic's union/type markers such as "function-after[...]" or "str".
    cleaned = [p for p in parts if "[" not in p]
    return ".".join(cleaned) or None


def _validation_message(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid value"))
    if error.get("type") == "json_invalid":
        detail = (error.get("ctx") or {}).get("error")
        return f"request body is not valid JSON: {detail}" if detail else "request body is not valid JSON"
    if error.get("type") == "string_type" and any(str(p) == "headers" for p in error.get("loc", ())):
        return "header value must be a string"
    return message


async def _admin_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AdminError)
    status = 500
    if isinstance(exc, ValidationFailed):
        status = 422
    elif isinstance(exc, Conflict):
        status = 409
    elif isinstance(exc, NotFound):
        status = 404
    elif isinstance(exc, Unavailable):
        status = 503
    return error_response(status, exc.code, exc.message, exc.field)


async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AdminUnavailable)
    return error_response(503, "admin_unavailable", exc.reason)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(exc.status_code, code, message, headers=dict(exc.headers or {}))


async def _request_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if not errors:
        return error_response(422, "validation_error", "invalid request")
    first = errors[0]
    field = field_from_loc(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        field = None
    message = _validation_message(first)
    if field:
        message = f"{field}: {message}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return error_response(422, "validation_error", message, field)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into the one JSON shape."""
    app.add_exception_handler(AdminError, _admin_error)
    app.add_exception_handler(AdminUnavailable, _unavailable)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(Exception, _unexpected)
