"""Reviews, signed by their authors, and each avatar's rating totals kept beside them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db.models import utc_now


class Review(SQLModel, table=True):
    """One wallet's review of one avatar: a re-submission replaces it (one row per wallet and avatar).

    ``signed_at``, ``rating`` and ``text`` are what the author signed (EIP-712, see ``app.reviews.signing``);
    ``signature`` is kept so anyone can check authorship. Hidden reviews stay, marked with their reason."""

    __tablename__ = "review"
    __table_args__ = (
        UniqueConstraint("avatar_id", "reviewer"),
        Index("ix_review_avatar_id_updated_at", "avatar_id", "updated_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    avatar_id: str = Field(max_length=34)
    reviewer: str = Field(max_length=42, index=True)
    rating: int
    text: str = Field(sa_type=Text)
    signed_at: int = Field(sa_type=BigInteger)  # the signed message's `time`, Unix seconds
    signature: str = Field(max_length=132)
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)
    answer: str | None = Field(default=None, sa_type=Text)  # the creator's one answer
    answered_at: datetime | None = None
    hidden_reason: str | None = Field(default=None, max_length=500)  # set by the protocol owner
    hidden_at: datetime | None = None


class AvatarRating(SQLModel, table=True):
    """An avatar's visible ratings, counted per star: changed with every review written, edited, deleted
    or hidden, so that a rating (and ``sort=rating``) never counts the reviews themselves."""

    __tablename__ = "avatar_rating"

    avatar_id: str = Field(primary_key=True, max_length=34)
    count: int = 0
    total: int = 0  # the sum of the stars
    stars_1: int = 0
    stars_2: int = 0
    stars_3: int = 0
    stars_4: int = 0
    stars_5: int = 0
