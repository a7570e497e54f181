"""The chat's rows: a message and its pending reply stored before inference, the turn's end written whatever
happens (complete with its cost and attestation, incomplete, failed, or withdrawn), retried while the database
is busy; and the settling of replies whose worker died."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from x402.schemas import SettleResponse

from app.avatars.models import Avatar
from app.chat.models import ChatMessage, MessageStatus, ReplyAttestation, Role
from app.chat.schemas import IncomingMessage
from app.db.engine import claim_writer
from app.db.models import utc_now
from app.errors import DATABASE_UNAVAILABLE
from app.network import rollups as network
from app.proxy.client.client import ChatResult

log = structlog.get_logger()

STALE_PENDING_AFTER = timedelta(minutes=10)  # a reply still pending this long died with its worker
STORE_ATTEMPTS = 4  # a turn's end is written again while the database is busy: after 0.1, 0.2, 0.4 s
STORE_RETRY_S = 0.1
T = TypeVar("T")


@dataclass(frozen=True)
class TurnRows:
    """The fan's message and the reply being written, by id."""

    prompt_id: int
    reply_id: int


async def write_retrying(sessions: async_sessionmaker[AsyncSession],
                         write: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run one short write transaction, again while the database is busy (SQLite's single writer, the
    pool's wait): the end of a turn, often a paid one, must be stored."""
    for attempt in range(STORE_ATTEMPTS):
        try:
            async with sessions() as session:
                await claim_writer(session)
                return await write(session)
        except DATABASE_UNAVAILABLE:
            if attempt == STORE_ATTEMPTS - 1:
                raise
            await asyncio.sleep(STORE_RETRY_S * 2 ** attempt)
    raise AssertionError("unreachable")


async def end_failed(sessions: async_sessionmaker[AsyncSession], rows: TurnRows, code: str, partial: str,
                     payment: SettleResponse | None = None) -> None:
    """End the turn without a verified reply: ``incomplete`` with the text that came, else ``failed``;
    with what the node was paid, if it was. If even that cannot be stored, the rows stay pending
    (settled at the next start) and the line logged says what was lost."""
    status = MessageStatus.incomplete if partial else MessageStatus.failed

    async def write(session: AsyncSession) -> None:
        prompt = await session.get(ChatMessage, rows.prompt_id)
        reply = await session.get(ChatMessage, rows.reply_id)
        assert prompt is not None
        assert reply is not None
        now = utc_now()
        prompt.status = status
        prompt.error_code = code
        prompt.completed_at = now
        reply.status = status
        reply.error_code = code
        reply.content = partial
        reply.completed_at = now
        record_payment(reply, payment)
        await _count_turn(session, prompt, reply, replied=False)
        await session.commit()

    try:
        await write_retrying(sessions, write)
    except Exception as error:  # the fan still gets the turn's error frame
        log.exception("chat_store_error", stage="fail", reply_id=rows.reply_id, code=code,
                      payment_tx=payment.transaction if payment else None, error=repr(error))


async def withdraw(sessions: async_sessionmaker[AsyncSession], rows: TurnRows) -> None:
    """Forget a message that got no slot, so that resending the same ``client_msg_id`` later is a new try."""
    async def write(session: AsyncSession) -> None:
        for message_id in (rows.reply_id, rows.prompt_id):  # the reply first: it points at the prompt
            await session.execute(delete(ChatMessage).where(col(ChatMessage.id) == message_id))
        await session.commit()

    try:
        await write_retrying(sessions, write)
    except Exception as error:  # left pending, it is settled as abandoned later
        log.exception("chat_store_error", stage="withdraw", reply_id=rows.reply_id, error=repr(error))


async def complete(sessions: async_sessionmaker[AsyncSession], rows: TurnRows,
                   result: ChatResult) -> tuple[ChatMessage, ReplyAttestation | None]:
    """The verified reply stored with its usage, its cost and, when signed, its attestation."""
    async def write(session: AsyncSession) -> tuple[ChatMessage, ReplyAttestation | None]:
        prompt = await session.get(ChatMessage, rows.prompt_id)
        reply = await session.get(ChatMessage, rows.reply_id)
        assert prompt is not None
        assert reply is not None
        now = utc_now()
        prompt.status = MessageStatus.answered
        prompt.completed_at = now
        usage = result.usage or {}
        reply.content = result.text
        reply.status = MessageStatus.complete
        reply.completed_at = now
        reply.model = result.model
        reply.prompt_tokens = usage.get("prompt_tokens")
        reply.completion_tokens = usage.get("completion_tokens")
        record_payment(reply, result.payment)
        await _count_turn(session, prompt, reply, replied=True)
        attestation = None
        if result.attestation is not None:
            signed = result.attestation
            attestation = ReplyAttestation(
                message_id=rows.reply_id, request_body=json.dumps(result.request_body),
                verification_level=result.verification, request_hash=signed.request_hash,
                output_hash=signed.output_hash, signature=signed.signature, timestamp=signed.timestamp,
                tee_id=signed.tee_id, node_endpoint=result.node.endpoint,
                node_public_key_der=base64.b64encode(result.node.signing_public_key).decode(),
            )
            session.add(attestation)
        await session.commit()
        return reply, attestation

    return await write_retrying(sessions, write)


async def store_message(session: AsyncSession, avatar: Avatar, fan: str,
                         incoming: IncomingMessage) -> tuple[int, int] | None:
    """The fan's message and its pending reply: their ids, or None if this ``client_msg_id`` was just
    stored by another connection."""
    prompt = ChatMessage(avatar_id=avatar.id, fan=fan, role=Role.user, content=incoming.content,
                         client_msg_id=incoming.client_msg_id, status=MessageStatus.pending)
    session.add(prompt)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        return None
    reply = ChatMessage(avatar_id=avatar.id, fan=fan, role=Role.assistant, content="", reply_to=prompt.id,
                        status=MessageStatus.pending, model=avatar.model)
    session.add(reply)
    await session.commit()
    assert prompt.id is not None
    assert reply.id is not None
    return prompt.id, reply.id


def record_payment(reply: ChatMessage, payment: SettleResponse | None) -> None:
    """The reply's cost: the x402 amount the node settled on-chain (wei), or nothing."""
    paid = payment is not None and payment.success and payment.amount
    reply.cost_wei = int(payment.amount) if paid else 0  # type: ignore[union-attr,arg-type]
    reply.payment_tx = payment.transaction if paid else None  # type: ignore[union-attr]


async def _count_turn(session: AsyncSession, prompt: ChatMessage, reply: ChatMessage, *, replied: bool) -> None:
    """The turn's end in the network's rollups, in the transaction that stores it."""
    assert prompt.completed_at is not None
    await network.record_turn(session, avatar_id=prompt.avatar_id, fan=prompt.fan, model=reply.model,
                              ended_at=prompt.completed_at, replied=replied, prompt_tokens=reply.prompt_tokens,
                              completion_tokens=reply.completion_tokens, paid_wei=reply.cost_wei)


async def sent_before(session: AsyncSession, avatar_id: str, fan: str, client_msg_id: str) -> ChatMessage | None:
    return await session.scalar(select(ChatMessage).where(
        col(ChatMessage.avatar_id) == avatar_id, col(ChatMessage.fan) == fan,
        col(ChatMessage.client_msg_id) == client_msg_id))


async def settle_abandoned(session: AsyncSession, prompt: ChatMessage, reply: ChatMessage | None) -> None:
    """A reply pending for longer than any stream lasts: its worker died. Say so, once."""
    now = utc_now()
    for message in (prompt, reply):
        if message is not None and message.status == MessageStatus.pending:
            message.status = MessageStatus.failed
            message.error_code = "abandoned"
            message.completed_at = now
    await session.commit()


async def settle_all_pending(session: AsyncSession) -> int:
    """At the start of the only worker, every reply still pending died with the previous process:
    mark it (and its message) ``failed``/``abandoned`` so threads don't show it under way forever.
    A database that is down now is logged, not fatal: ``/readyz`` reports it, and the process
    still starts (and stays live) so an orchestrator sees why."""
    try:
        result = await session.execute(
            update(ChatMessage).where(col(ChatMessage.status) == MessageStatus.pending)
            .values(status=MessageStatus.failed, error_code="abandoned", completed_at=utc_now()))
        await session.commit()
    except (SQLAlchemyError, OSError) as error:
        log.warning("chat_settle_pending_skipped", error=str(error))
        return 0
    return result.rowcount  # type: ignore[attr-defined]
