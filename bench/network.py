"""The network page's and the rankings' cost at scale, from the rollups beside the raw tables, in one run.

A fresh, migrated database (a temp SQLite file; with TWIN_BENCH_DATABASE_URL also a throwaway PostgreSQL
database created on that server and dropped afterwards) gets, bulk-inserted directly: 10,000 listed
avatars, 100,000 trades, 1,000,000 chat messages (500,000 fans' messages and their replies) and 30,000
reviews over the last 30 days, popularity following a Zipf law, and the rollups those rows make
(aggregated here, as the projection, the chat service and the proxy client would have kept them).

Then, in process through the app (Litestar's AsyncTestClient, the app's own routes), p50 and p99 over repeated
requests of:
- ``GET /api/network/usage?window=30d|7d|24h`` computed from the rollups on every request
  (``TWIN_NETWORK_USAGE_CACHE_S=0``), and as served with the cache (15 s);
- the first such request of a UTC day, answered from the window as built the day before, and the background
  upkeep's rebuild of the window that follows midnight;
- ``GET /api/avatars?sort=rating``, ``sort=market_cap``, ``sort=volume_24h`` and ``sort=chats_24h`` (ranked in
  SQL, the 24 h figures from the hourly rollups), and the background upkeep summing the recent totals from
  scratch (as after the migration; an hour's move takes out one hour);
beside the same figures computed from the raw tables (chat messages, trades, reviews) in the same run — for the
24 h rankings, counted for every listed avatar as they were before the hourly rollups.

    .venv/bin/python bench/network.py [--scale 1.0] [--repeat 50]

``--scale 0.05`` makes a quick run (50,000 messages). The chain is an embedded anvil node in a temp
directory (rankings read the curve's divisor from it once).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import random
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.avatars.models import Avatar
from app.chain.client import chain_from_embedded
from app.chain.embedded import EmbeddedChain
from app.chat.models import ChatMessage, MessageStatus, Role
from app.config import Settings
from app.db import migrate
from app.db.engine import create_engine, session_factory
from app.main import create_app
from app.market.models import MarketAvatar, Trade
from app.network import spread
from app.network import upkeep as network_upkeep
from app.network import usage as network
from app.network.models import (
    AvatarChatter,
    AvatarDay,
    AvatarHour,
    Chatter,
    ModelDay,
    NetworkAvatar,
    NetworkDay,
    NodeDay,
)
from app.reviews.models import AvatarRating, Review
from app.reviews.service import Prior

AVATARS, TRADES, TURNS, REVIEWS, FANS = 10_000, 100_000, 500_000, 30_000, 50_000
DAYS = 30
MODELS = ("twin-offline-demo", "gpt-4o-mini", "claude-3-5-haiku", "gemini-2.0-flash")
NODES = ("https://node-a.example", "https://node-b.example", "https://node-c.example")
PRICE_WEI = 10**15
CHUNK = 20_000


def address(kind: int, number: int) -> str:
    return "0x" + f"{kind:02x}{number:038x}"


def avatar_id(number: int) -> str:
    return "0x" + f"{number:032x}"


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


@dataclass
class Data:
    """Rows in chunks, and the rollups they make."""

    now: datetime
    avatar_days: dict[tuple[str, date], dict[str, int]] = field(
        default_factory=lambda: defaultdict(
            lambda: {"chats": 0, "chatters": 0, "trades": 0, "volume": 0, "creator_fees": 0}
        )
    )
    day_fans: dict[tuple[str, date], set[int]] = field(default_factory=lambda: defaultdict(set))
    model_days: dict[tuple[str, date], dict[str, int]] = field(
        default_factory=lambda: defaultdict(
            lambda: {
                "replies": 0,
                "failed": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "spend": 0,
                "paid_replies": 0,
            }
        )
    )
    node_days: dict[tuple[str, date], dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: {"replies": 0, "failures": 0, "earned": 0})
    )
    chatters: dict[int, list[date]] = field(default_factory=dict)
    pair_days: dict[tuple[str, int], set[date]] = field(default_factory=lambda: defaultdict(set))
    pair_chats: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    network_fans: dict[date, set[int]] = field(default_factory=lambda: defaultdict(set))
    avatar_hours: dict[tuple[str, datetime], dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: {"chats": 0, "volume": 0})
    )
    pair_last_hour: dict[tuple[str, int], datetime] = field(default_factory=dict)
    first_chat: dict[str, datetime] = field(default_factory=dict)
    first_outside: dict[str, datetime] = field(default_factory=dict)


async def bulk(session: AsyncSession, table: Any, rows: list[dict[str, Any]]) -> None:
    if session.bind.dialect.name == "postgresql":  # COPY: a million rows in seconds, not minutes
        connection = await session.connection()
        raw = (await connection.get_raw_connection()).driver_connection
        columns = list(rows[0])
        records = [
            tuple(
                Decimal(value) if table.c[column].type.__class__.__name__ == "Wei" else value
                for column, value in row.items()
            )
            for row in rows
        ]
        await raw.copy_records_to_table(table.name, records=records, columns=columns)
    else:
        await session.execute(insert(table), rows)


async def populate(engine: AsyncEngine, scale: float, seed: int = 17) -> Data:
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    data = Data(now=now)
    avatars, trades, turns, reviews = (max(10, int(n * scale)) for n in (AVATARS, TRADES, TURNS, REVIEWS))
    fans = max(100, int(FANS * scale))
    popularity = list(itertools.accumulate(1 / (rank + 1) ** 1.1 for rank in range(avatars)))  # cumulated once:
    # random.choices with plain weights would add up ten thousand of them again for each of 600,000 draws
    ids = [avatar_id(n + 1) for n in range(avatars)]
    creators = {ids[n]: address(1, n % max(1, avatars // 3)) for n in range(avatars)}
    models = {ids[n]: MODELS[n % len(MODELS)] for n in range(avatars)}
    created = {ids[n]: now - timedelta(seconds=rng.randrange(DAYS * 86_400)) for n in range(avatars)}
    sessions = session_factory(engine)

    def moment_after(start: datetime) -> datetime:
        return start + timedelta(seconds=rng.randrange(max(1, int((now - start).total_seconds()))))

    async with sessions() as session:
        avatar_rows, market_rows = [], []
        for n, identifier in enumerate(ids):
            avatar_rows.append(
                {
                    "id": identifier,
                    "handle": f"avatar{n}",
                    "name": f"Avatar {n}",
                    "bio": "",
                    "persona": "You are a bench avatar.",
                    "model": models[identifier],
                    "verification_level": "signature",
                    "image_url": "",
                    "creator": creators[identifier],
                    "metadata_uri": f"https://twin.example/{identifier}",
                    "listed_at": created[identifier],
                    "created_at": created[identifier],
                    "updated_at": created[identifier],
                }
            )
            market_rows.append(
                {
                    "avatar_id": identifier,
                    "creator": creators[identifier],
                    "metadata_uri": f"https://twin.example/{identifier}",
                    "created_block": n + 1,
                    "created_at": created[identifier],
                    "supply": 1,
                    "holders": 1,
                    "trade_count": 0,
                    "volume": 0,
                    "creator_fees": 0,
                    "protocol_fees": 0,
                    "market_cap": rng.randrange(10**21),
                    "last_trade_at": None,
                }
            )
        for start in range(0, avatars, CHUNK):
            await bulk(session, Avatar.__table__, avatar_rows[start : start + CHUNK])
            await bulk(session, MarketAvatar.__table__, market_rows[start : start + CHUNK])

        trade_rows = []
        for n in range(trades):
            identifier = ids[n] if n < avatars else rng.choices(ids, cum_weights=popularity)[0]
            trader = creators[identifier] if n < avatars else address(2, rng.randrange(fans))
            at = created[identifier] if n < avatars else moment_after(created[identifier])
            price = rng.randrange(10**14, 10**18)
            fee = price // 20
            trade_rows.append(
                {
                    "tx_hash": "0x" + f"{n:064x}",
                    "log_index": 0,
                    "block_number": n + 1,
                    "timestamp": at,
                    "avatar_id": identifier,
                    "trader": trader,
                    "is_buy": True,
                    "amount": 1,
                    "eth_amount": price,
                    "protocol_fee": fee,
                    "creator_fee": fee,
                    "supply_after": 2,
                }
            )
            row = data.avatar_days[identifier, at.date()]
            row["trades"] += 1
            row["volume"] += price
            data.avatar_hours[identifier, hour_of(at)]["volume"] += price
            row["creator_fees"] += fee
            if trader != creators[identifier] and (
                identifier not in data.first_outside or at < data.first_outside[identifier]
            ):
                data.first_outside[identifier] = at
            if len(trade_rows) == CHUNK:
                await bulk(session, Trade.__table__, trade_rows)
                trade_rows = []
        if trade_rows:
            await bulk(session, Trade.__table__, trade_rows)

        message_id = 0
        messages: list[dict[str, Any]] = []
        for _ in range(turns):
            identifier = rng.choices(ids, cum_weights=popularity)[0]
            fan = rng.randrange(fans)
            at = moment_after(created[identifier])
            day = at.date()
            ok = rng.random() > 0.02
            model = models[identifier]
            prompt_tokens, completion_tokens = rng.randrange(50, 2_000), rng.randrange(20, 400) if ok else 0
            cost = PRICE_WEI if ok else 0
            message_id += 2
            fan_address = address(2, fan)
            messages.append(
                {
                    "id": message_id - 1,
                    "avatar_id": identifier,
                    "fan": fan_address,
                    "role": Role.user,
                    "client_msg_id": f"m{message_id}",
                    "reply_to": None,
                    "content": "Hello there",
                    "status": MessageStatus.answered if ok else MessageStatus.failed,
                    "error_code": None,
                    "model": None,
                    "prompt_tokens": None,
                    "completion_tokens": None,
                    "cost_wei": 0,
                    "payment_tx": None,
                    "created_at": at,
                    "completed_at": at,
                }
            )
            messages.append(
                {
                    "id": message_id,
                    "avatar_id": identifier,
                    "fan": fan_address,
                    "role": Role.assistant,
                    "client_msg_id": None,
                    "reply_to": message_id - 1,
                    "content": "A reply of a few words.",
                    "status": MessageStatus.complete if ok else MessageStatus.failed,
                    "error_code": None,
                    "model": model,
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "cost_wei": cost,
                    "payment_tx": None,
                    "created_at": at,
                    "completed_at": at,
                }
            )
            row = data.avatar_days[identifier, day]
            row["chats"] += 1
            data.day_fans[identifier, day].add(fan)
            model_row = data.model_days[model, day]
            model_row["replies" if ok else "failed"] += 1
            model_row["prompt_tokens"] += prompt_tokens
            model_row["completion_tokens"] += completion_tokens
            model_row["spend"] += cost
            model_row["paid_replies"] += cost > 0
            node_row = data.node_days[rng.choice(NODES), day]
            node_row["replies" if ok else "failures"] += 1
            node_row["earned"] += cost
            days = data.chatters.setdefault(fan, [day, day])
            days[0], days[1] = min(days[0], day), max(days[1], day)
            data.pair_days[identifier, fan].add(day)
            data.pair_chats[identifier, fan] += 1
            hour = hour_of(at)
            data.avatar_hours[identifier, hour]["chats"] += 1
            data.pair_last_hour[identifier, fan] = max(hour, data.pair_last_hour.get((identifier, fan), hour))
            data.network_fans[day].add(fan)
            if identifier not in data.first_chat or at < data.first_chat[identifier]:
                data.first_chat[identifier] = at
            if len(messages) >= CHUNK:
                await bulk(session, ChatMessage.__table__, messages)
                messages = []
        if messages:
            await bulk(session, ChatMessage.__table__, messages)
        if session.bind.dialect.name == "postgresql":  # ids were given: move the sequence past them
            await session.execute(text(f"SELECT setval('chat_message_id_seq', {message_id})"))

        stars: dict[str, list[int]] = defaultdict(list)
        pairs = rng.sample(sorted(data.pair_chats), min(reviews, len(data.pair_chats)))
        review_rows = []
        for identifier, fan in pairs:
            rating = rng.choices((1, 2, 3, 4, 5), (1, 1, 2, 4, 4))[0]
            stars[identifier].append(rating)
            review_rows.append(
                {
                    "avatar_id": identifier,
                    "reviewer": address(2, fan),
                    "rating": rating,
                    "text": "Good.",
                    "signed_at": int(now.timestamp()),
                    "signature": "0x" + "11" * 65,
                    "created_at": now,
                    "updated_at": now,
                    "answer": None,
                    "answered_at": None,
                    "hidden_reason": None,
                    "hidden_at": None,
                }
            )
        for start in range(0, len(review_rows), CHUNK):
            await bulk(session, Review.__table__, review_rows[start : start + CHUNK])
        await write_rollups(session, data, ids, creators, created, stars)
        await session.commit()
    if engine.dialect.name == "postgresql":  # the planner's statistics, as autovacuum keeps them after a load
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("ANALYZE"))
    return data


def network_days(data: Data, created: dict[str, datetime]) -> list[dict[str, Any]]:
    """The network's day totals, as the rollups keep them (``app.network.models.NetworkDay``)."""
    names = ("chatters", "last_chatters", "chats", "active_avatars", "trades", "volume", "creator_fees")
    days: dict[date, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys((*names, "new_avatars", "new_chatted", "new_bought"), 0)
    )
    for day, fans in data.network_fans.items():
        days[day]["chatters"] = len(fans)
    for _, last_day in data.chatters.values():
        days[last_day]["last_chatters"] += 1
    for (_, day), row in data.avatar_days.items():
        for name in ("chats", "trades", "volume", "creator_fees"):
            days[day][name] += row[name]
        days[day]["active_avatars"] += row["chats"] > 0
    for identifier, at in created.items():
        listed = days[at.date()]
        listed["new_avatars"] += 1
        listed["new_chatted"] += identifier in data.first_chat
        listed["new_bought"] += identifier in data.first_outside
    return [{"day": day, **totals} for day, totals in days.items()]


async def write_rollups(
    session: AsyncSession,
    data: Data,
    ids: list[str],
    creators: dict[str, str],
    created: dict[str, datetime],
    stars: dict[str, list[int]],
) -> None:
    for key, fans in data.day_fans.items():
        data.avatar_days[key]["chatters"] = len(fans)
    tables: list[tuple[Any, list[dict[str, Any]]]] = [
        (AvatarDay.__table__, [{"avatar_id": a, "day": d, **row} for (a, d), row in data.avatar_days.items()]),
        (AvatarHour.__table__, [{"avatar_id": a, "hour": h, **row} for (a, h), row in data.avatar_hours.items()]),
        (ModelDay.__table__, [{"model": m, "day": d, **row} for (m, d), row in data.model_days.items()]),
        (NodeDay.__table__, [{"node": n, "day": d, **row} for (n, d), row in data.node_days.items()]),
        (
            Chatter.__table__,
            [
                {"fan": address(2, fan), "first_day": first, "last_day": last}
                for fan, (first, last) in data.chatters.items()
            ],
        ),
        (
            AvatarChatter.__table__,
            [
                {
                    "avatar_id": a,
                    "fan": address(2, fan),
                    "first_day": min(days),
                    "last_day": max(days),
                    "active_days": len(days),
                    "chats": data.pair_chats[a, fan],
                    "last_hour": data.pair_last_hour[a, fan],
                }
                for (a, fan), days in data.pair_days.items()
            ],
        ),
        (NetworkDay.__table__, network_days(data, created)),
        (
            NetworkAvatar.__table__,
            [
                {
                    "avatar_id": a,
                    "creator": creators[a],
                    "listed_at": created[a],
                    "first_chat_at": data.first_chat.get(a),
                    "first_outside_buy_at": data.first_outside.get(a),
                }
                for a in ids
            ],
        ),
        (
            AvatarRating.__table__,
            [
                {"avatar_id": a, "count": len(s), "total": sum(s), **{f"stars_{n}": s.count(n) for n in range(1, 6)}}
                for a, s in stars.items()
            ],
        ),
    ]
    for table, rows in tables:
        for start in range(0, len(rows), CHUNK):
            await bulk(session, table, rows[start : start + CHUNK])


# ---------------------------------------------------------------- the same figures from the raw tables


async def usage_from_raw(session: AsyncSession, window: network.Window, today: date) -> dict[str, Any]:
    """What /api/network/usage answers, counted from chat messages, trades and avatars (nodes aside: their
    failures are in no raw table)."""
    start = datetime.combine(window.first_day(today), datetime.min.time(), UTC)
    asked = (
        (ChatMessage.role == Role.user)
        & (ChatMessage.status != MessageStatus.pending)
        & (ChatMessage.created_at >= start)
    )
    per_avatar = [
        count for (count,) in await session.execute(select(func.count()).where(asked).group_by(ChatMessage.avatar_id))
    ]
    chatters = await session.scalar(select(func.count(ChatMessage.fan.distinct())).where(asked))
    day = func.date(ChatMessage.created_at)
    daily = (
        await session.execute(
            select(
                day, func.count(), func.count(ChatMessage.fan.distinct()), func.count(ChatMessage.avatar_id.distinct())
            )
            .where(asked)
            .group_by(day)
        )
    ).all()
    models: dict[str, list[int]] = defaultdict(lambda: [0] * 5)
    for model, status, prompt, completion, cost in await session.execute(
        select(
            ChatMessage.model,
            ChatMessage.status,
            ChatMessage.prompt_tokens,
            ChatMessage.completion_tokens,
            ChatMessage.cost_wei,
        ).where(ChatMessage.role == Role.assistant, ChatMessage.created_at >= start)
    ):
        sums = models[model]
        sums[0 if status == MessageStatus.complete else 1] += 1
        sums[2] += prompt or 0
        sums[3] += completion or 0
        sums[4] += cost
    fees: dict[str, int] = defaultdict(int)
    volume: dict[date, int] = defaultdict(int)
    for creator, at, amount, fee in await session.execute(
        select(Avatar.creator, Trade.timestamp, Trade.eth_amount, Trade.creator_fee)
        .join(Avatar, Avatar.id == Trade.avatar_id)
        .where(Trade.timestamp >= start)
    ):
        fees[creator] += fee
        volume[at.date()] += amount
    new = await session.scalar(select(func.count()).select_from(MarketAvatar).where(MarketAvatar.created_at >= start))
    amounts = sorted(fees.values())
    return {
        "chats": sum(per_avatar),
        "chatters": chatters,
        "hhi": spread.hhi(per_avatar),
        "lorenz": spread.lorenz(per_avatar),
        "daily": daily,
        "models": dict(models),
        "fees": (spread.gini(amounts), spread.quantile(amounts, 0.5)),
        "volume": dict(volume),
        "new": new,
    }


async def rating_ranking_from_raw(session: AsyncSession, prior: Prior, limit: int = 20) -> list[str]:
    """The first page of sort=rating from the reviews themselves."""
    rows = await session.execute(
        select(Review.avatar_id, func.count(), func.sum(Review.rating))
        .where(Review.hidden_at.is_(None))
        .group_by(Review.avatar_id)
    )
    ranked = sorted(((prior.score(count, total) or 0, avatar) for avatar, count, total in rows), reverse=True)
    top = [avatar for _, avatar in ranked[:limit]]
    await session.execute(
        select(Avatar, MarketAvatar).join(MarketAvatar, MarketAvatar.avatar_id == Avatar.id).where(Avatar.id.in_(top))
    )
    return top


async def recent_ranking_from_raw(session: AsyncSession, sort: str, limit: int = 20) -> list[str]:
    """The first page of sort=volume_24h or chats_24h as it was counted before the hourly rollups: every listed
    avatar's trades and fans' messages of the sliding 24 h, then the page's distinct chatters."""
    since = datetime.now(UTC) - timedelta(days=1)
    listed = [avatar for (avatar,) in await session.execute(select(Avatar.id).where(Avatar.listed_at.is_not(None)))]
    volume: dict[str, int] = defaultdict(int)
    for avatar, amount in await session.execute(
        select(Trade.avatar_id, Trade.eth_amount).where(Trade.timestamp >= since, Trade.avatar_id.in_(listed))
    ):
        volume[avatar] += amount
    asked = (ChatMessage.role == Role.user) & (ChatMessage.created_at >= since)
    chats = dict(
        (
            await session.execute(
                select(ChatMessage.avatar_id, func.count())
                .where(asked, ChatMessage.avatar_id.in_(listed))
                .group_by(ChatMessage.avatar_id)
            )
        ).all()
    )
    figures = volume if sort == "volume_24h" else chats
    top = sorted(listed, key=lambda avatar: (figures.get(avatar, 0), avatar), reverse=True)[:limit]
    await session.execute(
        select(ChatMessage.avatar_id, func.count(ChatMessage.fan.distinct()))
        .where(asked, ChatMessage.avatar_id.in_(top))
        .group_by(ChatMessage.avatar_id)
    )
    return top


# ---------------------------------------------------------------- timing

WINDOWS = (network.Window.d30, network.Window.d7, network.Window.h24)


@dataclass
class Timing:
    p50: float  # ms
    p99: float

    def __str__(self) -> str:
        return f"p50 {self.p50:7.1f} ms  p99 {self.p99:7.1f} ms"


async def timed(call: Callable[[], Awaitable[Any]], repeat: int) -> Timing:
    await call()  # warm: connections, statement caches, the app's first reads
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return Timing(statistics.median(times), statistics.quantiles(times, n=100, method="inclusive")[98])


async def measure(name: str, database_url: str, chain: Any, scale: float, repeat: int) -> None:
    await asyncio.to_thread(migrate.upgrade, database_url)  # Alembic runs an event loop of its own
    engine = create_engine(database_url)
    started = time.perf_counter()
    await populate(engine, scale)
    print(
        f"[{name}] bulk-inserted in {time.perf_counter() - started:.0f} s (load average {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    sessions = session_factory(engine)
    today = datetime.now(UTC).date()
    prior = Prior(3.0, 5)
    raw_repeat = max(3, repeat // 10)
    rows: list[tuple[str, Timing]] = []
    for cache_s in (0, 15):
        settings = Settings(
            database_url=database_url,
            auto_migrate=False,
            indexer_poll_s=0,
            autoscale_tick_s=0,
            network_usage_cache_s=cache_s,
        )
        app = create_app(settings, chain=chain)
        async with AsyncTestClient(app=app) as client:
            await network_upkeep.catch_up(sessions, datetime.now(UTC))  # the app's upkeep done before timing

            async def get(path: str, client: AsyncTestClient[Any] = client) -> None:
                response = await client.get(path)
                assert response.status_code == 200, response.text

            for window in WINDOWS:
                path = f"/api/network/usage?window={window.value}"
                label = "from the rollups" if cache_s == 0 else "served (cached 15 s)"
                rows.append((f"GET {path}, {label}", await timed(lambda path=path: get(path), repeat)))
            if cache_s:
                continue

            async def first_of_the_day(get: Callable[[str], Awaitable[None]] = get) -> None:
                async with sessions() as session:  # the window last built yesterday: answered as it is
                    await session.execute(
                        text("UPDATE network_window SET last_day = :day WHERE days = 30"),
                        {"day": today - timedelta(days=1)},
                    )
                    await session.commit()
                await get("/api/network/usage?window=30d")

            rows.append(
                (
                    "GET /api/network/usage?window=30d, first of a UTC day",
                    await timed(first_of_the_day, raw_repeat),
                )
            )
            async with sessions() as session:  # the window's totals are today's: built for today again
                await session.execute(text("UPDATE network_window SET last_day = :day WHERE days = 30"), {"day": today})
                await session.commit()
            for sort in ("rating", "market_cap", "volume_24h", "chats_24h"):
                path = f"/api/avatars?sort={sort}"
                rows.append((f"GET {path}", await timed(lambda path=path: get(path), repeat)))

    async def day_rebuild() -> None:
        async with sessions() as session:  # as once a UTC day begins
            await session.execute(text("UPDATE network_window SET last_day = NULL WHERE days = 30"))
            await session.commit()
        await network_upkeep.catch_up(sessions, datetime.now(UTC))

    async def first_summing() -> None:
        async with sessions() as session:  # as after the migration: the recent totals not summed yet
            await session.execute(text("DELETE FROM network_avatar_recent"))
            await session.execute(text("UPDATE network_recent_hours SET first_hour = NULL"))
            await session.commit()
        await network_upkeep.move_hours(sessions, datetime.now(UTC))

    rows.append(
        ("upkeep (background): the 30d window summed again (a new UTC day)", await timed(day_rebuild, raw_repeat))
    )
    rows.append(("upkeep (background): the recent hours summed from scratch", await timed(first_summing, raw_repeat)))

    async def raw_usage(window: network.Window) -> None:
        async with sessions() as session:
            await usage_from_raw(session, window, today)

    async def raw_rating() -> None:
        async with sessions() as session:
            await rating_ranking_from_raw(session, prior)

    raw = {window.value: await timed(lambda window=window: raw_usage(window), raw_repeat) for window in WINDOWS}
    raw["rating"] = await timed(raw_rating, raw_repeat)
    for sort in ("volume_24h", "chats_24h"):

        async def raw_recent(sort: str = sort) -> None:
            async with sessions() as session:
                await recent_ranking_from_raw(session, sort)

        raw[sort] = await timed(raw_recent, raw_repeat)
    await engine.dispose()
    print(
        f"[{name}] over {repeat} requests each, the raw tables over {raw_repeat} (goal: p50 ≤ 20 ms; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):"
    )
    for label, timing in rows:
        key = next((key for key in raw if f"window={key}" in label or f"sort={key}" in label), None)
        beside = ""
        if key is not None and "upkeep" not in label:
            baseline = raw[key]
            beside = f"   raw tables p50 {baseline.p50:8.1f} ms  ({baseline.p50 / timing.p50:6.1f}×)"
        print(f"  {label:<66} {timing}{beside}", flush=True)


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="twin-bench-network-") as workdir:
        embedded = EmbeddedChain.start(Settings(chain_state_dir=Path(workdir) / "chain"))
        try:
            chain = chain_from_embedded(embedded)
            print(
                f"scale {args.scale}: {int(AVATARS * args.scale):,} avatars, {int(TRADES * args.scale):,} trades, "
                f"{2 * int(TURNS * args.scale):,} messages, {int(REVIEWS * args.scale):,} reviews",
                flush=True,
            )
            await measure("SQLite", f"sqlite+aiosqlite:///{workdir}/bench.db", chain, args.scale, args.repeat)
            if server_url := os.environ.get("TWIN_BENCH_DATABASE_URL"):
                url = make_url(server_url)
                scratch = f"twin_bench_network_{os.getpid()}"
                admin = create_engine(server_url)
                async with admin.connect() as connection:
                    await connection.execution_options(isolation_level="AUTOCOMMIT")
                    await connection.execute(text(f'CREATE DATABASE "{scratch}"'))
                try:
                    await measure(
                        "PostgreSQL",
                        url.set(database=scratch).render_as_string(hide_password=False),
                        chain,
                        args.scale,
                        args.repeat,
                    )
                finally:
                    async with admin.connect() as connection:
                        await connection.execution_options(isolation_level="AUTOCOMMIT")
                        await connection.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
                    await admin.dispose()
            await chain.close()
        finally:
            embedded.close()


def main() -> None:
    logging.disable(logging.INFO)  # a line per request would drown the figures
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full data set (default 1)")
    parser.add_argument("--repeat", type=int, default=50, help="requests timed per figure (default 50)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
