"""Tables shared across domains.

Each domain defines its own tables in its ``models.py``; ``all_models`` imports every
one of them so that Alembic and the tests see the complete schema (it sits above the
domains, in ``app/``, so that ``db`` depends on none of them).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Field, SQLModel

from app.db import base  # noqa: F401  (installs the naming convention before any table)


def utc_now() -> datetime:
    return datetime.now(UTC)


class AppState(SQLModel, table=True):
    """Small named values the service keeps between runs (cursors, schema facts)."""

    __tablename__ = "app_state"

    key: str = Field(primary_key=True, max_length=128)
    value: str = Field(max_length=4096)
    updated_at: datetime = Field(default_factory=utc_now)
