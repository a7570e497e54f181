"""The network's figures counted again from the raw tables (trades, chat messages, attestations): what the
rollups must equal, however they were reached."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.chat.models import ChatMessage, MessageStatus, ReplyAttestation, Role
from app.market.models import MarketAvatar, Trade
from app.network.models import (
    AvatarChatter,
    AvatarDay,
    AvatarHour,
    AvatarRecent,
    AvatarWindow,
    Chatter,
    CreatorWindow,
    FeeWindow,
    ModelDay,
    NetworkAvatar,
    NetworkDay,
    NodeDay,
    RecentHours,
    UsageWindow,
)


def aware(moment: datetime) -> datetime:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def day_of(moment: datetime) -> date:
    return aware(moment).date()


def hour_of(moment: datetime) -> datetime:
    return aware(moment).replace(minute=0, second=0, microsecond=0)


NETWORK_DAY = (
    "chatters",
    "last_chatters",
    "chats",
    "active_avatars",
    "trades",
    "volume",
    "creator_fees",
    "new_avatars",
    "new_chatted",
    "new_bought",
)


def _nonzero(rows: dict[Any, dict[str, int]]) -> dict[Any, dict[str, int]]:
    return {key: value for key, value in rows.items() if any(value.values())}


async def recount(session: AsyncSession) -> dict[str, Any]:
    avatar_days: dict[tuple[str, date], dict[str, int]] = defaultdict(
        lambda: {"chats": 0, "chatters": 0, "trades": 0, "volume": 0, "creator_fees": 0}
    )
    fans_per_day: dict[tuple[str, date], set[str]] = defaultdict(set)
    model_days: dict[tuple[str, date], dict[str, int]] = defaultdict(
        lambda: {"replies": 0, "failed": 0, "prompt_tokens": 0, "completion_tokens": 0, "spend": 0, "paid_replies": 0}
    )
    network_days: dict[date, set[str]] = defaultdict(set)
    avatar_hours: dict[tuple[str, datetime], dict[str, int]] = defaultdict(lambda: {"chats": 0, "volume": 0})
    last_hours: dict[tuple[str, str], datetime] = {}
    first_chat: dict[str, date] = {}
    prompt = aliased(ChatMessage)
    turns = await session.execute(
        select(prompt, ChatMessage)
        .join(ChatMessage, ChatMessage.reply_to == prompt.id)
        .where(prompt.role == Role.user, prompt.status != MessageStatus.pending)
    )
    for asked, reply in turns:
        day = day_of(asked.completed_at)
        avatar_days[asked.avatar_id, day]["chats"] += 1
        fans_per_day[asked.avatar_id, day].add(asked.fan)
        network_days[day].add(asked.fan)
        hour = hour_of(asked.completed_at)
        avatar_hours[asked.avatar_id, hour]["chats"] += 1
        last_hours[asked.avatar_id, asked.fan] = max(hour, last_hours.get((asked.avatar_id, asked.fan), hour))
        first_chat[asked.avatar_id] = min(day, first_chat.get(asked.avatar_id, day))
        model = model_days[reply.model, day]
        model["replies" if reply.status == MessageStatus.complete else "failed"] += 1
        model["prompt_tokens"] += reply.prompt_tokens or 0
        model["completion_tokens"] += reply.completion_tokens or 0
        model["spend"] += reply.cost_wei
        model["paid_replies"] += reply.cost_wei > 0
    for (avatar_id, day), fans in fans_per_day.items():
        avatar_days[avatar_id, day]["chatters"] = len(fans)
    creators = dict((await session.execute(select(MarketAvatar.avatar_id, MarketAvatar.creator))).all())
    first_outside: dict[str, datetime] = {}
    for trade in await session.scalars(select(Trade).order_by(Trade.id)):
        row = avatar_days[trade.avatar_id, day_of(trade.timestamp)]
        row["trades"] += 1
        row["volume"] += trade.eth_amount
        row["creator_fees"] += trade.creator_fee
        avatar_hours[trade.avatar_id, hour_of(trade.timestamp)]["volume"] += trade.eth_amount
        if trade.is_buy and trade.trader != creators.get(trade.avatar_id):
            first_outside.setdefault(trade.avatar_id, trade.timestamp)
    # A node's verified replies (its failures, and what a rejected reply was paid, only the proxy client saw).
    nodes: dict[tuple[str, date], int] = defaultdict(int)
    for reply, attestation in await session.execute(
        select(ChatMessage, ReplyAttestation).join(ReplyAttestation, ReplyAttestation.message_id == ChatMessage.id)
    ):
        nodes[attestation.node_endpoint, day_of(reply.completed_at)] += 1
    chatters: dict[str, list[date]] = {}
    for day, fans in network_days.items():
        for fan in fans:
            chatters.setdefault(fan, []).append(day)
    days: dict[date, dict[str, int]] = defaultdict(lambda: dict.fromkeys(NETWORK_DAY, 0))
    for day, fans in network_days.items():
        days[day]["chatters"] = len(fans)
    for fan_days in chatters.values():
        days[max(fan_days)]["last_chatters"] += 1
    for (_, day), row in avatar_days.items():
        for name in ("chats", "trades", "volume", "creator_fees"):
            days[day][name] += row[name]
        days[day]["active_avatars"] += row["chats"] > 0
    for market in await session.scalars(select(MarketAvatar)):
        listed = days[day_of(market.created_at)]
        listed["new_avatars"] += 1
        listed["new_chatted"] += market.avatar_id in first_chat
        listed["new_bought"] += market.avatar_id in first_outside
    return {
        "avatar_days": _nonzero(dict(avatar_days)),
        "avatar_hours": _nonzero(dict(avatar_hours)),
        "last_hours": last_hours,
        "model_days": _nonzero(dict(model_days)),
        "network_days": _nonzero(dict(days)),
        "chatters": {fan: (min(days), max(days)) for fan, days in chatters.items()},
        "first_chat": first_chat,
        "first_outside_buy": {key: aware(value) for key, value in first_outside.items()},
        "nodes": dict(nodes),
    }


async def rollups(session: AsyncSession) -> dict[str, Any]:
    """The same figures as the rollups hold them."""
    firsts = (await session.scalars(select(NetworkAvatar))).all()
    return {
        "avatar_days": _nonzero(
            {
                (row.avatar_id, row.day): {
                    "chats": row.chats,
                    "chatters": row.chatters,
                    "trades": row.trades,
                    "volume": row.volume,
                    "creator_fees": row.creator_fees,
                }
                for row in await session.scalars(select(AvatarDay))
            }
        ),
        "avatar_hours": _nonzero(
            {
                (row.avatar_id, row.hour): {"chats": row.chats, "volume": row.volume}
                for row in await session.scalars(select(AvatarHour))
            }
        ),
        "last_hours": {(row.avatar_id, row.fan): row.last_hour for row in await session.scalars(select(AvatarChatter))},
        "model_days": _nonzero(
            {
                (row.model, row.day): {
                    "replies": row.replies,
                    "failed": row.failed,
                    "prompt_tokens": row.prompt_tokens,
                    "completion_tokens": row.completion_tokens,
                    "spend": row.spend,
                    "paid_replies": row.paid_replies,
                }
                for row in await session.scalars(select(ModelDay))
            }
        ),
        "network_days": _nonzero(
            {
                row.day: {name: getattr(row, name) for name in NETWORK_DAY}
                for row in await session.scalars(select(NetworkDay))
            }
        ),
        "chatters": {row.fan: (row.first_day, row.last_day) for row in await session.scalars(select(Chatter))},
        "first_chat": {row.avatar_id: day_of(row.first_chat_at) for row in firsts if row.first_chat_at},
        "first_outside_buy": {
            row.avatar_id: aware(row.first_outside_buy_at) for row in firsts if row.first_outside_buy_at
        },
        "nodes": {(row.node, row.day): row.replies for row in await session.scalars(select(NodeDay)) if row.replies},
    }


def fee_summary(row: FeeWindow) -> tuple[int, int, int, int, int, float, float]:
    return (row.creators, row.median, row.p90, row.largest, row.top_10, row.hhi, row.gini)


def summarised(amounts: list[int]) -> tuple[int, int, int, int, int, float, float]:
    """A window's creators' fees (above zero, least first) summed up as the old per-request pass did: the median at
    place n // 2, the 90th percentile at 9n // 10, the largest, the ten largest; HHI and Gini over float amounts."""
    if not amounts:
        return (0, 0, 0, 0, 0, 0.0, 0.0)
    n, total = len(amounts), float(sum(amounts))
    weighted = sum(place * float(amount) for place, amount in enumerate(amounts, start=1))
    return (
        n,
        amounts[n // 2],
        amounts[n * 9 // 10],
        amounts[-1],
        sum(amounts[-10:]),
        round(sum(float(amount) ** 2 for amount in amounts) / total**2, 6),
        round((2 * weighted - (n + 1) * total) / (n * total), 6),
    )


async def windows(session: AsyncSession) -> dict[int, dict[str, Any]]:
    """Each built window's per-avatar chats and per-creator fees: as kept, and summed again from the day rollups."""
    creators = {row.avatar_id: row.creator or "" for row in await session.scalars(select(NetworkAvatar))}
    days = (await session.scalars(select(AvatarDay))).all()
    result = {}
    for window in await session.scalars(select(UsageWindow)):
        assert window.last_day is not None
        first_day = window.last_day - timedelta(days=window.days - 1)
        chats: dict[str, int] = defaultdict(int)
        fees: dict[str, int] = defaultdict(int)
        for row in days:
            if first_day <= row.day <= window.last_day:
                chats[row.avatar_id] += row.chats
                fees[creators.get(row.avatar_id, "")] += row.creator_fees
        kept_chats = await session.scalars(select(AvatarWindow).where(AvatarWindow.days == window.days))
        kept_fees = await session.scalars(select(CreatorWindow).where(CreatorWindow.days == window.days))
        summary = await session.get(FeeWindow, window.days)
        amounts = sorted(amount for amount in fees.values() if amount)
        result[window.days] = {
            "kept": (
                {row.avatar_id: row.chats for row in kept_chats if row.chats},
                {row.creator: row.creator_fees for row in kept_fees if row.creator_fees},
                None if summary is None else fee_summary(summary),
            ),
            "summed": (
                {avatar_id: count for avatar_id, count in chats.items() if count},
                {creator: amount for creator, amount in fees.items() if amount},
                summarised(amounts),
            ),
        }
    return result


async def recent_totals(session: AsyncSession) -> dict[str, dict[str, tuple[int, ...]]]:
    """The avatars' recent totals (chats, volume, chatters) as kept, and summed again from the hour rollups."""
    first_hour = await session.scalar(select(RecentHours.first_hour))
    summed: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    if first_hour is not None:  # nothing while not summed yet
        for row in await session.scalars(select(AvatarHour).where(AvatarHour.hour >= first_hour)):
            summed[row.avatar_id][0] += row.chats
            summed[row.avatar_id][1] += row.volume
        for chatter in await session.scalars(select(AvatarChatter).where(AvatarChatter.last_hour >= first_hour)):
            summed[chatter.avatar_id][2] += 1
    return {
        "kept": {
            row.avatar_id: (row.chats, row.volume, row.chatters) for row in await session.scalars(select(AvatarRecent))
        },
        "summed": {avatar_id: tuple(totals) for avatar_id, totals in summed.items() if any(totals)},
    }
