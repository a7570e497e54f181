"""Dependencies for handlers that need the signed-in wallet."""

from __future__ import annotations

from typing import Any

from litestar import Request

from app.auth.service import signed_in_address
from app.errors import Unauthorized


async def provide_current_address(request: Request[Any, Any, Any]) -> str:
    """The signed-in wallet's checksummed address; 401 when nobody is signed in."""
    address = signed_in_address(request.session)
    if address is None:
        raise Unauthorized("sign in with Ethereum first (GET /api/auth/nonce, POST /api/auth/verify)")
    return address


async def provide_optional_address(request: Request[Any, Any, Any]) -> str | None:
    return signed_in_address(request.session)
