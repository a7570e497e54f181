"""Which web origins may use the session: the service's own, and those listed in ``TWIN_CORS_ORIGINS``.

Browsers attach the session cookie to requests a foreign page makes (a form post, a websocket
handshake), so every way a session can act checks the ``Origin`` it came from. ``"*"`` in the list
opens cross-origin reads without credentials; it never lets a foreign origin use a session.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from litestar.config.cors import CORSConfig

from app.config import Settings


def _netloc(url: str) -> str:
    try:
        return urlsplit(url).netloc.lower()
    except ValueError:  # a malformed port or IPv6 literal
        return ""


def own_hosts(headers: Mapping[str, str], settings: Settings) -> set[str]:
    """host[:port] the service answers as: the request's Host, and the configured public domain and URL."""
    hosts = {headers.get("host", "").lower()}
    if settings.public_domain:
        hosts.add(settings.public_domain.lower())
    if settings.public_base_url:
        hosts.add(_netloc(settings.public_base_url))
    return hosts - {""}


def origin_allowed(headers: Mapping[str, str], settings: Settings) -> bool:
    """Whether a request with these headers may use the session.

    No ``Origin`` and no ``Sec-Fetch-Site: cross-site`` is not a browser acting for a foreign page
    (curl, a server, the openai and x402 clients): allowed. A browser's ``Origin`` must be the
    service's own or listed explicitly (``"null"``, sent by sandboxed and file pages, is foreign).
    """
    origin = headers.get("origin")
    if origin is None:
        return headers.get("sec-fetch-site") != "cross-site"
    listed = {entry.rstrip("/").lower() for entry in settings.cors_origins if entry != "*"}
    if origin.rstrip("/").lower() in listed:
        return True
    return origin != "null" and _netloc(origin) in own_hosts(headers, settings)


def cors_config(settings: Settings) -> CORSConfig | None:
    """CORS for the listed origins; none (same-origin only) when the list is empty. A ``"*"``
    never comes with credentials: any page could otherwise read answers made with the session."""
    if not settings.cors_origins:
        return None
    return CORSConfig(allow_origins=settings.cors_origins, allow_credentials="*" not in settings.cors_origins)
