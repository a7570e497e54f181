"""Ratings in the rankings: ``sort=rating`` as a keyset query of its own, and the rating on every row."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat import service as chat
from app.market import service as market
from app.market.schemas import Page, RankedAvatar
from app.reviews import service
from app.reviews.service import Prior


async def by_rating(session: AsyncSession, prior: Prior, *, divisor: int, q: str | None, cursor: str | None,
                    limit: int) -> Page[RankedAvatar]:
    """Best rated first; market and chat figures are read for the page's avatars only."""
    rows, next_cursor = await service.by_rating(session, prior, q=q, cursor=cursor, limit=limit)
    ids = [avatar.id for avatar, _ in rows]
    since = datetime.now(UTC) - market.DAY
    volumes = await market.volumes_since(session, since, ids)
    chats = await chat.chat_activity_since(session, since, ids) if ids else {}
    page = Page(items=[market.ranked_avatar(avatar, market.market_stats(
        market_row, divisor, volumes.get(avatar.id, 0), chats.get(avatar.id, (0, 0)))) for avatar, market_row in rows],
        next_cursor=next_cursor)
    return await with_ratings(session, page, prior)


async def with_ratings(session: AsyncSession, page: Page[RankedAvatar], prior: Prior) -> Page[RankedAvatar]:
    ratings = await service.ratings_of(session, [item.id for item in page.items], prior)
    return Page(items=[msgspec.structs.replace(item, rating=ratings[item.id]) for item in page.items],
                next_cursor=page.next_cursor)
