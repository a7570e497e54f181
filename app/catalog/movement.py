"""How each market moved lately: the key price a day ago (for the 24 h change), recent buys (for
trending) and the latest trades and launches (for the activity feed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.avatars.models import Avatar
from app.market import curve
from app.market.models import Trade

BASIS_POINTS = 10_000


@dataclass(frozen=True)
class Movement:
    """One avatar's last day: the next key's price then, and how many buys since."""

    price_then: int
    buys: int

    def change_bps(self, price_now: int) -> int | None:
        """The next key's price change since then, in basis points (None with no price then)."""
        if self.price_then <= 0:
            return None
        return (price_now - self.price_then) * BASIS_POINTS // self.price_then


async def movements_since(
    session: AsyncSession, since: datetime, divisor: int, avatar_ids: Sequence[str]
) -> dict[str, Movement]:
    """Per avatar traded since ``since``: the supply just before its first trade since then gives the
    price then (a launch since then counts from its first key)."""
    if not avatar_ids:
        return {}
    first_ids = (
        select(func.min(col(Trade.id)))
        .where(col(Trade.timestamp) >= since, col(Trade.avatar_id).in_(avatar_ids))
        .group_by(col(Trade.avatar_id))
    )
    firsts = await session.scalars(select(Trade).where(col(Trade.id).in_(first_ids)))
    buy_counts = (
        select(col(Trade.avatar_id), func.count())
        .where(col(Trade.timestamp) >= since, col(Trade.is_buy), col(Trade.avatar_id).in_(avatar_ids))
        .group_by(col(Trade.avatar_id))
    )
    buys: dict[str, int] = {avatar_id: count for avatar_id, count in (await session.execute(buy_counts)).all()}
    movements = {}
    for trade in firsts:
        supply_before = trade.supply_after - trade.amount if trade.is_buy else trade.supply_after + trade.amount
        movements[trade.avatar_id] = Movement(
            curve.price(max(supply_before, 1), 1, divisor), buys.get(trade.avatar_id, 0)
        )
    return movements


@dataclass(frozen=True)
class ActivityEvent:
    """A trade or a launch, as the activity feed shows it. ``key`` orders events and tells new ones."""

    key: str
    kind: str  # "buy", "sell" or "launch"
    at: datetime
    avatar_id: str
    handle: str
    name: str
    actor: str
    amount: int
    eth_amount: int
    supply_after: int


async def recent_activity(session: AsyncSession, *, limit: int, after_trade_id: int = 0) -> list[ActivityEvent]:
    """The latest trades (after ``after_trade_id``), newest first; an avatar's first trade is its launch."""
    rows = (
        await session.execute(
            select(Trade, Avatar)
            .join(Avatar, col(Avatar.id) == col(Trade.avatar_id))
            .where(col(Trade.id) > after_trade_id)
            .order_by(col(Trade.id).desc())
            .limit(limit)
        )
    ).all()
    return [
        ActivityEvent(
            key=f"{trade.id:012d}",
            at=trade.timestamp,
            avatar_id=avatar.id,
            handle=avatar.handle,
            name=avatar.name,
            actor=trade.trader,
            amount=trade.amount,
            eth_amount=trade.eth_amount,
            supply_after=trade.supply_after,
            kind="launch" if trade.is_buy and trade.supply_after == trade.amount else "buy" if trade.is_buy else "sell",
        )
        for trade, avatar in rows
    ]
