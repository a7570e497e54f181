"""Chat figures for the rankings and the creator dashboard: messages, chatters and inference spend."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import literal, select
from sqlalchemy.engine import Result
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.chat.models import ChatMessage, Role
from app.db.models import utc_now
from app.lib.time import aware


def _window_start(days: int) -> datetime:
    """Midnight UTC, ``days - 1`` days ago: the start of a window of ``days`` UTC days ending today."""
    return datetime.combine(utc_now().date() - timedelta(days=days - 1), datetime.min.time(), UTC)


def _totals_by_day(rows: Result[str, datetime, int]) -> dict[str, dict[str, int]]:
    """(avatar, moment, amount) rows summed per avatar and UTC day (``YYYY-MM-DD``), days in order."""
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for avatar_id, moment, amount in rows:
        day: date = aware(moment).astimezone(UTC).date()
        totals[avatar_id][day.isoformat()] += amount
    return {avatar_id: dict(sorted(days_.items())) for avatar_id, days_ in totals.items()}


async def messages_by_day(
    session: AsyncSession, avatar_ids: Sequence[str], *, days: int = 30
) -> dict[str, dict[str, int]]:
    """Per avatar: fans' messages per UTC day (``YYYY-MM-DD``) over the last ``days`` days (empty days left out)."""
    if not avatar_ids:
        return {}
    rows = await session.execute(
        select(col(ChatMessage.avatar_id), col(ChatMessage.created_at), literal(1)).where(
            col(ChatMessage.role) == Role.user,
            col(ChatMessage.avatar_id).in_(avatar_ids),
            col(ChatMessage.created_at) >= _window_start(days),
        )
    )
    return _totals_by_day(rows)


async def inference_spend_by_day(
    session: AsyncSession, avatar_ids: Sequence[str], *, days: int = 30
) -> dict[str, dict[str, str]]:
    """Per avatar: wei paid to inference nodes for its replies per UTC day over the last ``days`` days (days without
    a paid reply left out). A reply that failed verification counts: the node was paid for it."""
    if not avatar_ids:
        return {}
    rows = await session.execute(
        select(col(ChatMessage.avatar_id), col(ChatMessage.created_at), col(ChatMessage.cost_wei)).where(
            col(ChatMessage.role) == Role.assistant,
            col(ChatMessage.avatar_id).in_(avatar_ids),
            col(ChatMessage.created_at) >= _window_start(days),
        )
    )
    return {
        avatar_id: {day: str(wei) for day, wei in spend.items() if wei}
        for avatar_id, spend in _totals_by_day(rows).items()
        if any(spend.values())
    }
