"""The network's usage over a window, read from the rollups (``app.network.models``).

Windows are whole UTC days ending today: ``24h`` is today so far, ``7d`` today and the six days before,
``30d`` thirty days — ending yesterday in the moments after midnight until the background upkeep has summed the
window again (see :func:`network_usage`). Distinct chatters over a window are the fans whose last chatting day
falls in it (exact: each day counts the fans whose latest day it is), not a sum of daily counts.

How activity is spread over avatars (``distribution``), among the avatars chatted with in the window:
the share of chats of the top 1, 10 and 100; the Herfindahl–Hirschman index ``Σ sᵢ²`` over each avatar's
share ``sᵢ`` (1/n when n avatars share evenly, 1 when one has everything); the Gini coefficient; and the
Lorenz curve: the share of chats of the least-chatted x % of avatars, for x from 0 to 100 %.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from msgspec import Struct
from sqlalchemy import RowMapping, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from app.db.base import table_of
from app.db.engine import claim_writer, session_factory
from app.network.models import (
    AvatarChatter,
    AvatarDay,
    AvatarWindow,
    FeeWindow,
    ModelDay,
    NetworkDay,
    NodeDay,
    UsageWindow,
)
from app.network.rollups import rebuild_window
from app.network.spread import gini_of, hhi_of, lorenz_of, top_shares_of

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


# ---------------------------------------------------------------- reading the rollups


async def has_chatted(session: AsyncSession, avatar_id: str, fan: str) -> bool:
    return await session.get(AvatarChatter, (avatar_id, fan)) is not None


async def network_usage(session: AsyncSession, window: Window, today: date) -> NetworkUsage:
    """The window's figures, one query per section, none of which reads more than a row per day, model, node,
    creator or distinct chat count. The window ends on the day its own totals (``AvatarWindow``, ``CreatorWindow``,
    ``FeeWindow``) were built for: ``today``, or yesterday in the moments after midnight until the background upkeep
    (``app.network.upkeep``) has summed them again — every section then covers those same days. Only a window never
    built, or one the upkeep left more than a day behind, is summed here first, in a transaction of its own."""
    last_day = await session.scalar(select(col(UsageWindow.last_day)).where(col(UsageWindow.days) == window.days))
    if last_day is None or last_day < today - timedelta(days=1):
        await session.rollback()  # a new snapshot (SQLite) once the rebuild is committed
        assert isinstance(session.bind, AsyncEngine), "the app's sessions are bound to its engine"
        async with session_factory(session.bind)() as writer:  # its SQLite writer queue: the engine's
            await claim_writer(writer)
            await rebuild_window(writer, window.days, today)
            await writer.commit()
        last_day = today
    start = window.first_day(last_day)
    chats = await _chats_histogram(session, window)
    model_days = (
        await session.execute(
            select(
                col(ModelDay.day),
                col(ModelDay.model),
                col(ModelDay.replies),
                col(ModelDay.failed),
                col(ModelDay.prompt_tokens),
                col(ModelDay.completion_tokens),
                col(ModelDay.spend),
                col(ModelDay.paid_replies),
            ).where(col(ModelDay.day).between(start, last_day))
        )
    ).all()
    days = (  # plain rows: thirty ORM entities would cost more than every other section
        (await session.execute(select(table_of(NetworkDay)).where(col(NetworkDay.day).between(start, last_day))))
        .mappings()
        .all()
    )
    return NetworkUsage(
        window=window.value,
        first_day=start,
        last_day=last_day,
        chats=sum(value * many for value, many in chats),
        chatters=sum(day["last_chatters"] for day in days),
        distribution=Distribution(
            active_avatars=sum(many for _, many in chats),
            top_shares=top_shares_of(chats),
            hhi=hhi_of(chats),
            gini=gini_of(chats),
            lorenz=lorenz_of(chats),
        ),
        models=_models(model_days),
        nodes=await _nodes(session, start, last_day),
        creator_fees=await _fee_earnings(session, window, total=sum(day["creator_fees"] for day in days)),
        new_avatars=NewAvatars(
            listed=sum(day["new_avatars"] for day in days),
            first_chat=sum(day["new_chatted"] for day in days),
            first_outside_buyer=sum(day["new_bought"] for day in days),
        ),
        daily=_daily(start, last_day, {day["day"]: day for day in days}, model_days),
    )


async def _chats_histogram(session: AsyncSession, window: Window) -> list[tuple[int, int]]:
    """How many active avatars had each count of chats in the window, least first."""
    counts = await session.execute(
        select(col(AvatarWindow.chats), func.count())
        .where(col(AvatarWindow.days) == window.days, col(AvatarWindow.chats) > 0)
        .group_by(col(AvatarWindow.chats))
        .order_by(col(AvatarWindow.chats))
    )
    return [(chats, avatars) for chats, avatars in counts]


NO_DAY = {
    name: 0 for name in ("chats", "chatters", "active_avatars", "trades", "volume", "creator_fees", "new_avatars")
}
ModelDayRow = Sequence[Any]  # day, model, replies, failed, prompt and completion tokens, spend, paid replies


def _daily(
    start: date, last_day: date, days: dict[date, RowMapping], model_days: Sequence[ModelDayRow]
) -> list[DayUsage]:
    replies: dict[date, int] = defaultdict(int)
    spend: dict[date, int] = defaultdict(int)
    for day, _, day_replies, _, _, _, day_spend, _ in model_days:
        replies[day] += day_replies
        spend[day] += day_spend
    result = []
    for offset in range((last_day - start).days + 1):
        day = start + timedelta(days=offset)
        totals: Mapping[Any, Any] = days.get(day) or NO_DAY
        result.append(
            DayUsage(
                day=day,
                chats=totals["chats"],
                chatters=totals["chatters"],
                active_avatars=totals["active_avatars"],
                trades=totals["trades"],
                volume_wei=str(totals["volume"]),
                creator_fees_wei=str(totals["creator_fees"]),
                replies=replies[day],
                inference_spend_wei=str(spend[day]),
                new_avatars=totals["new_avatars"],
            )
        )
    return result


def _models(model_days: Sequence[ModelDayRow]) -> list[ModelUsage]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0] * 6)
    for _, model, *figures in model_days:
        sums = totals[model]
        for index, value in enumerate(figures):
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


async def _nodes(session: AsyncSession, start: date, last_day: date) -> list[NodeUsage]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0] * 3)
    for node, replies, failures, earned in await session.execute(
        select(col(NodeDay.node), col(NodeDay.replies), col(NodeDay.failures), col(NodeDay.earned)).where(
            col(NodeDay.day).between(start, last_day)
        )
    ):
        sums = totals[node]
        sums[0] += replies
        sums[1] += failures
        sums[2] += earned
    return [
        NodeUsage(node=node, replies=replies, failures=failures, earned_wei=str(earned))
        for node, (replies, failures, earned) in sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))
    ]


async def _fee_earnings(session: AsyncSession, window: Window, total: int) -> FeeEarnings:
    """How the window's ``total`` of creators' fees is spread: its summary, kept with its creators' totals."""
    summary = await session.get(FeeWindow, window.days)
    if summary is None or not summary.creators:
        return FeeEarnings(0, "0", "0", "0", "0", 0.0, 0.0, 0.0)
    return FeeEarnings(
        creators=summary.creators,
        total_wei=str(total),
        median_wei=str(summary.median),
        p90_wei=str(summary.p90),
        max_wei=str(summary.largest),
        top_10_share=round(summary.top_10 / total, 4),
        hhi=summary.hhi,
        gini=summary.gini,
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
