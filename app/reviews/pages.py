"""What the avatar page shows of reviews and of its chats."""

from __future__ import annotations

from typing import Any

from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import utc_now
from app.network.usage import Window, avatar_usage
from app.reviews import service
from app.reviews.controllers import signing

PAGE_REVIEWS = 20


async def avatar_page_extras(session: AsyncSession, state: State, avatar_id: str) -> dict[str, Any]:
    """The template context of ``avatar_reviews.html``: the rating with the newest reviews, and 30 days of chats."""
    reviews = await service.reviews_page(session, avatar_id=avatar_id, signing=signing(state),
                                         prior=service.Prior.of(state.settings), cursor=None, limit=PAGE_REVIEWS)
    return {"reviews": reviews, "usage": await avatar_usage(session, avatar_id, Window.d30, utc_now().date())}
