"""How each market moved lately: the key price a day ago (for the 24 h change), recent buys (for
trending) and the latest trades, launches and milestones (for the activity feed)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.avatars.models import Avatar
from app.market import curve
from app.market.models import Trade

BASIS_POINTS = 10_000
HOLDER_MILESTONES = (5, 10, 25, 50, 100, 250, 500, 1_000, 10_000, 100_000)
# 0.0001 ETH to a million ETH: on the default curve (divisor 1,600,000) 9 keys pass the first, 18 the next.
MARKET_CAP_MILESTONES = tuple(10**exponent for exponent in range(14, 25))


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
    """A trade, a launch or a milestone a trade reached, as the activity feed shows it. ``key`` orders events
    and tells new ones: a trade's milestones come right after it."""

    trade_id: int
    kind: str  # "buy", "sell", "launch" or "milestone"
    at: datetime
    avatar_id: str
    handle: str
    name: str
    actor: str
    amount: int
    eth_amount: int
    supply_after: int
    milestone: str | None = None  # "first_outside_buyer", "holders" or "market_cap"
    threshold: int | None = None  # the holders count or the market cap (wei) reached

    @property
    def key(self) -> str:
        milestone = "".join(f"-{part}" for part in (self.milestone, self.threshold) if part is not None)
        return f"{self.trade_id:012d}{milestone}"

    @property
    def summary(self) -> str:
        """What a milestone means, in words (the feed shows trades with their own figures)."""
        match self.milestone:
            case "first_outside_buyer":
                return "has its first holder besides its creator"
            case "holders":
                return f"reached {self.threshold:,} holders"
            case "market_cap":
                ether = Decimal(self.threshold or 0) / 10**18
                return f"market cap passed {ether:,f} ETH"
        return ""


def _trade_kind(trade: Trade) -> str:
    if trade.is_buy and trade.supply_after == trade.amount:  # an avatar's first trade is its launch
        return "launch"
    return "buy" if trade.is_buy else "sell"


def _crossed(before: int, after: int, thresholds: Sequence[int]) -> list[int]:
    return [threshold for threshold in thresholds if before < threshold <= after]


def _milestones(trade: Trade, divisor: int, first_outside_buy: bool) -> list[tuple[str, int | None]]:
    """The milestones ``trade`` crossed, in the order they read best (whether they were reached before is
    :func:`_first_time`'s to say)."""
    if not trade.is_buy:
        return []
    reached: list[tuple[str, int | None]] = [("first_outside_buyer", None)] if first_outside_buy else []
    new_holder = trade.balance_after == trade.amount  # held none before
    if new_holder and trade.holders_after is not None:
        reached += [
            ("holders", count) for count in _crossed(trade.holders_after - 1, trade.holders_after, HOLDER_MILESTONES)
        ]
    supply_before = trade.supply_after - trade.amount
    market_caps = (curve.market_cap(supply_before, divisor), curve.market_cap(trade.supply_after, divisor))
    reached += [("market_cap", cap) for cap in _crossed(*market_caps, MARKET_CAP_MILESTONES)]
    return reached


def _supply_for_market_cap(market_cap: int, divisor: int) -> int:
    """The least supply whose market cap reaches ``market_cap`` (the curve only rises)."""
    low, high = 0, curve.MAX_SUPPLY
    while low < high:
        middle = (low + high) // 2
        if curve.market_cap(middle, divisor) >= market_cap:
            high = middle
        else:
            low = middle + 1
    return low


async def _first_time(session: AsyncSession, trade: Trade, milestone: str, threshold: int | None, divisor: int) -> bool:
    """Whether no earlier trade of the avatar reached the milestone: an avatar whose holders or supply go
    back and forth across a round figure has it announced once. Milestones are rare: one query each."""
    if milestone == "holders":
        reached_then = col(Trade.holders_after) >= (threshold or 0)
    elif milestone == "market_cap":
        reached_then = col(Trade.supply_after) >= _supply_for_market_cap(threshold or 0, divisor)
    else:  # the first outside buy is first by construction
        return True
    earlier = select(col(Trade.id)).where(
        col(Trade.avatar_id) == trade.avatar_id, col(Trade.id) < (trade.id or 0), reached_then
    )
    return await session.scalar(earlier.limit(1)) is None


async def _first_outside_buys(session: AsyncSession, avatar_ids: Sequence[str]) -> set[int]:
    """The id of each avatar's first buy by someone other than its creator."""
    if not avatar_ids:
        return set()
    firsts = await session.scalars(
        select(func.min(col(Trade.id)))
        .join(Avatar, col(Avatar.id) == col(Trade.avatar_id))
        .where(col(Trade.avatar_id).in_(avatar_ids), col(Trade.is_buy), col(Trade.trader) != col(Avatar.creator))
        .group_by(col(Trade.avatar_id))
    )
    return {first for first in firsts if first is not None}


async def latest_trade_id(session: AsyncSession) -> int:
    """The newest trade's id (0 with none): where a feed that starts now begins."""
    return await session.scalar(select(func.max(col(Trade.id)))) or 0


async def recent_activity(
    session: AsyncSession, *, limit: int, divisor: int, after_trade_id: int = 0
) -> list[ActivityEvent]:
    """The latest ``limit`` trades (after ``after_trade_id``) with the milestones they reached, newest first."""
    rows = (
        await session.execute(
            select(Trade, Avatar)
            .join(Avatar, col(Avatar.id) == col(Trade.avatar_id))
            .where(col(Trade.id) > after_trade_id)
            .order_by(col(Trade.id).desc())
            .limit(limit)
        )
    ).all()
    first_outside_buys = await _first_outside_buys(
        session, sorted({trade.avatar_id for trade, avatar in rows if trade.is_buy and trade.trader != avatar.creator})
    )
    events: list[ActivityEvent] = []
    for trade, avatar in rows:
        event = ActivityEvent(
            trade_id=trade.id or 0,
            at=trade.timestamp,
            avatar_id=avatar.id,
            handle=avatar.handle,
            name=avatar.name,
            actor=trade.trader,
            amount=trade.amount,
            eth_amount=trade.eth_amount,
            supply_after=trade.supply_after,
            kind=_trade_kind(trade),
        )
        reached = [
            (milestone, threshold)
            for milestone, threshold in _milestones(trade, divisor, trade.id in first_outside_buys)
            if await _first_time(session, trade, milestone, threshold, divisor)
        ]
        events += [
            dataclasses.replace(event, kind="milestone", milestone=milestone, threshold=threshold)
            for milestone, threshold in reversed(reached)  # newest first: after the trade, the last one first
        ]
        events.append(event)
    return events
