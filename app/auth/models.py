"""Sign-in nonces: single-use and short-lived, consumed atomically by an UPDATE."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.db.models import utc_now


class SignInNonce(SQLModel, table=True):
    __tablename__ = "sign_in_nonce"

    nonce: str = Field(primary_key=True, max_length=64)
    created_at: datetime = Field(default_factory=utc_now)
    expires_at: datetime = Field(index=True)
    used_at: datetime | None = None
