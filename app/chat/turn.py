"""One message's life, end to end (:meth:`ChatService.handle`)::

    who may chat (holds a key, or is the creator) → resend? answer from the store
    → store the message (pending) and an empty reply → the chat gate (queued frames, if configured)
    → proxy client: paid, streamed, attested → token frames
    → store the reply: complete with usage, cost and attestation, or incomplete / failed

Token frames are provisional, as the proxy client's deltas are: a reply whose attestation fails
ends with an ``error`` frame (``verification_failed``) and is stored without its text. How a reply
that fails ends is one table, :data:`FAILURES`, from the error to what is stored and what the fan is told.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import msgspec
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from app.autoscale.meter import DemandMeter, MeteredStream
from app.avatars import service as avatars
from app.avatars.models import Avatar
from app.chain.watch import ChainWatch
from app.chat import store
from app.chat.access import keys_held
from app.chat.admission import Slot
from app.chat.context import context_messages, estimate_tokens, recent_history
from app.chat.frames import ChatRefused, ClientGone, Send, done_frame
from app.chat.gate import ChatGate
from app.chat.journal import ReplyJournal
from app.chat.models import ChatMessage, MessageStatus, ReplyAttestation
from app.chat.schemas import ErrorFrame, IncomingMessage, QueuedFrame, TokenFrame
from app.config import Settings
from app.db.models import utc_now
from app.errors import NotFound
from app.lib.time import aware
from app.memory.retrieval import NOTHING_RECALLED, Recall, with_memories
from app.memory.service import MemoryService
from app.proxy.client.client import (
    NoNodeAvailable,
    PaymentRefused,
    ProxyClient,
    ReplyFailed,
    ReplyRejected,
    RequestRejected,
)
from app.proxy.protocol import VerificationLevel

log = structlog.get_logger()

UNAVAILABLE_RETRY_S = 5


@dataclass(frozen=True)
class Outcome:
    """How a reply that failed ends: the code stored and sent, what the fan reads, whether the text that came is
    kept (``incomplete``) or dropped (``failed``), when to retry, and the warning logged (None: not worth one)."""

    code: str
    detail: Callable[[Exception], str]
    keeps_text: bool
    retry_after_s: int | None = None
    warning: str | None = None


FAILURES: tuple[tuple[type[Exception] | tuple[type[Exception], ...], Outcome], ...] = (
    (
        ReplyRejected,
        Outcome(
            "verification_failed",
            lambda _: "the reply's attestation did not verify; discard the text shown",
            keeps_text=False,
            warning="chat_reply_rejected",
        ),
    ),
    (
        ReplyFailed,
        Outcome(
            "upstream_failed",
            lambda error: f"the model failed mid-reply ({error}); nothing was charged for it",
            keeps_text=True,
            retry_after_s=UNAVAILABLE_RETRY_S,
        ),
    ),
    (
        (NoNodeAvailable, PaymentRefused),
        Outcome(
            "unavailable",
            lambda _: "no inference node can answer now",
            keeps_text=False,
            retry_after_s=UNAVAILABLE_RETRY_S,
            warning="chat_unavailable",
        ),
    ),
    (
        RequestRejected,
        Outcome(
            "request_rejected",
            lambda error: f"the inference node refused the request: {error}",
            keeps_text=False,
            warning="chat_request_rejected",
        ),
    ),
)
# Anything else: the fan gets a frame, the error a log line with its traceback, the rows an end.
INTERNAL_ERROR = Outcome("internal_error", lambda _: "the reply failed; the error was logged", keeps_text=True)


def outcome_of(error: Exception) -> Outcome:
    return next((outcome for kinds, outcome in FAILURES if isinstance(error, kinds)), INTERNAL_ERROR)


@dataclass(frozen=True)
class _Turn:
    avatar: Avatar
    fan: str
    keys: int
    client_msg_id: str
    rows: store.TurnRows
    messages: list[dict[str, str]]
    content: str
    recalled: Recall = NOTHING_RECALLED


class ChatService:
    """Answers fans' messages; one per connection, shared state lives in the database."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        proxy: ProxyClient,
        settings: Settings,
        gate: ChatGate | None = None,
        *,
        meter: DemandMeter,
        memory: MemoryService | None = None,
        journal: ReplyJournal | None = None,
        chain_watch: ChainWatch | None = None,
    ) -> None:
        self._sessions = sessions
        self._memory = memory
        self._journal = journal  # turn ends are written ahead there (app/chat/journal.py)
        self._chain_watch = chain_watch  # a stalled chain can neither pay a node nor answer: turns refused
        self._proxy = proxy
        self._settings = settings
        self._gate = gate  # without one, every reply starts at once
        self._meter = meter

    async def avatar_for_chat(self, avatar_id: str, fan: str) -> Avatar:
        """The avatar, if the fan may chat with it now (:class:`ChatRefused` otherwise)."""
        async with self._sessions() as session:
            avatar = await _avatar(session, avatar_id)
            await keys_held(session, avatar, fan)
            return avatar

    async def handle(self, avatar_id: str, fan: str, incoming: IncomingMessage, send: Send) -> None:
        """Answer one message: a reply streamed and stored, the stored reply for a resend, or an error frame.

        Raises :class:`ClientGone` (after storing what it must) when the socket closes under it.
        """
        try:
            turn = await self._begin(avatar_id, fan, incoming, send)
        except ChatRefused as refused:
            await send(
                ErrorFrame(
                    code=refused.code,
                    detail=refused.detail,
                    retry_after_s=refused.retry_after_s,
                    client_msg_id=incoming.client_msg_id,
                )
            )
            return
        except ClientGone:
            raise
        except Exception as error:  # the store failed before anything was stored: tell the fan, log the rest
            log.exception("chat_message_error", avatar_id=avatar_id, error=repr(error))
            await send(
                ErrorFrame(
                    code="internal_error",
                    detail="the message could not be taken; the error was logged",
                    retry_after_s=UNAVAILABLE_RETRY_S,
                    client_msg_id=incoming.client_msg_id,
                )
            )
            return
        if turn is not None:
            await self._answer(turn, send)

    async def _begin(self, avatar_id: str, fan: str, incoming: IncomingMessage, send: Send) -> _Turn | None:
        """Who may chat, idempotency, and the message stored before inference; None when a resend was answered."""
        if self._chain_watch is not None and self._chain_watch.stalled:  # refuse at once rather than hang
            raise ChatRefused("unavailable", "the chain is not answering now", retry_after_s=UNAVAILABLE_RETRY_S)
        async with self._sessions() as session:  # reads: they never wait for a writer
            avatar = await _avatar(session, avatar_id)
            keys = await keys_held(session, avatar, fan)
            history = await recent_history(session, avatar_id, fan, self._settings.chat_history_token_budget)
        if await self._within_rate(avatar_id, fan, incoming.client_msg_id):
            # The memories are read while the message is written: neither waits for the other. A client_msg_id sent
            # before is found by the store (its unique key), not looked up first: a resend is rare, a message not.
            stored, recalled = await asyncio.gather(
                store.write_retrying(
                    self._sessions, lambda session: store.store_message(session, avatar, fan, incoming)
                ),
                self._recall(avatar_id, fan, incoming.content),
            )
        else:
            stored, recalled = None, NOTHING_RECALLED
        if stored is not None:
            return _Turn(
                avatar,
                fan,
                keys,
                incoming.client_msg_id,
                store.TurnRows(*stored),
                with_memories(context_messages(avatar.persona, history, incoming.content), recalled),
                incoming.content,
                recalled,
            )
        async with self._sessions() as session:  # sent before, or at the same moment on another connection
            sent = await store.sent_before(session, avatar_id, fan, incoming.client_msg_id)
            assert sent is not None
            await self._answer_resend(session, sent, send)
            return None

    async def _within_rate(self, avatar_id: str, fan: str, client_msg_id: str) -> bool:
        """Checked before storing, so that a refused message costs nothing: True within the fan's rate; False over
        it for a resend (answered from the store: not a new message); :class:`ChatRefused` otherwise."""
        if self._gate is None:
            return True
        try:
            await self._gate.check_rate(fan)
        except ChatRefused:
            async with self._sessions() as session:
                if await store.sent_before(session, avatar_id, fan, client_msg_id) is None:
                    raise
            return False
        return True

    async def _recall(self, avatar_id: str, fan: str, content: str) -> Recall:
        return await self._memory.recall(avatar_id, fan, content) if self._memory else NOTHING_RECALLED

    async def _answer_resend(self, session: AsyncSession, prompt: ChatMessage, send: Send) -> None:
        """A message already sent: its stored reply, never a second one (and never a second payment)."""
        reply = await session.scalar(select(ChatMessage).where(col(ChatMessage.reply_to) == prompt.id))
        client_msg_id = prompt.client_msg_id or ""
        if prompt.status == MessageStatus.pending and utc_now() - aware(prompt.created_at) > store.STALE_PENDING_AFTER:
            await store.settle_abandoned(session, prompt, reply)
        if prompt.status == MessageStatus.answered and reply is not None:
            attestation = await session.get(ReplyAttestation, reply.id)
            assert reply.id is not None
            await send(TokenFrame(client_msg_id=client_msg_id, message_id=reply.id, text=reply.content))
            await send(done_frame(reply, client_msg_id, attestation))
        elif prompt.status == MessageStatus.pending:
            raise ChatRefused(
                "in_progress",
                "this client_msg_id's reply is still being written; it is in the history once done",
                retry_after_s=UNAVAILABLE_RETRY_S,
            )
        else:
            raise ChatRefused(
                "previously_failed",
                f"this client_msg_id was sent before and its reply is "
                f"{prompt.status} ({prompt.error_code}); send the message again "
                "with a new client_msg_id",
            )

    async def _answer(self, turn: _Turn, send: Send) -> None:
        with self._meter.track(turn.avatar.model, turn.avatar.id, turn.fan) as metered:  # demand, for the autoscaler
            await self._answer_metered(turn, send, metered)

    async def _answer_metered(self, turn: _Turn, send: Send, metered: MeteredStream) -> None:
        text: list[str] = []
        try:
            async with self._admitted(turn, send) as slot:
                metered.admitted()
                async with self._proxy.stream_chat(
                    model=turn.avatar.model,
                    messages=turn.messages,
                    verification=VerificationLevel(turn.avatar.verification_level),
                ) as stream:
                    async for delta in stream:
                        if not text:
                            metered.first_token()
                        text.append(delta)
                        await send(
                            TokenFrame(client_msg_id=turn.client_msg_id, message_id=turn.rows.reply_id, text=delta)
                        )
                result = stream.result
                tokens = (result.usage or {}).get("completion_tokens", estimate_tokens(result.text))
                if slot is not None:  # what this fan was served, for fairness inside the band
                    slot.tokens_used = tokens
        except (asyncio.CancelledError, ClientGone):
            await asyncio.shield(
                store.end_failed(self._sessions, self._journal, turn.rows, "disconnected", "".join(text))
            )
            raise
        except ChatRefused as refused:  # no stream slot: the message was never answered, so it is not kept
            metered.refused(refused.code)
            await store.withdraw(self._sessions, self._journal, turn.rows)
            await send(
                ErrorFrame(
                    code=refused.code,
                    detail=refused.detail,
                    retry_after_s=refused.retry_after_s,
                    client_msg_id=turn.client_msg_id,
                )
            )
        except Exception as error:  # noqa: BLE001 - every failure ends by the table (unknown ones logged in full)
            await self._end_failed(turn, send, error, "".join(text))
        else:
            try:
                remembered = (
                    self._memory.remembered(
                        turn.recalled, turn.content, result.text, turn.avatar.model, turn.avatar.verification_level
                    )
                    if self._memory is not None
                    else None
                )
                reply, attestation = await store.complete(self._sessions, self._journal, turn.rows, result, remembered)
            except Exception as error:  # the fan saw the text; say it was not kept, log what was paid
                log.exception(
                    "chat_store_error",
                    stage="complete",
                    reply_id=turn.rows.reply_id,
                    payment_tx=result.payment.transaction if result.payment else None,
                    error=repr(error),
                )
                await self._error(
                    turn,
                    send,
                    "internal_error",
                    "the reply could not be stored; the error was logged",
                    UNAVAILABLE_RETRY_S,
                )
                return
            metered.finished(tokens=tokens, paid_wei=reply.cost_wei)
            if self._memory is not None:  # prune and extract in the background
                self._memory.after_reply(turn.avatar.id, turn.fan, turn.rows.reply_id)
            await send(
                msgspec.structs.replace(
                    done_frame(reply, turn.client_msg_id, attestation),
                    memories_used=len(turn.recalled.memories),
                    memory_tokens=turn.recalled.tokens,
                )
            )

    async def _end_failed(self, turn: _Turn, send: Send, error: Exception, partial: str) -> None:
        """The reply failed: stored as its :func:`outcome_of` says (with what the node was paid for a reply that
        did not verify), and the fan told."""
        outcome = outcome_of(error)
        if outcome is INTERNAL_ERROR:
            log.exception("chat_reply_error", avatar_id=turn.avatar.id, error=repr(error))
        elif outcome.warning is not None:
            log.warning(outcome.warning, avatar_id=turn.avatar.id, error=str(error))
        payment = error.payment if isinstance(error, ReplyRejected) else None  # the text is discarded, the cost kept
        await store.end_failed(
            self._sessions, self._journal, turn.rows, outcome.code, partial if outcome.keeps_text else "", payment
        )
        await self._error(turn, send, outcome.code, outcome.detail(error), outcome.retry_after_s)

    @asynccontextmanager
    async def _admitted(self, turn: _Turn, send: Send) -> AsyncIterator[Slot | None]:
        if self._gate is None:
            yield None
            return

        async def queued(position: int, eta_s: int) -> None:
            await send(QueuedFrame(client_msg_id=turn.client_msg_id, position=position, eta_s=eta_s))

        async with self._gate.admit(
            fan=turn.fan, is_creator=turn.fan == turn.avatar.creator, keys_held=turn.keys, on_wait=queued
        ) as slot:
            yield slot

    async def _error(self, turn: _Turn, send: Send, code: str, detail: str, retry_after_s: int | None = None) -> None:
        await send(
            ErrorFrame(
                code=code,
                detail=detail,
                retry_after_s=retry_after_s,
                client_msg_id=turn.client_msg_id,
                message_id=turn.rows.reply_id,
            )
        )


async def _avatar(session: AsyncSession, avatar_id: str) -> Avatar:
    try:
        return await avatars.get_avatar(session, avatar_id)
    except NotFound as missing:
        raise ChatRefused("not_found", missing.detail) from None
