"""Reviews in the read models: the rating on every ranked row,
and what the avatar page shows of its reviews and chats."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.schemas import RankedAvatar
from app.db.models import utc_now
from app.lib.pagination import Page
from app.network.usage import Window, avatar_usage
from app.reviews import service as reviews
from app.reviews.service import Prior, Signing

PAGE_REVIEWS = 20


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
