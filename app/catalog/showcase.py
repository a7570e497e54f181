"""What the marketplace shows beside the rankings: each card's 24 h change, what is trending (recent
buys and chats), and the latest activity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.movement import ActivityEvent, Movement, movements_since, recent_activity
from app.catalog.schemas import RankedAvatar
from app.lib.pagination import Page
from app.market import service as market

TRENDING = 3
ACTIVITY_SHOWN = 12


@dataclass(frozen=True)
class Card:
    avatar: RankedAvatar
    change_bps: int | None  # the next key's price change over 24 h; None when it did not trade
    trend_score: int  # buys plus chats in the last 24 h


@dataclass(frozen=True)
class Showcase:
    cards: list[Card]
    trending: list[Card]
    activity: list[ActivityEvent]


async def showcase(session: AsyncSession, rankings: Page[RankedAvatar], divisor: int) -> Showcase:
    since = datetime.now(UTC) - market.DAY
    movements = await movements_since(session, since, divisor, [avatar.id for avatar in rankings.items])
    cards = []
    for avatar in rankings.items:
        movement = movements.get(avatar.id, Movement(0, 0))
        cards.append(
            Card(
                avatar, movement.change_bps(int(avatar.market.next_key_price)), movement.buys + avatar.market.chats_24h
            )
        )
    trending = sorted((card for card in cards if card.trend_score), key=lambda card: -card.trend_score)[:TRENDING]
    activity = await recent_activity(session, limit=ACTIVITY_SHOWN, divisor=divisor)
    return Showcase(cards, trending, activity[:ACTIVITY_SHOWN])
