"""Cross-site request forgery: what a request carrying the session cookie must show to change state.

The SPA sends no CSRF token, so the check is the browser's own word on where a request comes from
(``Origin``, else ``Sec-Fetch-Site``), plus JSON bodies only: a foreign page can post a form or a
``text/plain`` body without a CORS preflight, but never ``application/json``.
"""

from __future__ import annotations

from typing import cast

from litestar.datastructures import Headers
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPScope, Receive, Scope, Send

from app.auth.origins import origin_allowed
from app.auth.sessions import has_session_cookie
from app.config import Settings
from app.errors import AppError, Forbidden

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def is_json(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def has_body(headers: Headers) -> bool:
    return headers.get("content-length", "0").strip() not in {"", "0"} or "transfer-encoding" in headers


class CSRFGuard(ASGIMiddleware):
    """State-changing requests with a session cookie: from the service's own or a listed origin
    (403 ``csrf`` otherwise), and with a JSON body if any (415 ``unsupported_media_type``).
    Requests without the cookie act for nobody and pass."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if cast("HTTPScope", scope)["method"] not in SAFE_METHODS:  # scopes: HTTP only
            headers = Headers.from_scope(scope)
            if has_session_cookie(headers.get("cookie", "")):
                self.check(headers)
        await next_app(scope, receive, send)

    def check(self, headers: Headers) -> None:
        if not origin_allowed(headers, self.settings):
            raise Forbidden(
                "a request from another site may not use this session; send it from the "
                "service's own pages or an origin in TWIN_CORS_ORIGINS",
                code="csrf",
            )
        if has_body(headers) and not is_json(headers.get("content-type", "")):
            raise AppError(
                "with a session, request bodies are JSON: send content-type: application/json",
                code="unsupported_media_type",
                status_code=415,
            )
