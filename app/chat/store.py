"""The chat's rows: a message and its pending reply stored before inference, the turn's end written whatever
happens (complete with its cost and attestation, incomplete, failed, or withdrawn), retried while the database
is busy; and the settling of replies whose worker died."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from x402.schemas import SettleResponse

from app.avatars.models import Avatar
from app.chat.journal import (
    WITHDRAWN,
    ReplyJournal,
    TurnEnd,
    Write,
    attestation_fields,
    payment_fields,
    settle,
)
from app.chat.models import ChatMessage, MessageStatus, ReplyAttestation, Role
from app.chat.schemas import IncomingMessage
from app.db.engine import claim_writer
from app.db.models import utc_now
from app.errors import DATABASE_UNAVAILABLE
from app.memory.service import TurnMemory
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


async def write_retrying(
    sessions: async_sessionmaker[AsyncSession], write: Callable[[AsyncSession], Awaitable[T]]
) -> T:
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
            await asyncio.sleep(STORE_RETRY_S * 2**attempt)
    raise AssertionError("unreachable")


def _writer(sessions: async_sessionmaker[AsyncSession]) -> Write:
    return lambda write: write_retrying(sessions, write)


async def end_failed(
    sessions: async_sessionmaker[AsyncSession],
    journal: ReplyJournal | None,
    rows: TurnRows,
    code: str,
    partial: str,
    payment: SettleResponse | None = None,
) -> None:
    """End the turn without a verified reply: ``incomplete`` with the text that came, else ``failed``;
    with what the node was paid, if it was. If even that cannot be stored, it stays in the journal and
    is stored when the database is back (without one, the rows stay pending and the line logged says
    what was lost)."""
    status = MessageStatus.incomplete if partial else MessageStatus.failed
    end = TurnEnd(
        rows.prompt_id,
        rows.reply_id,
        status,
        partial,
        code,
        completed_at=utc_now().timestamp(),
        **payment_fields(payment),
    )
    try:
        await settle(end, journal, _writer(sessions))
    except Exception as error:  # the fan still gets the turn's error frame
        log.exception(
            "chat_store_error",
            stage="fail",
            reply_id=rows.reply_id,
            code=code,
            payment_tx=payment.transaction if payment else None,
            error=repr(error),
        )


async def withdraw(sessions: async_sessionmaker[AsyncSession], journal: ReplyJournal | None, rows: TurnRows) -> None:
    """Forget a message that got no slot, so that resending the same ``client_msg_id`` later is a new try."""
    try:
        await settle(TurnEnd(rows.prompt_id, rows.reply_id, WITHDRAWN), journal, _writer(sessions))
    except Exception as error:  # left pending, it is settled as abandoned later
        log.exception("chat_store_error", stage="withdraw", reply_id=rows.reply_id, error=repr(error))


async def complete(
    sessions: async_sessionmaker[AsyncSession],
    journal: ReplyJournal | None,
    rows: TurnRows,
    result: ChatResult,
    memory: TurnMemory | None = None,
) -> tuple[ChatMessage, ReplyAttestation | None]:
    """The verified reply stored with its usage, its cost, when signed its attestation, and what it leaves to
    ``memory``; with a journal, written there first so that it is stored even if the database is down now (the
    fan's done frame then shows it as it will be stored)."""
    usage = result.usage or {}
    end = TurnEnd(
        rows.prompt_id,
        rows.reply_id,
        MessageStatus.complete,
        result.text,
        model=result.model,
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        completed_at=utc_now().timestamp(),
        **payment_fields(result.payment),
        attestation=attestation_fields(result),
        memory=memory,
    )
    stored = await settle(end, journal, _writer(sessions))
    assert stored is not None  # the turn's rows are gone only when withdrawn
    return stored


async def store_message(
    session: AsyncSession, avatar: Avatar, fan: str, incoming: IncomingMessage
) -> tuple[int, int] | None:
    """The fan's message and its pending reply: their ids, or None if this ``client_msg_id`` was just
    stored by another connection."""
    prompt = ChatMessage(
        avatar_id=avatar.id,
        fan=fan,
        role=Role.user,
        content=incoming.content,
        client_msg_id=incoming.client_msg_id,
        status=MessageStatus.pending,
    )
    session.add(prompt)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        return None
    reply = ChatMessage(
        avatar_id=avatar.id,
        fan=fan,
        role=Role.assistant,
        content="",
        reply_to=prompt.id,
        status=MessageStatus.pending,
        model=avatar.model,
    )
    session.add(reply)
    await session.commit()
    assert prompt.id is not None
    assert reply.id is not None
    return prompt.id, reply.id


async def sent_before(session: AsyncSession, avatar_id: str, fan: str, client_msg_id: str) -> ChatMessage | None:
    return await session.scalar(
        select(ChatMessage).where(
            col(ChatMessage.avatar_id) == avatar_id,
            col(ChatMessage.fan) == fan,
            col(ChatMessage.client_msg_id) == client_msg_id,
        )
    )


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
            update(ChatMessage)
            .where(col(ChatMessage.status) == MessageStatus.pending)
            .values(status=MessageStatus.failed, error_code="abandoned", completed_at=utc_now())
        )
        await session.commit()
    except (SQLAlchemyError, OSError) as error:
        log.warning("chat_settle_pending_skipped", error=str(error))
        return 0
    return result.rowcount  # type: ignore[attr-defined]
