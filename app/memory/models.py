"""A fan's memories with an avatar, what the fan told it to forget, and extractions still to run.

A memory's ``strength`` is its strength at ``last_used_at``; what it is worth now decays from there
with the half-life (:mod:`app.memory.forgetting`), so nothing is rewritten while time passes.
Full-text search over ``text`` comes from the migration: an FTS5 table ``memory_fts`` (kept by
triggers, with the thread as a column) on SQLite, a stored generated ``tsvector`` column ``document`` on PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db.models import utc_now

MAX_FACT_CHARS = 200
MAX_KEY_CHARS = 64


class MemoryKind(StrEnum):
    name = "name"
    preference = "preference"
    goal = "goal"
    event = "event"
    promise = "promise"
    place = "place"
    fact = "fact"


class Memory(SQLModel, table=True):
    __tablename__ = "memory"
    __table_args__ = (
        # One value per key and thread: a contradicted fact is replaced, never piled up.
        UniqueConstraint("avatar_id", "fan", "key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    avatar_id: str = Field(max_length=34)
    fan: str = Field(max_length=42)
    kind: str = Field(max_length=16)
    key: str = Field(max_length=MAX_KEY_CHARS)  # normalised, e.g. "name", "goal:marathon"
    text: str = Field(max_length=MAX_FACT_CHARS)
    # The fan's message it came from (kept as text too: the thread may be paged away or deleted).
    source_message_id: int | None = Field(
        default=None, sa_column_args=[ForeignKey("chat_message.id", ondelete="SET NULL")]
    )
    source_text: str = Field(default="", sa_type=Text)
    # Since when this value holds: its message's time, or the fan's edit. Older statements never overwrite it.
    valid_from: datetime = Field(default_factory=utc_now)
    created_at: datetime = Field(default_factory=utc_now)
    last_used_at: datetime = Field(default_factory=utc_now)
    use_count: int = 0
    strength: float = 2.0  # a new memory's: app.memory.forgetting.NEW_STRENGTH
    pinned: bool = False
    # The text's vector from ``embedding_model`` (unit length, little-endian float32), when the node's upstream
    # offers embeddings; None until it is made, or after the text changed.
    embedding: bytes | None = Field(default=None, sa_type=LargeBinary)
    embedding_model: str | None = Field(default=None, max_length=128)


class ForgottenKey(SQLModel, table=True):
    """The fan deleted this key (``*``: everything) at ``forgotten_at``: what they said before it never comes back,
    even from an extraction that was under way while they deleted it."""

    __tablename__ = "memory_forgotten"

    avatar_id: str = Field(primary_key=True, max_length=34)
    fan: str = Field(primary_key=True, max_length=42)
    key: str = Field(primary_key=True, max_length=MAX_KEY_CHARS)
    forgotten_at: datetime = Field(default_factory=utc_now)


class Extraction(SQLModel, table=True):
    """A completed turn whose facts are still to be extracted: due once its thread has been quiet a while
    (``next_attempt_at``), extracted with the thread's other queued turns in one call, again later after a failure
    or a timeout, deleted once done. Holds the fan's words, so it needs no chat table."""

    __tablename__ = "memory_extraction"
    __table_args__ = (Index("ix_memory_extraction_next_attempt_at", "next_attempt_at"),)

    reply_id: int = Field(
        primary_key=True,
        sa_column_args=[ForeignKey("chat_message.id", ondelete="CASCADE")],
        sa_column_kwargs={"autoincrement": False},
    )
    source_message_id: int
    avatar_id: str = Field(max_length=34)
    fan: str = Field(max_length=42)
    model: str = Field(max_length=128)
    verification_level: str = Field(max_length=16)
    said: str = Field(sa_type=Text)
    said_at: datetime
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utc_now)
    last_error: str | None = Field(default=None, max_length=300)
