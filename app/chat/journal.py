"""The end of every chat turn, written ahead to a local journal: nothing a node was paid for is lost.

Once a node has been paid, the reply must reach the database, even if the database is down for
minutes or the worker restarts meanwhile. So the end of a turn (the reply's text, usage, cost,
payment and attestation; or why it failed) is first appended to a journal — a SQLite file on this
machine, under ``TWIN_CHAT_JOURNAL_DIR``, synchronous=FULL so it survives a crash — and only then is
the ``done`` frame sent and the database written. An entry leaves the journal once stored. What the
database refused is replayed at start and every ``TWIN_CHAT_JOURNAL_REPLAY_S`` until stored::

    journal = ReplyJournal.for_database(settings.chat_journal_dir, settings.database_url)
    reply, attestation = await settle(entry, journal, write)  # journaled, then stored if it can be
    task = asyncio.create_task(journal.run(sessions, interval_s=2.0))

Storing an entry is idempotent (the reply's row is locked and a reply already ended is left as it
is), so a replay that meets the live write, or another worker's replay, stores it once. Every
worker of a machine may share one journal file; one file per database, so entries never reach
another one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import structlog
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from x402.schemas import SettleResponse

from app.chat.models import ChatMessage, MessageStatus, ReplyAttestation, Role
from app.db.engine import claim_writer
from app.memory.service import TurnMemory, record_reply
from app.network import rollups as network
from app.proxy.client.client import ChatResult

log = structlog.get_logger()

WITHDRAWN = "withdrawn"  # the message got no stream slot: both rows are deleted


class TurnEnd(msgspec.Struct, frozen=True):
    """How one turn ended, as it is to be stored (JSON in the journal)."""

    prompt_id: int
    reply_id: int
    status: str  # complete, incomplete, failed or withdrawn
    content: str = ""
    error_code: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_wei: int = 0
    payment_tx: str | None = None
    completed_at: float = 0.0  # seconds since the epoch
    attestation: dict[str, Any] | None = None  # ReplyAttestation's columns but message_id
    memory: TurnMemory | None = None  # what a complete reply leaves to memory (None with memory off)

    @property
    def paid(self) -> bool:
        return self.cost_wei > 0

    @property
    def ended_at(self) -> datetime:
        return datetime.fromtimestamp(self.completed_at, UTC)

    def rows(self) -> tuple[ChatMessage, ReplyAttestation | None]:
        """The reply and its attestation as they are to be stored (not attached to a session)."""
        reply = ChatMessage(
            id=self.reply_id,
            reply_to=self.prompt_id,
            avatar_id="",
            fan="",
            role=Role.assistant,
            content=self.content,
            status=self.status,
        )
        self._apply(reply)
        attestation = (
            None if self.attestation is None else ReplyAttestation(message_id=self.reply_id, **self.attestation)
        )
        return reply, attestation

    def _apply(self, reply: ChatMessage) -> None:
        reply.status, reply.error_code, reply.content = self.status, self.error_code, self.content
        reply.completed_at = self.ended_at
        if self.model is not None:
            reply.model = self.model
        reply.prompt_tokens, reply.completion_tokens = self.prompt_tokens, self.completion_tokens
        reply.cost_wei, reply.payment_tx = self.cost_wei, self.payment_tx


def payment_fields(payment: SettleResponse | None) -> dict[str, Any]:
    """The reply's cost: the x402 amount the node settled on-chain (wei) and its transaction, or nothing."""
    if payment is None or not payment.success or not payment.amount:
        return {"cost_wei": 0, "payment_tx": None}
    return {"cost_wei": int(payment.amount), "payment_tx": payment.transaction}


def attestation_fields(result: ChatResult) -> dict[str, Any] | None:
    """A verified reply's attestation columns (None when it was not signed)."""
    signed = result.attestation
    if signed is None:
        return None
    return {
        "request_body": json.dumps(result.request_body),
        "verification_level": result.verification,
        "request_hash": signed.request_hash,
        "output_hash": signed.output_hash,
        "signature": signed.signature,
        "timestamp": signed.timestamp,
        "tee_id": signed.tee_id,
        "node_endpoint": result.node.endpoint,
        "node_public_key_der": base64.b64encode(result.node.signing_public_key).decode(),
    }


async def store_turn_end(session: AsyncSession, end: TurnEnd) -> tuple[ChatMessage, ReplyAttestation | None] | None:
    """Write ``end`` once: the reply's row is locked, and a reply no longer pending is left as it is.
    The stored rows, or None when the turn's rows are gone."""
    await claim_writer(session)
    reply = await session.scalar(select(ChatMessage).where(col(ChatMessage.id) == end.reply_id).with_for_update())
    prompt = await session.get(ChatMessage, end.prompt_id)
    if reply is None or prompt is None:
        await session.rollback()
        return None
    if reply.status != MessageStatus.pending:  # stored before (by the live write or another replay)
        attestation = await session.get(ReplyAttestation, end.reply_id)
        await session.commit()
        return reply, attestation
    if end.status == WITHDRAWN:
        for message_id in (end.reply_id, end.prompt_id):  # the reply first: it points at the prompt
            await session.execute(delete(ChatMessage).where(col(ChatMessage.id) == message_id))
        await session.commit()
        return None
    end._apply(reply)
    answered = end.status == MessageStatus.complete
    prompt.status = MessageStatus.answered if answered else end.status
    prompt.error_code, prompt.completed_at = end.error_code, end.ended_at
    if answered and end.memory is not None:
        assert prompt.id is not None
        await record_reply(
            session,
            end.memory,
            avatar_id=prompt.avatar_id,
            fan=prompt.fan,
            message_id=prompt.id,
            reply_id=end.reply_id,
            said=prompt.content,
            now=end.ended_at,
        )
    # The network's rollups count the turn in the transaction that ends it, so once whichever write stores it.
    await network.record_turn(
        session,
        avatar_id=prompt.avatar_id,
        fan=prompt.fan,
        model=reply.model,
        ended_at=end.ended_at,
        replied=answered,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
        paid_wei=reply.cost_wei,
    )
    attestation = None
    if end.attestation is not None:
        attestation = ReplyAttestation(message_id=end.reply_id, **end.attestation)
        session.add(attestation)
    await session.commit()
    return reply, attestation


Write = Callable[[Callable[[AsyncSession], Awaitable[Any]]], Awaitable[Any]]


async def settle(
    end: TurnEnd, journal: ReplyJournal | None, write: Write
) -> tuple[ChatMessage, ReplyAttestation | None] | None:
    """Journal ``end``, then store it. A store that fails leaves it in the journal, to be replayed, and
    answers the rows as they will be stored; without a journal the failure is raised."""
    if journal is not None:
        await journal.append(end)
    try:
        stored = await write(lambda session: store_turn_end(session, end))
    except Exception as error:
        if journal is None:
            raise
        log.warning(
            "chat_turn_journaled",
            reply_id=end.reply_id,
            status=end.status,
            cost_wei=str(end.cost_wei),
            payment_tx=end.payment_tx,
            error=repr(error)[:200],
        )
        return None if end.status == WITHDRAWN else end.rows()
    if journal is not None:
        await journal.forget(end.reply_id)
    return stored


class ReplyJournal:
    """Turn ends not yet stored, in a SQLite file of this machine (one per database)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = asyncio.Lock()
        # One thread and one connection for every write: opening a connection per write costs a checkpoint and an
        # fsync of its own at each close (1.9 vs 0.5 ms an append and its forget, measured).
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reply-journal")
        self._connection: sqlite3.Connection | None = None  # opened and used by that thread alone
        with contextlib.closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("CREATE TABLE IF NOT EXISTS turn_end (reply_id INTEGER PRIMARY KEY, body TEXT NOT NULL)")

    @classmethod
    def for_database(cls, directory: Path, database_url: str) -> ReplyJournal:
        name = hashlib.sha256(database_url.encode()).hexdigest()[:16]
        return cls(directory / f"turns-{name}.sqlite3")

    def _execute(self, statement: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if self._connection is None:
            self._connection = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._connection.execute("PRAGMA synchronous=FULL")  # on disk before the done frame goes out
        return self._connection.execute(statement, parameters).fetchall()

    async def _run(self, statement: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._execute, statement, parameters)

    async def append(self, end: TurnEnd) -> None:
        body = msgspec.json.encode(end).decode()
        await self._run("INSERT OR REPLACE INTO turn_end VALUES (?, ?)", (end.reply_id, body))

    async def forget(self, reply_id: int) -> None:
        await self._run("DELETE FROM turn_end WHERE reply_id = ?", (reply_id,))

    async def entries(self) -> list[TurnEnd]:
        rows = await self._run("SELECT body FROM turn_end ORDER BY reply_id")
        return [msgspec.json.decode(body, type=TurnEnd) for (body,) in rows]

    def _close_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def aclose(self) -> None:
        """Close the connection (what it wrote is on disk already) and its thread."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close_connection)
        self._thread.shutdown(wait=False)

    async def replay(self, sessions: async_sessionmaker[AsyncSession]) -> int:
        """Store what the journal holds, oldest first, until the database refuses; how many were stored."""
        async with self._lock:  # one replay at a time in this process
            stored = 0
            for end in await self.entries():
                async with sessions() as session:
                    await store_turn_end(session, end)
                await self.forget(end.reply_id)
                stored += 1
                log.info("chat_turn_replayed", reply_id=end.reply_id, status=end.status, cost_wei=str(end.cost_wei))
            return stored

    async def replay_at_start(self, sessions: async_sessionmaker[AsyncSession]) -> bool:
        """Replay before anything settles pending rows; False (logged) when the database refused."""
        try:
            await self.replay(sessions)
        except Exception as error:  # noqa: BLE001 - the database is down: the process still starts
            log.warning("chat_journal_replay_waiting", error=repr(error)[:200])
            return False
        return True

    async def run(self, sessions: async_sessionmaker[AsyncSession], *, interval_s: float) -> None:
        """Replay every ``interval_s`` forever (a lifespan task); a database still down is tried again."""
        while True:
            try:
                await self.replay(sessions)
            except Exception as error:  # noqa: BLE001 - the database is still down: the next round retries
                log.info("chat_journal_replay_waiting", error=repr(error)[:200])
            await asyncio.sleep(interval_s)
