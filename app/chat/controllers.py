"""The chat websocket and the chat history routes; a message's turn is :mod:`app.chat.turn`, the history
:mod:`app.chat.history`."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any, cast

import msgspec
import structlog
from litestar import Controller, WebSocket, get, websocket
from litestar.di import NamedDependency, Provide
from litestar.exceptions import WebSocketDisconnect
from litestar.params import FromPath, Parameter
from litestar.status_codes import WS_1008_POLICY_VIOLATION, WS_1013_TRY_AGAIN_LATER
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.deps import provide_current_address
from app.auth.origins import origin_allowed
from app.auth.service import signed_in_address
from app.auth.sessions import SESSION_COOKIE
from app.autoscale.service import AutoscaleService
from app.avatars.service import get_avatar
from app.chain.client import Chain, chain_watch
from app.chat import frames, history
from app.chat.gate import ChatGate
from app.chat.journal import ReplyJournal
from app.chat.schemas import ChatMessageOut, ErrorFrame, ReplyAttestationOut, ServerFrame
from app.chat.sockets import SocketQuota, TooManySockets
from app.chat.turn import ChatService
from app.config import Settings
from app.errors import DATABASE_UNAVAILABLE, error_responses
from app.lib.pagination import MAX_ROW_ID, Page, check_limit
from app.lib.websocket import LockedSender, SocketClosed
from app.memory.service import MemoryService
from app.proxy.client.client import ProxyClient
from app.validation import AvatarIdParam, BadInput, parse_avatar_id

log = structlog.get_logger()

Cursor = Annotated[str | None, Parameter(description="next_cursor of the previous page", max_length=512)]
Limit = Annotated[int, Parameter(description="items per page, 1–100", schema_extra={"minimum": 1, "maximum": 100})]
# A row id (app.lib.pagination.MAX_ROW_ID): a larger number would overflow the driver rather than find nothing.
MessageId = Annotated[int, Parameter(description="the reply's message_id", ge=1, le=MAX_ROW_ID)]


def _client_address(socket: WebSocket[Any, Any, Any]) -> str:
    return socket.client.host if socket.client else "unknown"


class _Socket:
    """The chat's frames out (the reply task and the receive loop both send)."""

    def __init__(self, socket: WebSocket[Any, Any, Any]) -> None:
        self._sender = LockedSender(socket)

    async def send(self, frame: ServerFrame) -> None:
        try:
            await self._sender.send_text(msgspec.json.encode(frame).decode())
        except SocketClosed as closed:
            raise frames.ClientGone(str(closed)) from None


class ChatController(Controller):
    tags = ["chat"]

    @websocket("/ws/avatars/{avatar_id:str}/chat")
    async def chat(
        self,
        socket: WebSocket[Any, Any, Any],
        chat_sockets: NamedDependency[SocketQuota],
        settings: NamedDependency[Settings],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
        proxy_client: NamedDependency[ProxyClient],
        chat_gate: NamedDependency[ChatGate],
        autoscale: NamedDependency[AutoscaleService],
        reply_journal: NamedDependency[ReplyJournal],
        chain: NamedDependency[Chain],
        memory: NamedDependency[MemoryService],
        avatar_id: FromPath[str],
    ) -> None:
        """Chat with an avatar (signed in, holding a key): frames as in the README's "Chat" section."""
        # Counted before the handshake completes, so a client never sees a socket open that is not counted yet.
        try:
            with chat_sockets.holding(socket.cookies.get(SESSION_COOKIE), _client_address(socket)):
                chat = ChatService(
                    sessions,
                    proxy_client,
                    settings,
                    chat_gate,
                    meter=autoscale.meter,
                    memory=memory,
                    journal=reply_journal,
                    chain_watch=chain_watch(chain),
                )
                await self._open(socket, settings, chat, avatar_id)
        except TooManySockets as refused:  # raised on entry only: nothing was served
            await socket.accept()
            await socket.close(WS_1013_TRY_AGAIN_LATER, refused.detail)

    async def _open(
        self, socket: WebSocket[Any, Any, Any], settings: Settings, chat: ChatService, avatar_id: str
    ) -> None:
        await socket.accept()
        fan = signed_in_address(socket.session)
        # Browsers send cookies with cross-site websocket handshakes: only our own or listed origins.
        if not origin_allowed(socket.headers, settings):
            await socket.close(WS_1008_POLICY_VIOLATION, "origin not allowed")
            return
        if fan is None:
            await socket.close(WS_1008_POLICY_VIOLATION, "sign in with Ethereum first")
            return
        try:
            avatar_id = parse_avatar_id(avatar_id)
            await chat.avatar_for_chat(avatar_id, fan)
        except (BadInput, frames.ChatRefused) as refused:
            await socket.close(WS_1008_POLICY_VIOLATION, refused.detail[:120])  # a close reason is ≤ 123 bytes
            return
        except DATABASE_UNAVAILABLE as error:
            log.warning("chat_open_unavailable", avatar_id=avatar_id, error=str(error).splitlines()[0])
            await socket.close(WS_1013_TRY_AGAIN_LATER, "the database is busy; retry shortly")
            return
        await self._serve(socket, settings, chat, avatar_id, fan)

    async def _serve(
        self, socket: WebSocket[Any, Any, Any], settings: Settings, chat: ChatService, avatar_id: str, fan: str
    ) -> None:
        """Receive while a reply streams, so a disconnect stops the reply (and its upstream request) at once."""
        out = _Socket(socket)
        replying: asyncio.Task[None] | None = None
        try:
            while True:
                event = await socket.receive()
                if event["type"] == "websocket.disconnect":
                    break
                try:
                    text, data = event.get("text"), event.get("bytes")
                    incoming = frames.parse_frame(
                        cast(str | None, text) if text is not None else cast(bytes | None, data),
                        max_frame_bytes=settings.chat_max_frame_bytes,
                        max_message_chars=settings.chat_max_message_chars,
                    )
                    if replying is not None and not replying.done():
                        await out.send(
                            ErrorFrame(
                                code="busy",
                                detail="one reply at a time: wait for its done or error frame",
                                client_msg_id=incoming.client_msg_id,
                            )
                        )
                        continue
                except frames.FrameError as error:
                    await out.send(error.frame())
                    continue
                replying = asyncio.create_task(
                    chat.handle(avatar_id, fan, incoming, out.send), name=f"chat-reply-{avatar_id}"
                )
        except (WebSocketDisconnect, frames.ClientGone):
            pass
        finally:
            if replying is not None and not replying.done():
                replying.cancel()  # closes the proxy stream; the partial reply is stored as incomplete
            if replying is not None:
                with contextlib.suppress(asyncio.CancelledError, frames.ClientGone):
                    await replying

    @get(
        "/api/avatars/{avatar_id:str}/messages",
        summary="The signed-in fan's thread with an avatar, newest first",
        dependencies={"address": Provide(provide_current_address)},
        responses=error_responses(400, 401, 404, 503),
    )
    async def thread(
        self,
        db_session: NamedDependency[AsyncSession],
        avatar_id: AvatarIdParam,
        address: NamedDependency[str],
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> Page[ChatMessageOut]:
        avatar = await get_avatar(db_session, parse_avatar_id(avatar_id))
        return await history.thread_page(
            db_session, avatar_id=avatar.id, fan=address, cursor=cursor, limit=check_limit(limit)
        )

    @get(
        "/api/messages/{message_id:int}/attestation",
        summary="What a third party needs to verify a reply (the fan whose thread it is, or the avatar's creator)",
        dependencies={"address": Provide(provide_current_address)},
        responses=error_responses(400, 401, 404, 503),
    )
    async def attestation(
        self, db_session: NamedDependency[AsyncSession], message_id: MessageId, address: NamedDependency[str]
    ) -> ReplyAttestationOut:
        return await history.reply_attestation(db_session, message_id=message_id, viewer=address)
