"""The one error shape every client sees: ``{"error": "<code>", "detail": "<text>"}``."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import msgspec
import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = structlog.get_logger()


class AppError(Exception):
    """An error a client caused or must be told about, raised by services."""

    status_code: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.code
        self.status_code = status_code or self.status_code
        self.extra = extra or {}


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class Unavailable(AppError):
    """A dependency is down or stalled: 503 with Retry-After; nothing was lost, the client may retry."""

    status_code = 503
    code = "unavailable"
    retry_after_s = 2


class ErrorOut(msgspec.Struct):
    """Every error's body. ``error`` is a stable code (e.g. ``invalid_request``, ``not_found``,
    ``database_unavailable``), ``detail`` says what was wrong; ``field`` names the offending input
    when there is one. Some errors add fields of their own."""

    error: str
    detail: str
    field: str | msgspec.UnsetType = msgspec.UNSET


ERROR_DESCRIPTIONS = {
    400: "Bad input: a malformed or out-of-range parameter or body (``field`` names it when it can)",
    401: "Not signed in, or a sign-in message or signature that does not hold",
    403: "Not allowed: not the avatar's creator, or a session used from a foreign origin (``csrf``)",
    404: "Nothing with that id",
    409: "Conflicts with what exists (a taken handle)",
    415: "With a session cookie, request bodies must be JSON",
    429: "Too many requests; retry after ``Retry-After`` seconds",
    503: "A dependency (database, chain) is busy or unreachable; retry after ``Retry-After`` seconds",
}
# A request with the session cookie that changes state: from the service's own origin, with a JSON body.
SESSION_WRITE = (403, 415)


def error_responses(*status_codes: int) -> dict[int, ResponseSpec]:
    """The OpenAPI ``responses`` of a route's errors, each in the shape this module answers with
    (Litestar documents its own ``{status_code, detail, extra}`` otherwise)."""
    return {
        code: ResponseSpec(data_container=ErrorOut, description=ERROR_DESCRIPTIONS[code], generate_examples=False)
        for code in sorted(set(status_codes))
    }


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail, **extra}


def _code_for(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def _validation_detail(exc: ValidationException) -> str:
    extra = exc.extra if isinstance(exc.extra, list) else []
    parts = []
    for item in extra:
        if isinstance(item, dict):
            where = item.get("key") or item.get("source") or ""
            parts.append(f"{where}: {item.get('message', '')}".strip(": "))
    return "; ".join(parts) or str(exc.detail)


def app_error_handler(_: Request[Any, Any, Any], exc: AppError) -> Response[dict[str, Any]]:
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, Unavailable) else None
    return Response(
        error_body(exc.code, exc.detail, **exc.extra),
        status_code=exc.status_code,
        headers=headers,
        media_type=MediaType.JSON,
    )


def http_error_handler(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    if isinstance(exc, ValidationException):
        body = error_body("invalid_request", _validation_detail(exc))
    else:
        body = error_body(_code_for(exc.status_code), str(exc.detail))
    return Response(body, status_code=exc.status_code, headers=exc.headers, media_type=MediaType.JSON)


DATABASE_RETRY_AFTER_S = 2
# What a busy or unreachable database raises: SQLite's lock waits running out, the pool's wait
# for a connection running out, a server refusing connections. The client can retry; nothing is lost.
DATABASE_UNAVAILABLE = (OperationalError, PoolTimeout, ConnectionError)


def database_unavailable_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.warning("database_unavailable", path=request.url.path, error=str(exc).splitlines()[0])
    return Response(
        error_body("database_unavailable", "the database is busy or unreachable; retry shortly"),
        status_code=503,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        media_type=MediaType.JSON,
    )


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled_error", path=request.url.path, error=repr(exc))
    return Response(
        error_body("internal_error", "the server failed; the error was logged"),
        status_code=500,
        media_type=MediaType.JSON,
    )


exception_handlers: ExceptionHandlersMap = {
    AppError: app_error_handler,
    HTTPException: http_error_handler,
    **dict.fromkeys(DATABASE_UNAVAILABLE, database_unavailable_handler),
    Exception: internal_error_handler,
}
