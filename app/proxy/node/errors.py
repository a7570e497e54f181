"""Errors in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, so that the
OpenAI SDKs raise their usual exceptions against a node. Nothing a client sends yields a 500.
"""

from __future__ import annotations

from typing import Any

import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap

log = structlog.get_logger()


class ProxyError(Exception):
    """An error a node reports to its client; ``param`` names the offending field."""

    status_code = 400
    error_type = "invalid_request_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}
        if status_code is not None:
            self.status_code = status_code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.error_type, param=self.param, code=self.code)


class InvalidRequest(ProxyError):
    """The request itself is wrong: malformed JSON, a missing or bad field, an unknown model."""


class NodeBusy(ProxyError):
    status_code = 503
    error_type = "server_busy"


class UpstreamUnavailable(ProxyError):
    """Every upstream of the model failed before its first token."""

    status_code = 502
    error_type = "upstream_error"


def error_body(message: str, error_type: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def proxy_error_handler(_: Request[Any, Any, Any], exc: ProxyError) -> Response[dict[str, Any]]:
    return Response(exc.body(), status_code=exc.status_code, headers=exc.headers, media_type=MediaType.JSON)


def http_error_handler(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    # Litestar's own 4xx (unknown route, wrong method, body over the size limit) in OpenAI's shape;
    # an over-size body is a bad request like any other, named by its field.
    if exc.status_code == 413:
        body = error_body(str(exc.detail), "invalid_request_error", param="body", code="request_too_large")
        return Response(body, status_code=400, media_type=MediaType.JSON)
    body = error_body(str(exc.detail), "invalid_request_error", code=str(exc.status_code))
    return Response(body, status_code=exc.status_code, headers=exc.headers, media_type=MediaType.JSON)


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("proxy_unhandled_error", path=request.url.path, error=repr(exc))
    body = error_body("the node failed; the error was logged", "server_error", code="internal_error")
    return Response(body, status_code=500, media_type=MediaType.JSON)


exception_handlers: ExceptionHandlersMap = {
    ProxyError: proxy_error_handler,
    HTTPException: http_error_handler,
    Exception: internal_error_handler,
}
