"""The rankings' recent figures per avatar — chats, distinct chatters and traded volume over the last 24 hours —
read from the hourly rollups instead of counted from messages and trades.

"The last 24 hours" is hour-granular: the current UTC hour so far and the 23 whole hours before it (so 23 to 24 h
of time), or one hour more in the moments between an hour's start and the move of ``RecentHours`` by the
background upkeep (``app.network.upkeep``: requests never move it). A chat counts in the hour its turn ended, a
trade in its block's; a fan counts once among an avatar's chatters if their latest turn with it ended in those
hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, exists, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.network.models import AvatarRecent

# The rankings' keys: an avatar's recent totals, ranked through their indexes among the avatars that have some
# (:func:`having`), before those without (:func:`lacking`), whose key is zero.
CHATS = col(AvatarRecent.chats)
VOLUME = col(AvatarRecent.volume)


@dataclass(frozen=True)
class Recent:
    chats: int = 0
    chatters: int = 0
    volume: int = 0  # wei


def having(key: Any, avatar_id: Any) -> tuple[tuple[type[AvatarRecent], ColumnElement[bool]], ColumnElement[bool]]:
    """The join of the recent totals to a listing whose avatar ids are ``avatar_id``, and the condition that keeps
    the avatars whose ``key`` is above zero."""
    return (AvatarRecent, col(AvatarRecent.avatar_id) == avatar_id), key > literal(0, key.type)


def lacking(key: Any, avatar_id: Any) -> ColumnElement[bool]:
    """The avatars of a listing (ids ``avatar_id``) whose ``key`` is zero: no recent row with it above zero."""
    return ~exists().where(col(AvatarRecent.avatar_id) == avatar_id, key > literal(0, key.type))


async def recent_of(session: AsyncSession, avatar_ids: list[str]) -> dict[str, Recent]:
    """Each of ``avatar_ids``'s recent figures (zeros for one without any, and for all before the upkeep first sums
    the recent hours: a database that was down as the process started)."""
    if not avatar_ids:
        return {}
    kept = {
        avatar_id: Recent(chats, chatters, volume)
        for avatar_id, chats, chatters, volume in await session.execute(
            select(
                col(AvatarRecent.avatar_id),
                col(AvatarRecent.chats),
                col(AvatarRecent.chatters),
                col(AvatarRecent.volume),
            ).where(col(AvatarRecent.avatar_id).in_(avatar_ids))
        )
    }
    return {avatar_id: kept.get(avatar_id, Recent()) for avatar_id in avatar_ids}
