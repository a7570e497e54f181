"""HTTP endpoints for Sign-In with Ethereum."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody
from msgspec import Struct, field
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service
from app.auth.deps import provide_current_address, provide_optional_address
from app.auth.sessions import rotate_session
from app.chain.client import Chain
from app.config import Settings
from app.errors import SESSION_WRITE, AppError, error_responses


class NonceOut(Struct):
    nonce: str
    domain: str
    chain_id: int


class SignInIn(Struct):
    message: str = field()
    signature: str = field()


class SignedInOut(Struct):
    address: str


class SessionOut(Struct):
    address: str | None


def expected_domain(request: Request[Any, Any, Any], settings: Settings, chain: Chain) -> str:
    """The domain messages must name: configured for production; the Host the browser used only on the
    embedded chain, a development setup (settings require TWIN_PUBLIC_DOMAIN with TWIN_CHAIN_RPC_URL)."""
    if settings.public_domain:
        return settings.public_domain
    if not chain.is_embedded:
        raise AppError("sign-in is off: TWIN_PUBLIC_DOMAIN is not set", code="sign_in_unavailable", status_code=503)
    return request.headers.get("host", "")


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]

    @get(
        "/nonce",
        summary="A single-use nonce for an EIP-4361 message (expires in 10 minutes)",
        responses=error_responses(503),
    )
    async def nonce(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[Settings],
        chain: NamedDependency[Chain],
        db_session: NamedDependency[AsyncSession],
    ) -> NonceOut:
        nonce = await service.issue_nonce(db_session)
        return NonceOut(nonce=nonce, domain=expected_domain(request, settings, chain), chain_id=chain.chain_id)

    @post(
        "/verify",
        summary="Sign in: an EIP-4361 message and its signature open a session",
        responses=error_responses(400, 401, 503, *SESSION_WRITE),
    )
    async def verify(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[Settings],
        chain: NamedDependency[Chain],
        db_session: NamedDependency[AsyncSession],
        data: JSONBody[SignInIn],
    ) -> SignedInOut:
        address = await service.verify_sign_in(
            db_session,
            message_text=data.message,
            signature=data.signature,
            expected_domain=expected_domain(request, settings, chain),
            chain_id=chain.chain_id,
        )
        rotate_session(request)  # an id planted in the browser before sign-in must not become this session
        request.set_session({service.SESSION_ADDRESS_KEY: address})
        return SignedInOut(address=address)

    @post("/logout", summary="End the session", status_code=200, responses=error_responses(*SESSION_WRITE))
    async def logout(self, request: Request[Any, Any, Any]) -> dict[str, bool]:
        request.clear_session()
        return {"signed_out": True}

    @get(
        "/session",
        summary="Who is signed in: the address, or null (never a 401: pages ask on every load)",
        dependencies={"viewer": Provide(provide_optional_address)},
    )
    async def session(self, viewer: NamedDependency[str | None]) -> SessionOut:
        return SessionOut(address=viewer)

    @get(
        "/me",
        summary="The signed-in address",
        dependencies={"address": Provide(provide_current_address)},
        responses=error_responses(401),
    )
    async def me(self, address: NamedDependency[str]) -> SignedInOut:
        return SignedInOut(address=address)
