"""The session cookie and the server-side sessions behind it.

Litestar's server-side backend stores a session for every response (an empty one for anonymous
requests, /healthz included) and keeps the id the browser sent. This backend stores one only when
there is something in it, and gives a session a fresh id when a wallet signs in, so an id planted
in a browser beforehand (session fixation) is worthless afterwards.
"""

from __future__ import annotations

import secrets
from typing import Any, cast

from litestar.connection import ASGIConnection
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.types import Empty, Message, ScopeSession

SESSION_COOKIE = "session"
_ROTATED_ID = "twin_rotated_session_id"


def has_session_cookie(cookie_header: str) -> bool:
    """Whether a ``Cookie`` header carries a session id (``null`` is the cookie of a cleared session)."""
    for part in cookie_header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE and value and value != "null":
            return True
    return False


def rotate_session(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Store this response's session under a new id, and end the one the request came with."""
    _scope(connection)[_ROTATED_ID] = secrets.token_hex(32)


def _scope(connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any]:
    return cast("dict[str, Any]", connection.scope)


class SessionBackend(ServerSideSessionBackend):
    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        rotated: str | None = _scope(connection).get(_ROTATED_ID)
        return rotated or super().get_session_id(connection)

    async def store_in_message(
        self, scope_session: ScopeSession, message: Message, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> None:
        sent_id = connection.cookies.get(self.config.key)
        if scope_session is Empty or not scope_session:
            if sent_id and sent_id != "null":
                await super().store_in_message(Empty, message, connection)  # ends it: deleted, cookie expired
            return  # anonymous: nothing stored, no cookie
        if _scope(connection).get(_ROTATED_ID) and sent_id and sent_id != "null":
            await self.delete(sent_id, store=self.config.get_store_from_app(connection.scope["app"]))
        await super().store_in_message(scope_session, message, connection)


class SessionConfig(ServerSideSessionConfig):
    """Litestar's server-side sessions with :class:`SessionBackend`."""

    _backend_class = SessionBackend
