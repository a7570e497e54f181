"""The session cookie and the server-side sessions behind it."""

from __future__ import annotations

SESSION_COOKIE = "session"


def has_session_cookie(cookie_header: str) -> bool:
    """Whether a ``Cookie`` header carries a session id (``null`` is the cookie of a cleared session)."""
    for part in cookie_header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE and value and value != "null":
            return True
    return False

