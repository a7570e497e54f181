"""Key-gated chat with an avatar: frames, the gate, the context, one reply end to end, history.

One message's life (:meth:`ChatService.handle`)::

    gate (holds a key, or is the creator) → resend? answer from the store
    → store the message (pending) and an empty reply → admission (queued frames, if configured)
    → proxy client: paid, streamed, attested → token frames
    → store the reply: complete with usage, cost and attestation, or incomplete / failed

Token frames are provisional, as the proxy client's deltas are: a reply whose attestation fails
ends with an ``error`` frame (``verification_failed``) and is stored without its text.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol, TypeVar

import msgspec
import structlog
from sqlalchemy import delete, func, literal, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from x402.schemas import SettleResponse

from app.autoscale.meter import DemandMeter, MeteredStream
from app.avatars import service as avatars
from app.avatars.models import Avatar
from app.chat.models import ChatMessage, MessageStatus, ReplyAttestation, Role
from app.chat.schemas import (
    AttestationSummary,
    ChatMessageOut,
    DoneFrame,
    ErrorFrame,
    IncomingMessage,
    QueuedFrame,
    ReplyAttestationOut,
    ServerFrame,
    TokenFrame,
)
from app.config import Settings
from app.db.engine import claim_writer
from app.db.models import utc_now
from app.errors import DATABASE_UNAVAILABLE, NotFound
from app.market import service as market
from app.market.schemas import Page
from app.memory.retrieval import NOTHING_RECALLED, Recall, with_memories
from app.memory.service import CompletedTurn, MemoryService
from app.proxy.client import (
    ChatResult,
    NoNodeAvailable,
    PaymentRefused,
    ProxyClient,
    ReplyFailed,
    ReplyRejected,
    RequestRejected,
)
from app.proxy.verify import canonical_request, load_public_key, public_key_pem

log = structlog.get_logger()

MAX_CLIENT_MSG_ID = 64
HISTORY_SCAN_LIMIT = 200  # replies looked at when filling the history budget
STALE_PENDING_AFTER = timedelta(minutes=10)  # a reply still pending this long died with its worker
UNAVAILABLE_RETRY_S = 5
STORE_ATTEMPTS = 4  # a turn's end is written again while the database is busy: after 0.1, 0.2, 0.4 s
STORE_RETRY_S = 0.1
T = TypeVar("T")
SIGNATURE_SCHEME = ("RSA-PSS(SHA-256, MGF1-SHA-256, salt 32) over "
                    "keccak256(request_hash || output_hash || uint256(timestamp))")

Send = Callable[[ServerFrame], Awaitable[None]]


class FrameError(Exception):
    """A client frame that cannot be used; the fan gets an error frame and may go on."""

    def __init__(self, code: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.code, self.detail, self.field = code, detail, field

    def frame(self) -> ErrorFrame:
        return ErrorFrame(code=self.code, detail=self.detail, field=self.field)


class ChatRefused(Exception):
    """A message that gets no reply now (no key, queue full, rate limited…), with when to retry."""

    def __init__(self, code: str, detail: str, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.code, self.detail, self.retry_after_s = code, detail, retry_after_s


class ClientGone(Exception):
    """The fan's socket closed while frames were being sent."""


# ---------------------------------------------------------------- admission seam


class AdmissionSlot(Protocol):
    tokens_used: int | None


class Admission(Protocol):
    """The rate limit and the stream queue (``app/chat/gate.py``), set as ``app.state.chat_admission``.

    ``check_rate`` counts a new message or raises :class:`ChatRefused`; ``admit`` holds a stream
    slot for its block, calling ``on_wait(position, eta_s)`` on every change while the fan waits,
    and raises :class:`ChatRefused` when the fan gets no slot. Without it, every reply starts at once.
    """

    async def check_rate(self, fan: str) -> None: ...

    def admit(self, *, fan: str, is_creator: bool, keys_held: int,
              on_wait: Callable[[int, int], Awaitable[None]]) -> AbstractAsyncContextManager[AdmissionSlot]: ...


# ---------------------------------------------------------------- frames


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_frame(raw: str | bytes | None, *, max_frame_bytes: int, max_message_chars: int) -> IncomingMessage:
    """A client frame as a message, or :class:`FrameError` saying what is wrong with it."""
    if raw is None or isinstance(raw, bytes):
        raise FrameError("bad_frame", "frames are JSON text; binary frames are not accepted")
    size = len(raw.encode("utf-8", "surrogatepass"))
    if size > max_frame_bytes:
        raise FrameError("frame_too_large", f"a frame may hold at most {max_frame_bytes} bytes (got {size})")
    try:
        frame = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested past the decoder's depth guard
        raise FrameError("bad_frame", "not JSON: send {\"type\": \"message\", \"client_msg_id\": …, "
                                      "\"content\": …}") from None
    if not isinstance(frame, dict):
        raise FrameError("bad_frame", "a frame is a JSON object with a \"type\"")
    if frame.get("type") != "message":
        raise FrameError("unknown_type", f"unknown frame type {frame.get('type')!r}; the only one is \"message\"",
                         field="type")
    client_msg_id = frame.get("client_msg_id")
    if not isinstance(client_msg_id, str) or not 1 <= len(client_msg_id) <= MAX_CLIENT_MSG_ID \
            or not client_msg_id.isprintable() or not _encodable(client_msg_id):
        raise FrameError("invalid_message", f"client_msg_id: a string of 1–{MAX_CLIENT_MSG_ID} printable characters",
                         field="client_msg_id")
    content = frame.get("content")
    if not isinstance(content, str) or not content.strip():
        raise FrameError("invalid_message", "content: a non-empty string", field="content")
    if not _encodable(content):  # "\ud800" is valid JSON but no text: storing or sending it would fail
        raise FrameError("invalid_message", "content: not valid Unicode text (a lone surrogate)", field="content")
    if len(content) > max_message_chars:
        raise FrameError("invalid_message", f"content: at most {max_message_chars} characters (got {len(content)})",
                         field="content")
    return IncomingMessage(client_msg_id=client_msg_id, content=content)


# ---------------------------------------------------------------- gate and context


async def keys_held(session: AsyncSession, avatar: Avatar, fan: str) -> int:
    """The fan's keys of the avatar per the index; :class:`ChatRefused` (``no_key``) if none and not its creator."""
    held = await market.balance_of(session, avatar.id, fan)
    if held < 1 and fan != avatar.creator:
        raise ChatRefused("no_key", f"hold at least one key of @{avatar.handle} to chat with it")
    return held


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


async def recent_history(session: AsyncSession, avatar_id: str, fan: str, budget_tokens: int) -> list[dict[str, str]]:
    """The latest complete exchanges of the fan's thread that fit ``budget_tokens``, oldest first."""
    if budget_tokens <= 0:
        return []
    replies = (await session.scalars(
        select(ChatMessage).where(ChatMessage.avatar_id == avatar_id, ChatMessage.fan == fan,
                                  ChatMessage.role == Role.assistant, ChatMessage.status == MessageStatus.complete)
        .order_by(ChatMessage.id.desc()).limit(HISTORY_SCAN_LIMIT))).all()
    prompts = {message.id: message for message in await session.scalars(
        select(ChatMessage).where(ChatMessage.id.in_([reply.reply_to for reply in replies])))}
    exchanges: list[dict[str, str]] = []
    used = 0
    for reply in replies:
        prompt = prompts.get(reply.reply_to)
        if prompt is None:
            continue
        cost = estimate_tokens(prompt.content) + estimate_tokens(reply.content)
        if used + cost > budget_tokens:
            break
        used += cost
        exchanges[:0] = [{"role": "user", "content": prompt.content}, {"role": "assistant", "content": reply.content}]
    return exchanges


def context_messages(persona: str, history: Sequence[dict[str, str]], content: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": persona}, *history, {"role": "user", "content": content}]


def request_body(model: str, messages: Sequence[dict[str, str]]) -> dict[str, Any]:
    """The chat-completions body the proxy client sends for these messages (what the node signs)."""
    return {"model": model, "messages": [dict(message) for message in messages], "stream": True}


# ---------------------------------------------------------------- one message, end to end


@dataclass(frozen=True)
class _Turn:
    avatar: Avatar
    fan: str
    keys: int
    client_msg_id: str
    prompt_id: int
    reply_id: int
    messages: list[dict[str, str]]
    content: str
    recalled: Recall = NOTHING_RECALLED


class ChatService:
    """Answers fans' messages; one per connection, shared state lives in the database."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], proxy: ProxyClient, settings: Settings,
                 admission: Admission | None = None, *, meter: DemandMeter,
                 memory: MemoryService | None = None) -> None:
        self._sessions = sessions
        self._memory = memory
        self._proxy = proxy
        self._settings = settings
        self._admission = admission
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
            await send(ErrorFrame(code=refused.code, detail=refused.detail, retry_after_s=refused.retry_after_s,
                                  client_msg_id=incoming.client_msg_id))
            return
        except ClientGone:
            raise
        except Exception as error:  # the store failed before anything was stored: tell the fan, log the rest
            log.exception("chat_message_error", avatar_id=avatar_id, error=repr(error))
            await send(ErrorFrame(code="internal_error", detail="the message could not be taken; the error was "
                                  "logged", retry_after_s=UNAVAILABLE_RETRY_S, client_msg_id=incoming.client_msg_id))
            return
        if turn is not None:
            await self._answer(turn, send)

    async def _begin(self, avatar_id: str, fan: str, incoming: IncomingMessage, send: Send) -> _Turn | None:
        """Gate, idempotency, and the message stored before inference; None when a resend was answered."""
        async with self._sessions() as session:  # reads: they never wait for a writer
            avatar = await _avatar(session, avatar_id)
            keys = await keys_held(session, avatar, fan)
            sent = await _sent_before(session, avatar_id, fan, incoming.client_msg_id)
            if sent is None:
                if self._admission is not None:
                    await self._admission.check_rate(fan)  # before storing: a refused message costs nothing
                history = await recent_history(session, avatar_id, fan, self._settings.chat_history_token_budget)
        if sent is None:
            recalled = await self._memory.recall(avatar_id, fan, incoming.content) if self._memory else NOTHING_RECALLED
            stored = await self._write(lambda session: _store_message(session, avatar, fan, incoming))
            if stored is not None:
                prompt_id, reply_id = stored
                return _Turn(avatar, fan, keys, incoming.client_msg_id, prompt_id, reply_id,
                             with_memories(context_messages(avatar.persona, history, incoming.content), recalled),
                             incoming.content, recalled)
        async with self._sessions() as session:  # sent before, or at the same moment on another connection
            sent = await _sent_before(session, avatar_id, fan, incoming.client_msg_id)
            assert sent is not None
            await self._answer_resend(session, sent, send)
            return None

    async def _answer_resend(self, session: AsyncSession, prompt: ChatMessage, send: Send) -> None:
        """A message already sent: its stored reply, never a second one (and never a second payment)."""
        reply = await session.scalar(select(ChatMessage).where(ChatMessage.reply_to == prompt.id))
        client_msg_id = prompt.client_msg_id or ""
        if prompt.status == MessageStatus.pending and utc_now() - _aware(prompt.created_at) > STALE_PENDING_AFTER:
            await _settle_abandoned(session, prompt, reply)
        if prompt.status == MessageStatus.answered and reply is not None:
            attestation = await session.get(ReplyAttestation, reply.id)
            assert reply.id is not None
            await send(TokenFrame(client_msg_id=client_msg_id, message_id=reply.id, text=reply.content))
            await send(_done_frame(reply, client_msg_id, attestation))
        elif prompt.status == MessageStatus.pending:
            raise ChatRefused("in_progress", "this client_msg_id's reply is still being written; "
                                             "it is in the history once done", retry_after_s=UNAVAILABLE_RETRY_S)
        else:
            raise ChatRefused("previously_failed", f"this client_msg_id was sent before and its reply is "
                                                   f"{prompt.status} ({prompt.error_code}); send the message again "
                                                   "with a new client_msg_id")

    async def _answer(self, turn: _Turn, send: Send) -> None:
        with self._meter.track(turn.avatar.model, turn.avatar.id, turn.fan) as metered:  # demand, for the autoscaler
            await self._answer_metered(turn, send, metered)

    async def _answer_metered(self, turn: _Turn, send: Send, metered: MeteredStream) -> None:
        text: list[str] = []
        try:
            async with self._admitted(turn, send) as slot:
                metered.admitted()
                async with self._proxy.stream_chat(model=turn.avatar.model, messages=turn.messages,
                                                   verification=turn.avatar.verification_level,  # type: ignore[arg-type]
                                                   ) as stream:
                    async for delta in stream:
                        if not text:
                            metered.first_token()
                        text.append(delta)
                        await send(TokenFrame(client_msg_id=turn.client_msg_id, message_id=turn.reply_id, text=delta))
                result = stream.result
                tokens = (result.usage or {}).get("completion_tokens", estimate_tokens(result.text))
                if slot is not None:  # what this fan was served, for fairness inside the band
                    slot.tokens_used = tokens
        except (asyncio.CancelledError, ClientGone):
            await asyncio.shield(self._fail(turn, "disconnected", "".join(text)))
            raise
        except ChatRefused as refused:  # no stream slot: the message was never answered, so it is not kept
            metered.refused(refused.code)
            await self._withdraw(turn)
            await send(ErrorFrame(code=refused.code, detail=refused.detail, retry_after_s=refused.retry_after_s,
                                  client_msg_id=turn.client_msg_id))
        except ReplyRejected as error:
            log.warning("chat_reply_rejected", avatar_id=turn.avatar.id, error=str(error))
            await self._fail(turn, "verification_failed", "", error.payment)  # the text is discarded, the cost kept
            await self._error(turn, send, "verification_failed",
                              "the reply's attestation did not verify; discard the text shown")
        except ReplyFailed as error:
            await self._fail(turn, "upstream_failed", "".join(text))
            await self._error(turn, send, "upstream_failed", f"the model failed mid-reply ({error}); nothing was "
                                                             "charged for it", UNAVAILABLE_RETRY_S)
        except (NoNodeAvailable, PaymentRefused) as error:
            log.warning("chat_unavailable", avatar_id=turn.avatar.id, error=str(error))
            await self._fail(turn, "unavailable", "")
            await self._error(turn, send, "unavailable", "no inference node can answer now", UNAVAILABLE_RETRY_S)
        except RequestRejected as error:
            log.warning("chat_request_rejected", avatar_id=turn.avatar.id, error=str(error))
            await self._fail(turn, "request_rejected", "")
            await self._error(turn, send, "request_rejected", f"the inference node refused the request: {error}")
        except Exception as error:  # the fan gets a frame, the error a log line, the rows an end
            log.exception("chat_reply_error", avatar_id=turn.avatar.id, error=repr(error))
            await self._fail(turn, "internal_error", "".join(text))
            await self._error(turn, send, "internal_error", "the reply failed; the error was logged")
        else:
            try:
                reply, attestation = await self._complete(turn, result)
            except Exception as error:  # the fan saw the text; say it was not kept, log what was paid
                log.exception("chat_store_error", stage="complete", reply_id=turn.reply_id,
                              payment_tx=result.payment.transaction if result.payment else None, error=repr(error))
                await self._error(turn, send, "internal_error", "the reply could not be stored; the error was "
                                                                "logged", UNAVAILABLE_RETRY_S)
                return
            metered.finished(tokens=tokens, paid_wei=reply.cost_wei)
            if self._memory is not None:  # reinforce, prune, extract: in the background
                self._memory.after_reply(CompletedTurn(
                    turn.avatar.id, turn.fan, turn.avatar.model, turn.avatar.verification_level, turn.prompt_id,
                    turn.reply_id, turn.content, result.text, turn.recalled))
            await send(msgspec.structs.replace(_done_frame(reply, turn.client_msg_id, attestation),
                                               memories_used=len(turn.recalled.memories),
                                               memory_tokens=turn.recalled.tokens))

    @asynccontextmanager
    async def _admitted(self, turn: _Turn, send: Send) -> AsyncIterator[AdmissionSlot | None]:
        if self._admission is None:
            yield None
            return

        async def queued(position: int, eta_s: int) -> None:
            await send(QueuedFrame(client_msg_id=turn.client_msg_id, position=position, eta_s=eta_s))

        async with self._admission.admit(fan=turn.fan, is_creator=turn.fan == turn.avatar.creator,
                                         keys_held=turn.keys, on_wait=queued) as slot:
            yield slot

    async def _error(self, turn: _Turn, send: Send, code: str, detail: str, retry_after_s: int | None = None) -> None:
        await send(ErrorFrame(code=code, detail=detail, retry_after_s=retry_after_s,
                              client_msg_id=turn.client_msg_id, message_id=turn.reply_id))

    async def _write(self, write: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run one short write transaction, again while the database is busy (SQLite's single writer, the
        pool's wait): the end of a turn, often a paid one, must be stored."""
        for attempt in range(STORE_ATTEMPTS):
            try:
                async with self._sessions() as session:
                    await claim_writer(session)
                    return await write(session)
            except DATABASE_UNAVAILABLE:
                if attempt == STORE_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(STORE_RETRY_S * 2 ** attempt)
        raise AssertionError("unreachable")

    async def _fail(self, turn: _Turn, code: str, partial: str, payment: SettleResponse | None = None) -> None:
        """End the turn without a verified reply: ``incomplete`` with the text that came, else ``failed``;
        with what the node was paid, if it was. If even that cannot be stored, the rows stay pending
        (settled at the next start) and the line logged says what was lost."""
        status = MessageStatus.incomplete if partial else MessageStatus.failed

        async def write(session: AsyncSession) -> None:
            prompt = await session.get(ChatMessage, turn.prompt_id)
            reply = await session.get(ChatMessage, turn.reply_id)
            assert prompt is not None
            assert reply is not None
            now = utc_now()
            prompt.status, prompt.error_code, prompt.completed_at = status, code, now
            reply.status, reply.error_code, reply.content, reply.completed_at = status, code, partial, now
            _record_payment(reply, payment)
            await session.commit()

        try:
            await self._write(write)
        except Exception as error:  # the fan still gets the turn's error frame
            log.exception("chat_store_error", stage="fail", reply_id=turn.reply_id, code=code,
                          payment_tx=payment.transaction if payment else None, error=repr(error))

    async def _withdraw(self, turn: _Turn) -> None:
        """Forget a message that got no slot, so that resending the same ``client_msg_id`` later is a new try."""
        async def write(session: AsyncSession) -> None:
            for message_id in (turn.reply_id, turn.prompt_id):  # the reply first: it points at the prompt
                await session.execute(delete(ChatMessage).where(ChatMessage.id == message_id))
            await session.commit()

        try:
            await self._write(write)
        except Exception as error:  # left pending, it is settled as abandoned later
            log.exception("chat_store_error", stage="withdraw", reply_id=turn.reply_id, error=repr(error))

    async def _complete(self, turn: _Turn, result: ChatResult) -> tuple[ChatMessage, ReplyAttestation | None]:
        async def write(session: AsyncSession) -> tuple[ChatMessage, ReplyAttestation | None]:
            prompt = await session.get(ChatMessage, turn.prompt_id)
            reply = await session.get(ChatMessage, turn.reply_id)
            assert prompt is not None
            assert reply is not None
            now = utc_now()
            prompt.status, prompt.completed_at = MessageStatus.answered, now
            usage = result.usage or {}
            reply.content, reply.status, reply.completed_at, reply.model = result.text, MessageStatus.complete, now, \
                result.model
            reply.prompt_tokens, reply.completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
            _record_payment(reply, result.payment)
            attestation = None
            if result.attestation is not None:
                signed = result.attestation
                attestation = ReplyAttestation(
                    message_id=turn.reply_id, request_body=json.dumps(request_body(turn.avatar.model, turn.messages)),
                    verification_level=result.verification, request_hash=signed.request_hash,
                    output_hash=signed.output_hash, signature=signed.signature, timestamp=signed.timestamp,
                    tee_id=signed.tee_id, node_endpoint=result.node.endpoint,
                    node_public_key_der=base64.b64encode(result.node.signing_public_key).decode(),
                )
                session.add(attestation)
            await session.commit()
            return reply, attestation

        return await self._write(write)


async def _store_message(session: AsyncSession, avatar: Avatar, fan: str,
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


def _record_payment(reply: ChatMessage, payment: SettleResponse | None) -> None:
    """The reply's cost: the x402 amount the node settled on-chain (wei), or nothing."""
    paid = payment is not None and payment.success and payment.amount
    reply.cost_wei = int(payment.amount) if paid else 0  # type: ignore[union-attr,arg-type]
    reply.payment_tx = payment.transaction if paid else None  # type: ignore[union-attr]


async def _avatar(session: AsyncSession, avatar_id: str) -> Avatar:
    try:
        return await avatars.get_avatar(session, avatar_id)
    except NotFound as missing:
        raise ChatRefused("not_found", missing.detail) from None


async def _sent_before(session: AsyncSession, avatar_id: str, fan: str, client_msg_id: str) -> ChatMessage | None:
    return await session.scalar(select(ChatMessage).where(
        ChatMessage.avatar_id == avatar_id, ChatMessage.fan == fan, ChatMessage.client_msg_id == client_msg_id))


async def _settle_abandoned(session: AsyncSession, prompt: ChatMessage, reply: ChatMessage | None) -> None:
    """A reply pending for longer than any stream lasts: its worker died. Say so, once."""
    now = utc_now()
    for message in (prompt, reply):
        if message is not None and message.status == MessageStatus.pending:
            message.status, message.error_code, message.completed_at = MessageStatus.failed, "abandoned", now
    await session.commit()


async def settle_all_pending(session: AsyncSession) -> int:
    """At the start of the only worker, every reply still pending died with the previous process:
    mark it (and its message) ``failed``/``abandoned`` so threads don't show it under way forever.
    A database that is down now is logged, not fatal: ``/readyz`` reports it, and the process
    still starts (and stays live) so an orchestrator sees why."""
    try:
        result = await session.execute(
            update(ChatMessage).where(ChatMessage.status == MessageStatus.pending)
            .values(status=MessageStatus.failed, error_code="abandoned", completed_at=utc_now()))
        await session.commit()
    except (SQLAlchemyError, OSError) as error:
        log.warning("chat_settle_pending_skipped", error=str(error))
        return 0
    return result.rowcount  # type: ignore[attr-defined]


def _usage_of(reply: ChatMessage) -> dict[str, int] | None:
    if reply.prompt_tokens is None and reply.completion_tokens is None:
        return None
    prompt_tokens, completion_tokens = reply.prompt_tokens or 0, reply.completion_tokens or 0
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _done_frame(reply: ChatMessage, client_msg_id: str, attestation: ReplyAttestation | None) -> DoneFrame:
    assert reply.id is not None
    assert reply.reply_to is not None
    summary = None
    if attestation is not None:
        summary = AttestationSummary(
            verification_level=attestation.verification_level, tee_id=attestation.tee_id,
            request_hash=attestation.request_hash, output_hash=attestation.output_hash,
            signature=attestation.signature, timestamp=attestation.timestamp,
            url=f"/api/messages/{reply.id}/attestation",
        )
    return DoneFrame(client_msg_id=client_msg_id, message_id=reply.id, reply_to=reply.reply_to,
                     usage=_usage_of(reply), cost_wei=str(reply.cost_wei), attestation=summary,
                     verified=attestation is not None)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ---------------------------------------------------------------- history and attestations over HTTP


async def thread_page(session: AsyncSession, *, avatar_id: str, fan: str, cursor: str | None,
                      limit: int) -> Page[ChatMessageOut]:
    """The fan's own thread with the avatar, newest first; the cursor is the last message's id."""
    query = select(ChatMessage).where(ChatMessage.avatar_id == avatar_id, ChatMessage.fan == fan) \
        .order_by(ChatMessage.id.desc()).limit(limit + 1)
    after = market.decode_cursor(cursor, market.cursor_id)
    if after is not None:
        query = query.where(ChatMessage.id < after[0])
    messages = (await session.scalars(query)).all()
    page = messages[:limit]
    attested = set(await session.scalars(select(ReplyAttestation.message_id).where(
        ReplyAttestation.message_id.in_([message.id for message in page]))))
    next_cursor = market.encode_cursor(page[-1].id) if len(messages) > limit else None
    return Page(items=[_message_out(message, message.id in attested) for message in page], next_cursor=next_cursor)


def _message_out(message: ChatMessage, attested: bool) -> ChatMessageOut:
    assert message.id is not None
    return ChatMessageOut(
        id=message.id, role=message.role, content=message.content, status=message.status,
        created_at=_aware(message.created_at), client_msg_id=message.client_msg_id, reply_to=message.reply_to,
        error_code=message.error_code, model=message.model, usage=_usage_of(message),
        cost_wei=str(message.cost_wei), attested=attested,
        completed_at=_aware(message.completed_at) if message.completed_at else None,
    )


async def reply_attestation(session: AsyncSession, *, message_id: int, viewer: str) -> ReplyAttestationOut:
    """A reply's verification material, for the fan whose thread it is and the avatar's creator only:
    the request as sent carries the persona. 404 for anyone else, as for a reply without one."""
    reply = await session.get(ChatMessage, message_id)
    attestation = await session.get(ReplyAttestation, message_id) if reply is not None else None
    avatar = await avatars.get_avatar(session, reply.avatar_id) if reply is not None else None
    if reply is None or attestation is None or viewer not in (reply.fan, avatar.creator if avatar else None):
        raise NotFound(f"no attested reply {message_id} in your threads")
    body = json.loads(attestation.request_body)
    der = base64.b64decode(attestation.node_public_key_der)
    return ReplyAttestationOut(
        message_id=message_id, avatar_id=reply.avatar_id, verification_level=attestation.verification_level,
        request_body=body, canonical_request=canonical_request(body), output=reply.content,
        request_hash=attestation.request_hash, output_hash=attestation.output_hash, signature=attestation.signature,
        timestamp=attestation.timestamp, tee_id=attestation.tee_id, node_endpoint=attestation.node_endpoint,
        node_public_key_pem=public_key_pem(load_public_key(der)),
        node_public_key_der_base64=attestation.node_public_key_der,
        signature_scheme=SIGNATURE_SCHEME,
    )


# ---------------------------------------------------------------- activity for rankings and creator stats


async def chat_activity_since(session: AsyncSession, since: datetime,
                              avatar_ids: Sequence[str] | None = None) -> dict[str, tuple[int, int]]:
    """Per avatar: fans' messages since ``since`` and how many distinct fans sent them."""
    query = select(ChatMessage.avatar_id, func.count(), func.count(ChatMessage.fan.distinct())) \
        .where(ChatMessage.role == Role.user, ChatMessage.created_at >= since).group_by(ChatMessage.avatar_id)
    if avatar_ids is not None:
        query = query.where(ChatMessage.avatar_id.in_(avatar_ids))
    return {avatar_id: (messages, chatters) for avatar_id, messages, chatters in await session.execute(query)}


def _window_start(days: int) -> datetime:
    """Midnight UTC, ``days - 1`` days ago: the start of a window of ``days`` UTC days ending today."""
    return datetime.combine(utc_now().date() - timedelta(days=days - 1), datetime.min.time(), UTC)


def _totals_by_day(rows: Iterable[Row[tuple[str, datetime, int]]]) -> dict[str, dict[str, int]]:
    """(avatar, moment, amount) rows summed per avatar and UTC day (``YYYY-MM-DD``), days in order."""
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for avatar_id, moment, amount in rows:
        day: date = _aware(moment).astimezone(UTC).date()
        totals[avatar_id][day.isoformat()] += amount
    return {avatar_id: dict(sorted(days_.items())) for avatar_id, days_ in totals.items()}


async def messages_by_day(session: AsyncSession, avatar_ids: Sequence[str], *,
                          days: int = 30) -> dict[str, dict[str, int]]:
    """Per avatar: fans' messages per UTC day (``YYYY-MM-DD``) over the last ``days`` days (empty days left out)."""
    if not avatar_ids:
        return {}
    rows = await session.execute(select(ChatMessage.avatar_id, ChatMessage.created_at, literal(1)).where(
        ChatMessage.role == Role.user, ChatMessage.avatar_id.in_(avatar_ids),
        ChatMessage.created_at >= _window_start(days)))
    return _totals_by_day(rows)


async def inference_spend_by_day(session: AsyncSession, avatar_ids: Sequence[str], *,
                                 days: int = 30) -> dict[str, dict[str, str]]:
    """Per avatar: wei paid to inference nodes for its replies per UTC day over the last ``days`` days (days without
    a paid reply left out). A reply that failed verification counts: the node was paid for it."""
    if not avatar_ids:
        return {}
    rows = await session.execute(select(ChatMessage.avatar_id, ChatMessage.created_at, ChatMessage.cost_wei).where(
        ChatMessage.role == Role.assistant, ChatMessage.avatar_id.in_(avatar_ids),
        ChatMessage.created_at >= _window_start(days)))
    return {avatar_id: {day: str(wei) for day, wei in spend.items() if wei}
            for avatar_id, spend in _totals_by_day(rows).items() if any(spend.values())}
