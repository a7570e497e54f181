"""A fan's thread with an avatar: their messages, the avatar's replies, and each reply's attestation.

A fan's message and an empty reply are stored before the message is sent for inference (both
``pending``); the pair ends together, ``answered``/``complete`` (the reply verified, with usage, cost
and attestation), ``incomplete`` (cut by a disconnect or a node failing mid-reply: the partial text,
unverified) or ``failed`` with an ``error_code`` (no node, request refused, or an attestation that did not
verify: then the text is dropped but the cost the node was paid is kept). A message that got no stream
slot is withdrawn: both rows are deleted, so that sending it again is a new try.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db.models import utc_now
from app.db.types import Wei


class Role(StrEnum):
    user = "user"
    assistant = "assistant"


class MessageStatus(StrEnum):
    pending = "pending"  # a fan's message whose reply is under way
    answered = "answered"  # a fan's message with a complete reply
    complete = "complete"  # a verified reply
    incomplete = "incomplete"  # cut short: by a disconnect or a node failing mid-reply
    failed = "failed"  # no reply kept: unavailable, request refused, or its attestation failed (error_code says)


class ChatMessage(SQLModel, table=True):
    __tablename__ = "chat_message"
    __table_args__ = (
        # A resend of the same client_msg_id finds the first (NULLs, i.e. replies, never collide).
        UniqueConstraint("avatar_id", "fan", "client_msg_id"),
        Index("ix_chat_message_avatar_id_fan_id", "avatar_id", "fan", "id"),
        Index("ix_chat_message_avatar_id_created_at", "avatar_id", "created_at"),
        Index("ix_chat_message_created_at", "created_at"),  # activity of every avatar in the last 24 h
    )

    id: int | None = Field(default=None, primary_key=True)
    avatar_id: str = Field(max_length=34)
    fan: str = Field(max_length=42)
    role: str = Field(max_length=16)
    client_msg_id: str | None = Field(default=None, max_length=64)
    # A reply's message; None on a fan's message.
    reply_to: int | None = Field(default=None, sa_column_args=[ForeignKey("chat_message.id", ondelete="CASCADE")])
    content: str = Field(sa_type=Text)
    status: str = Field(max_length=16)
    error_code: str | None = Field(default=None, max_length=32)
    model: str | None = Field(default=None, max_length=128)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_wei: int = Field(default=0, sa_type=Wei)
    payment_tx: str | None = Field(default=None, max_length=66)
    created_at: datetime = Field(default_factory=utc_now)
    completed_at: datetime | None = None


class ReplyAttestation(SQLModel, table=True):
    """Everything a third party needs to check one reply against the node's published key."""

    __tablename__ = "chat_reply_attestation"

    message_id: int = Field(
        primary_key=True,
        sa_column_args=[ForeignKey("chat_message.id", ondelete="CASCADE")],
        sa_column_kwargs={"autoincrement": False},
    )
    request_body: str = Field(sa_type=Text)  # the chat-completions body as sent, JSON
    verification_level: str = Field(max_length=16)
    request_hash: str = Field(max_length=64)
    output_hash: str = Field(max_length=64)
    signature: str = Field(sa_type=Text)
    timestamp: int = Field(sa_type=BigInteger)
    tee_id: str = Field(max_length=66)
    node_endpoint: str = Field(max_length=600)
    node_public_key_der: str = Field(sa_type=Text)  # base64 of the DER SubjectPublicKeyInfo
