"""Reviews in the read models: ``sort=rating`` as a keyset query of its own, the rating on every ranked row,
and what the avatar page shows of its reviews and chats."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from app.avatars.models import Avatar
from app.catalog.schemas import RankedAvatar
from app.chat import analytics as chat
from app.db.models import utc_now
from app.lib.pagination import Page
from app.market import service as market
from app.network.usage import Window, avatar_usage
from app.reviews import service as reviews
from app.reviews.service import Prior, Signing

PAGE_REVIEWS = 20
NO_CHATS = (0, 0)


async def by_rating(
    session: AsyncSession, prior: Prior, *, divisor: int, q: str | None, cursor: str | None, limit: int
) -> tuple[list[tuple[Avatar, market.MarketFigures, tuple[int, int]]], str | None]:
    """Best rated first: each listed avatar with its market figures and 24 h chats, read for the page only."""
    rows, next_cursor = await reviews.by_rating(session, prior, q=q, cursor=cursor, limit=limit)
    ids = [avatar.id for avatar, _ in rows]
    since = datetime.now(UTC) - market.DAY
    volumes = await market.volumes_since(session, since, ids)
    chats = await chat.chat_activity_since(session, since, ids) if ids else {}
    return [
        (avatar, market.market_figures(market_row, divisor, volumes.get(avatar.id, 0)), chats.get(avatar.id, NO_CHATS))
        for avatar, market_row in rows
    ], next_cursor


async def with_ratings(session: AsyncSession, page: Page[RankedAvatar], prior: Prior) -> Page[RankedAvatar]:
    ratings = await reviews.ratings_of(session, [item.id for item in page.items], prior)
    return Page(
        items=[msgspec.structs.replace(item, rating=ratings[item.id]) for item in page.items],
        next_cursor=page.next_cursor,
    )


async def avatar_page_extras(session: AsyncSession, signing: Signing, prior: Prior, avatar_id: str) -> dict[str, Any]:
    """The template context of ``avatar_reviews.html``: the rating with the newest reviews, and 30 days of chats."""
    page = await reviews.reviews_page(
        session, avatar_id=avatar_id, signing=signing, prior=prior, cursor=None, limit=PAGE_REVIEWS
    )
    return {"reviews": page, "usage": await avatar_usage(session, avatar_id, Window.d30, utc_now().date())}
