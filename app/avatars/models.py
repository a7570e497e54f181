"""The off-chain half of an avatar: profile and persona. The chain holds its keys."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.db.models import utc_now
from app.proxy.protocol import VerificationLevel


class Avatar(SQLModel, table=True):
    __tablename__ = "avatar"

    id: str = Field(primary_key=True, max_length=34)  # bytes16 as 0x + 32 hex digits
    handle: str = Field(unique=True, max_length=32)
    name: str = Field(max_length=64)
    bio: str = Field(default="", max_length=1000)
    persona: str = Field(max_length=8000)
    model: str = Field(max_length=128)
    verification_level: str = Field(default=VerificationLevel.signature.value, max_length=16)
    image_url: str = Field(default="", max_length=500)
    creator: str = Field(index=True, max_length=42)
    metadata_uri: str = Field(max_length=600)
    # Set by the indexer once the creator's on-chain creation of this id is seen.
    listed_at: datetime | None = Field(default=None, index=True)
    created_at: datetime = Field(default_factory=utc_now, index=True)
    updated_at: datetime = Field(default_factory=utc_now)
