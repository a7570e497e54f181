"""A fan's thread over HTTP, and a reply's verification material for a third party."""

from __future__ import annotations

import base64
import json

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.avatars import service as avatars
from app.chat.frames import usage_of
from app.chat.models import ChatMessage, ReplyAttestation
from app.chat.schemas import ChatMessageOut, ReplyAttestationOut
from app.errors import NotFound
from app.lib import pagination
from app.lib.pagination import Page
from app.lib.time import aware
from app.proxy.protocol import SIGNATURE_SCHEME
from app.proxy.verify import canonical_request, load_public_key, public_key_pem


async def thread_page(
    session: AsyncSession, *, avatar_id: str, fan: str, cursor: str | None, limit: int
) -> Page[ChatMessageOut]:
    """The fan's own thread with the avatar, newest first; the cursor is the last message's id."""
    query = (
        select(ChatMessage)
        .where(col(ChatMessage.avatar_id) == avatar_id, col(ChatMessage.fan) == fan)
        .order_by(col(ChatMessage.id).desc())
        .limit(limit + 1)
    )
    after = pagination.decode_cursor(cursor, pagination.cursor_id)
    if after is not None:
        query = query.where(col(ChatMessage.id) < after[0])
    messages = (await session.scalars(query)).all()
    page = messages[:limit]
    attested = set(
        await session.scalars(
            select(col(ReplyAttestation.message_id)).where(
                col(ReplyAttestation.message_id).in_([message.id for message in page])
            )
        )
    )
    next_cursor = pagination.encode_cursor(page[-1].id) if len(messages) > limit else None
    return Page(items=[_message_out(message, message.id in attested) for message in page], next_cursor=next_cursor)


def _message_out(message: ChatMessage, attested: bool) -> ChatMessageOut:
    assert message.id is not None
    return ChatMessageOut(
        id=message.id,
        role=message.role,
        content=message.content,
        status=message.status,
        created_at=aware(message.created_at),
        client_msg_id=message.client_msg_id,
        reply_to=message.reply_to,
        error_code=message.error_code,
        model=message.model,
        usage=usage_of(message),
        cost_wei=str(message.cost_wei),
        attested=attested,
        completed_at=aware(message.completed_at) if message.completed_at else None,
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
        message_id=message_id,
        avatar_id=reply.avatar_id,
        verification_level=attestation.verification_level,
        request_body=body,
        canonical_request=canonical_request(body),
        output=reply.content,
        request_hash=attestation.request_hash,
        output_hash=attestation.output_hash,
        signature=attestation.signature,
        timestamp=attestation.timestamp,
        tee_id=attestation.tee_id,
        node_endpoint=attestation.node_endpoint,
        node_public_key_pem=public_key_pem(load_public_key(der)),
        node_public_key_der_base64=attestation.node_public_key_der,
        signature_scheme=SIGNATURE_SCHEME,
    )
