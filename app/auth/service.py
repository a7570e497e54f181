"""Sign-In with Ethereum: issue nonces, verify signed messages, keep the session's address."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import siwe
from eth_keys.exceptions import BadSignature
from sqlalchemy import CursorResult, delete, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.auth.models import SignInNonce
from app.db.models import utc_now
from app.errors import Unauthorized

NONCE_TTL = timedelta(minutes=10)
# A signed message is a bearer credential until its nonce is used: it must be fresh (issued within the
# nonce's lifetime, not ahead of our clock beyond a little skew) and say when it expires, soon.
CLOCK_SKEW = timedelta(seconds=60)
MAX_MESSAGE_LIFETIME = timedelta(hours=24)
SESSION_ADDRESS_KEY = "address"

_REASONS: dict[type[Exception], tuple[str, str]] = {
    siwe.DomainMismatch: ("wrong_domain", "the message was signed for another domain"),
    siwe.ExpiredMessage: ("expired_message", "the message's expiration time has passed"),
    siwe.NotYetValidMessage: ("not_yet_valid", "the message is not valid yet (not-before)"),
    siwe.InvalidSignature: ("bad_signature", "the signature does not match the message's address"),
    siwe.NonceMismatch: ("bad_nonce", "the nonce does not match"),
}


async def issue_nonce(session: AsyncSession) -> str:
    """A fresh nonce for one sign-in; expired nonces are swept at the same time."""
    now = utc_now()
    await session.execute(delete(SignInNonce).where(col(SignInNonce.expires_at) < now - NONCE_TTL))
    nonce = siwe.generate_nonce()
    session.add(SignInNonce(nonce=nonce, created_at=now, expires_at=now + NONCE_TTL))
    await session.flush()
    return nonce


def _parse(message_text: str) -> siwe.SiweMessage:
    try:
        return siwe.SiweMessage.from_message(message=message_text)
    except Exception as error:  # noqa: BLE001 - the parser raises many kinds; all mean "malformed"
        raise Unauthorized(f"the message is not an EIP-4361 message: {error}"[:300], code="malformed_message") from None


def _moment(value: object) -> datetime:
    moment = datetime.fromisoformat(str(value))  # the parser checked RFC 3339 already
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _check_lifetime(message: siwe.SiweMessage, now: datetime) -> None:
    issued_at = _moment(message.issued_at)
    if issued_at > now + CLOCK_SKEW:
        raise Unauthorized("issued_at: the message is issued in the future", code="not_yet_valid")
    if issued_at < now - NONCE_TTL:
        raise Unauthorized(
            f"issued_at: the message is older than a nonce lives ({NONCE_TTL}); sign a new one", code="expired_message"
        )
    if message.expiration_time is None:
        raise Unauthorized("expiration_time: required", code="malformed_message")
    if _moment(message.expiration_time) - issued_at > MAX_MESSAGE_LIFETIME:
        raise Unauthorized(f"expiration_time: at most {MAX_MESSAGE_LIFETIME} after issued_at", code="malformed_message")


async def _consume_nonce(session: AsyncSession, nonce: str) -> None:
    """Mark the nonce used; only one caller can win the UPDATE, so replays lose."""
    now = utc_now()
    result = await session.execute(
        update(SignInNonce)
        .where(col(SignInNonce.nonce) == nonce, col(SignInNonce.used_at).is_(None), col(SignInNonce.expires_at) > now)
        .values(used_at=now)
    )
    if cast("CursorResult[Any]", result).rowcount != 1:
        raise Unauthorized("the nonce is unknown, expired or already used; ask for a new one", code="bad_nonce")


async def verify_sign_in(
    session: AsyncSession, *, message_text: str, signature: str, expected_domain: str, chain_id: int
) -> str:
    """Check an EIP-4361 message and its signature; return the signer's checksummed address."""
    message = _parse(message_text)
    if int(message.chain_id) != chain_id:
        raise Unauthorized(
            f"the message is for chain {message.chain_id}, this service is on chain {chain_id}", code="wrong_chain"
        )
    now = datetime.now(UTC)
    _check_lifetime(message, now)
    try:
        message.verify(signature, domain=expected_domain, timestamp=now)
    except siwe.VerificationError as error:
        code, detail = _REASONS.get(type(error), ("verification_failed", "the message did not verify"))
        raise Unauthorized(detail, code=code) from None
    except (ValueError, TypeError, BadSignature):  # BadSignature: no key recovers from it (e.g. all zeros)
        raise Unauthorized("the signature is malformed", code="bad_signature") from None
    await _consume_nonce(session, message.nonce)
    return message.address


def signed_in_address(session_data: dict[str, Any]) -> str | None:
    return session_data.get(SESSION_ADDRESS_KEY)
