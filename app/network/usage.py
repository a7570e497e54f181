"""The network's usage over a window, read from the rollups (``app.network.models``).

Windows are whole UTC days ending today: ``24h`` is today so far, ``7d`` today and the six days before,
``30d`` thirty days. Distinct chatters over a window are the fans whose last chatting day falls in it
(exact: each day counts the fans whose latest day it is), not a sum of daily counts.

How activity is spread over avatars (``distribution``), among the avatars chatted with in the window:
the share of chats of the top 1, 10 and 100; the Herfindahl–Hirschman index ``Σ sᵢ²`` over each avatar's
share ``sᵢ`` (1/n when n avatars share evenly, 1 when one has everything); the Gini coefficient; and the
Lorenz curve: the share of chats of the least-chatted x % of avatars, for x from 0 to 100 %.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from enum import StrEnum

from msgspec import Struct
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from app.db.engine import claim_writer, session_factory
from app.network.models import (
    AvatarChatter,
    AvatarDay,
    AvatarWindow,
    CreatorWindow,
    ModelDay,
    NetworkDay,
    NodeDay,
    UsageWindow,
)
from app.network.rollups import rebuild_window

LORENZ_POINTS = 50  # segments of the curve: enough to draw it, few enough to send
TOP_COUNTS = (1, 10, 100)
AVATAR_DAYS = 30  # an avatar's own chart


class Window(StrEnum):
    h24 = "24h"
    d7 = "7d"
    d30 = "30d"

    @property
    def days(self) -> int:
        return {"24h": 1, "7d": 7, "30d": 30}[self.value]

    def first_day(self, today: date) -> date:
        return today - timedelta(days=self.days - 1)


class CsvSection(StrEnum):
    daily = "daily"
    models = "models"
    nodes = "nodes"


class Distribution(Struct):
    active_avatars: int
    top_shares: dict[str, float]  # "1", "10", "100": share of chats of the top n avatars
    hhi: float
    gini: float
    lorenz: list[tuple[float, float]]  # (share of avatars, share of their chats), least chatted first


class ModelUsage(Struct):
    model: str
    replies: int
    failed: int
    prompt_tokens: int
    completion_tokens: int
    spend_wei: str  # OPG wei paid to nodes for its replies
    price_per_reply_wei: str  # spend over the replies that were paid for


class NodeUsage(Struct):
    node: str
    replies: int
    failures: int
    earned_wei: str


class FeeEarnings(Struct):
    """How creators' fees in the window are spread: not just who earned most."""

    creators: int  # creators who earned any
    total_wei: str
    median_wei: str
    p90_wei: str
    max_wei: str
    top_10_share: float
    hhi: float
    gini: float


class NewAvatars(Struct):
    listed: int
    first_chat: int  # of those, how many were chatted with
    first_outside_buyer: int  # of those, how many had a key bought by someone besides their creator


class DayUsage(Struct):
    day: date
    chats: int
    chatters: int
    active_avatars: int
    trades: int
    volume_wei: str
    creator_fees_wei: str
    replies: int
    inference_spend_wei: str
    new_avatars: int


class NetworkUsage(Struct):
    window: str
    first_day: date
    last_day: date
    chats: int
    chatters: int
    distribution: Distribution
    models: list[ModelUsage]
    nodes: list[NodeUsage]
    creator_fees: FeeEarnings
    new_avatars: NewAvatars
    daily: list[DayUsage]


class AvatarUsage(Struct):
    """One avatar's chats, public: per day over the last 30, and its chatters over the window."""

    avatar_id: str
    window: str
    chats: int
    chatters: int
    returning_chatters: int  # of the window's chatters, those who chatted on two days or more
    chats_by_day: dict[str, int]


# ---------------------------------------------------------------- inequality


def shares(values: Sequence[int]) -> list[float]:
    total = sum(values)
    return [value / total for value in values] if total else []


def hhi(values: Sequence[int]) -> float:
    return round(sum(share * share for share in shares(values)), 6)


def gini(values: Sequence[int]) -> float:
    """0 when all are equal, towards 1 when one holds everything: ``Σᵢ (2i − n − 1)·xᵢ / (n·Σx)`` sorted up."""
    ordered, total = sorted(values), sum(values)
    if not total:
        return 0.0
    n = len(ordered)
    return round(sum((2 * i - n - 1) * value for i, value in enumerate(ordered, 1)) / (n * total), 6)


def lorenz(values: Sequence[int], points: int = LORENZ_POINTS) -> list[tuple[float, float]]:
    ordered, total = sorted(values), sum(values)
    if not total:
        return []
    running, cumulative = 0, [0]
    for value in ordered:
        running += value
        cumulative.append(running)
    n = len(ordered)
    steps = sorted({round(n * k / points) for k in range(points + 1)})
    return [(round(step / n, 4), round(cumulative[step] / total, 4)) for step in steps]


def top_shares(values: Sequence[int]) -> dict[str, float]:
    ordered, total = sorted(values, reverse=True), sum(values)
    return {str(n): round(sum(ordered[:n]) / total, 4) if total else 0.0 for n in TOP_COUNTS}


def quantile(ordered: Sequence[int], q: float) -> int:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0


# ---------------------------------------------------------------- reading the rollups


async def has_chatted(session: AsyncSession, avatar_id: str, fan: str) -> bool:
    return await session.get(AvatarChatter, (avatar_id, fan)) is not None


async def network_usage(session: AsyncSession, window: Window, today: date) -> NetworkUsage:
    """The window's figures, one query per section, none of which reads more than a row per day, model, node,
    creator or distinct chat count: the windows' own totals (``AvatarWindow``, ``CreatorWindow``) are rebuilt
    first if they end before ``today`` (once a day), in a transaction of their own."""
    start = window.first_day(today)
    if await session.scalar(select(col(UsageWindow.last_day)).where(col(UsageWindow.days) == window.days)) != today:
        await session.rollback()  # a new snapshot (SQLite) once the rebuild is committed
        assert isinstance(session.bind, AsyncEngine), "the app's sessions are bound to its engine"
        async with session_factory(session.bind)() as writer:  # its SQLite writer queue: the engine's
            await claim_writer(writer)
            await rebuild_window(writer, window.days, today)
            await writer.commit()
    chats_per_avatar = await _chats_per_avatar(session, window)
    days = (await session.scalars(select(NetworkDay).where(col(NetworkDay.day).between(start, today)))).all()
    return NetworkUsage(
        window=window.value,
        first_day=start,
        last_day=today,
        chats=sum(chats_per_avatar),
        chatters=sum(day.last_chatters for day in days),
        distribution=Distribution(
            active_avatars=len(chats_per_avatar),
            top_shares=top_shares(chats_per_avatar),
            hhi=hhi(chats_per_avatar),
            gini=gini(chats_per_avatar),
            lorenz=lorenz(chats_per_avatar),
        ),
        models=await _models(session, start),
        nodes=await _nodes(session, start),
        creator_fees=await _fee_earnings(session, window),
        new_avatars=NewAvatars(
            listed=sum(day.new_avatars for day in days),
            first_chat=sum(day.new_chatted for day in days),
            first_outside_buyer=sum(day.new_bought for day in days),
        ),
        daily=await _daily(session, start, today, {day.day: day for day in days}),
    )


async def _chats_per_avatar(session: AsyncSession, window: Window) -> list[int]:
    """Each active avatar's chats in the window, least first, read as how many avatars had each count: a few
    hundred rows for ten thousand avatars."""
    counts = await session.execute(
        select(col(AvatarWindow.chats), func.count())
        .where(col(AvatarWindow.days) == window.days, col(AvatarWindow.chats) > 0)
        .group_by(col(AvatarWindow.chats))
        .order_by(col(AvatarWindow.chats))
    )
    return [chats for chats, avatars in counts for _ in range(avatars)]


async def _daily(session: AsyncSession, start: date, today: date, days: dict[date, NetworkDay]) -> list[DayUsage]:
    replies: dict[date, int] = defaultdict(int)
    spend: dict[date, int] = defaultdict(int)
    for day, day_replies, day_spend in await session.execute(
        select(col(ModelDay.day), col(ModelDay.replies), col(ModelDay.spend)).where(col(ModelDay.day) >= start)
    ):
        replies[day] += day_replies
        spend[day] += day_spend
    result = []
    for offset in range((today - start).days + 1):
        day = start + timedelta(days=offset)
        network_day = days.get(day) or NetworkDay(day=day)
        result.append(
            DayUsage(
                day=day,
                chats=network_day.chats,
                chatters=network_day.chatters,
                active_avatars=network_day.active_avatars,
                trades=network_day.trades,
                volume_wei=str(network_day.volume),
                creator_fees_wei=str(network_day.creator_fees),
                replies=replies[day],
                inference_spend_wei=str(spend[day]),
                new_avatars=network_day.new_avatars,
            )
        )
    return result


async def _models(session: AsyncSession, start: date) -> list[ModelUsage]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0] * 6)
    for row in await session.scalars(select(ModelDay).where(col(ModelDay.day) >= start)):
        sums = totals[row.model]
        for index, value in enumerate(
            (row.replies, row.failed, row.prompt_tokens, row.completion_tokens, row.spend, row.paid_replies)
        ):
            sums[index] += value
    return [
        ModelUsage(
            model=model,
            replies=replies,
            failed=failed,
            prompt_tokens=prompt,
            completion_tokens=completion,
            spend_wei=str(spend),
            price_per_reply_wei=str(spend // paid if paid else 0),
        )
        for model, (replies, failed, prompt, completion, spend, paid) in sorted(
            totals.items(), key=lambda item: (-item[1][0], item[0])
        )
    ]


async def _nodes(session: AsyncSession, start: date) -> list[NodeUsage]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0] * 3)
    for row in await session.scalars(select(NodeDay).where(col(NodeDay.day) >= start)):
        sums = totals[row.node]
        sums[0] += row.replies
        sums[1] += row.failures
        sums[2] += row.earned
    return [
        NodeUsage(node=node, replies=replies, failures=failures, earned_wei=str(earned))
        for node, (replies, failures, earned) in sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))
    ]


async def _fee_earnings(session: AsyncSession, window: Window) -> FeeEarnings:
    amounts = sorted(
        amount
        for amount in await session.scalars(
            select(col(CreatorWindow.creator_fees)).where(col(CreatorWindow.days) == window.days)
        )
        if amount > 0
    )
    return FeeEarnings(
        creators=len(amounts),
        total_wei=str(sum(amounts)),
        median_wei=str(quantile(amounts, 0.5)),
        p90_wei=str(quantile(amounts, 0.9)),
        max_wei=str(amounts[-1] if amounts else 0),
        top_10_share=top_shares(amounts)["10"],
        hhi=hhi(amounts),
        gini=gini(amounts),
    )


async def avatar_usage(session: AsyncSession, avatar_id: str, window: Window, today: date) -> AvatarUsage:
    start = window.first_day(today)
    chart_start = today - timedelta(days=AVATAR_DAYS - 1)
    by_day = {
        day: chats
        for day, chats in await session.execute(
            select(col(AvatarDay.day), col(AvatarDay.chats)).where(
                col(AvatarDay.avatar_id) == avatar_id, col(AvatarDay.day) >= min(start, chart_start)
            )
        )
    }
    chatters, returning = (
        await session.execute(
            select(func.count(), func.count().filter(col(AvatarChatter.active_days) >= 2)).where(
                col(AvatarChatter.avatar_id) == avatar_id, col(AvatarChatter.last_day) >= start
            )
        )
    ).one()
    return AvatarUsage(
        avatar_id=avatar_id,
        window=window.value,
        chats=sum(chats for day, chats in by_day.items() if day >= start),
        chatters=chatters,
        returning_chatters=returning,
        chats_by_day={day.isoformat(): chats for day, chats in sorted(by_day.items()) if day >= chart_start and chats},
    )


def usage_csv(usage: NetworkUsage, section: CsvSection) -> str:
    """One section of the usage as CSV: the days, the models or the nodes, one row each."""
    by_section: dict[CsvSection, Sequence[Struct]] = {
        CsvSection.daily: usage.daily,
        CsvSection.models: usage.models,
        CsvSection.nodes: usage.nodes,
    }
    rows = by_section[section]
    fields = {CsvSection.daily: DayUsage, CsvSection.models: ModelUsage, CsvSection.nodes: NodeUsage}[section]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(fields.__struct_fields__)
    for row in rows:
        writer.writerow([getattr(row, name) for name in fields.__struct_fields__])
    return out.getvalue()


def lorenz_svg_points(curve: Sequence[tuple[float, float]], size: int) -> str:
    """The Lorenz curve as an SVG polyline's points in a ``size``-square box (y grows downwards in SVG)."""
    return " ".join(f"{x * size:.1f},{(1 - y) * size:.1f}" for x, y in curve)
