"""Keeping the rollups: each event adds itself (or, undone by a re-org, takes itself back out) in the
transaction that stores the event, so a rollup is never ahead of or behind what it counts — across
restarts too. Rows are locked for the change (``FOR UPDATE`` where the database has it; SQLite has a
single writer), created first if missing, and wei is added in Python: exact on every database.

Lock order, so that concurrent writers never wait on each other in a cycle: an avatar's
``NetworkAvatar`` rows before its ``AvatarDay`` rows (both sorted when several), then the chatters',
the network day's and the model's."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from sqlalchemy import select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from app.network.models import AvatarChatter, AvatarDay, Chatter, ModelDay, NetworkAvatar, NetworkDay, NodeDay

Row = TypeVar("Row", bound=SQLModel)
BATCH = 1000  # rows per statement: well below any database's limit on bound values


def utc_day(moment: datetime) -> date:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).date()


def _dialect_name(session: AsyncSession) -> str:
    assert session.bind is not None, "the app's sessions are bound to its engine"
    return session.bind.dialect.name


async def _locked(session: AsyncSession, table: type[Row], **key: Any) -> Row:
    """The row with primary key ``key``, created with its defaults if missing, locked until commit."""
    dialect = postgresql if _dialect_name(session) == "postgresql" else sqlite
    await session.execute(dialect.insert(table).values(**key).on_conflict_do_nothing())
    query = select(table).filter_by(**key).with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(query)).one()


async def _locked_rows(
    session: AsyncSession, table: type[Row], columns: tuple[str, ...], keys: Sequence[tuple[Any, ...]]
) -> dict[tuple[Any, ...], Row]:
    """:func:`_locked` for many rows at once (a batch of trades): two statements per thousand rows."""
    dialect = postgresql if _dialect_name(session) == "postgresql" else sqlite
    key_columns = [getattr(table, column) for column in columns]
    rows: dict[tuple[Any, ...], Row] = {}
    for start in range(0, len(keys), BATCH):
        chunk = sorted(keys[start : start + BATCH])
        await session.execute(
            dialect.insert(table)
            .values([dict(zip(columns, key, strict=True)) for key in chunk])
            .on_conflict_do_nothing()
        )
        query = (
            select(table)
            .where(tuple_(*key_columns).in_(chunk))
            .order_by(*key_columns)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        for row in await session.scalars(query):
            rows[tuple(getattr(row, column) for column in columns)] = row
    return rows


# ---------------------------------------------------------------- chats


async def record_turn(
    session: AsyncSession,
    *,
    avatar_id: str,
    fan: str,
    model: str | None,
    ended_at: datetime,
    replied: bool,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    paid_wei: int,
) -> None:
    """A fan's message whose turn ended at ``ended_at``: with a verified reply (``replied``) or not; paid or not."""
    day = utc_day(ended_at)
    firsts = await _locked(session, NetworkAvatar, avatar_id=avatar_id)  # first: the lock order (module doc)
    if firsts.first_chat_at is None or utc_day(firsts.first_chat_at) > day:
        firsts.first_chat_at = ended_at
    avatar_day = await _locked(session, AvatarDay, avatar_id=avatar_id, day=day)
    avatar_day.chats += 1
    chatter = await session.get(AvatarChatter, (avatar_id, fan), with_for_update=True)
    if chatter is None:
        session.add(AvatarChatter(avatar_id=avatar_id, fan=fan, first_day=day, last_day=day, chats=1))
        avatar_day.chatters += 1
    else:
        chatter.chats += 1
        if day > chatter.last_day:  # a turn can end a moment after a later one, across midnight: counted once
            chatter.last_day, chatter.active_days = day, chatter.active_days + 1
            avatar_day.chatters += 1
    await _network_chatter(session, fan, day)
    if model:
        model_day = await _locked(session, ModelDay, model=model, day=day)
        model_day.replies += replied
        model_day.failed += not replied
        model_day.prompt_tokens += prompt_tokens or 0
        model_day.completion_tokens += completion_tokens or 0
        model_day.spend += paid_wei
        model_day.paid_replies += paid_wei > 0


async def _network_chatter(session: AsyncSession, fan: str, day: date) -> None:
    chatter = await session.get(Chatter, fan, with_for_update=True)
    if chatter is not None and day <= chatter.last_day:
        return
    if chatter is None:
        session.add(Chatter(fan=fan, first_day=day, last_day=day))
    else:
        chatter.last_day = day
    network_day = await _locked(session, NetworkDay, day=day)
    network_day.chatters += 1


# ---------------------------------------------------------------- nodes


async def record_node_outcome(session: AsyncSession, *, node: str, at: datetime, served: bool, paid_wei: int) -> None:
    """A reply a node served (and what it was paid), or a failure of the node to serve one."""
    node_day = await _locked(session, NodeDay, node=node, day=utc_day(at))
    node_day.replies += served
    node_day.failures += not served
    node_day.earned += paid_wei


# ---------------------------------------------------------------- the market


async def record_listed(session: AsyncSession, *, avatar_id: str, creator: str, at: datetime | None) -> None:
    """An avatar created on-chain (``at``), or its creation undone by a re-org (``at`` None)."""
    firsts = await _locked(session, NetworkAvatar, avatar_id=avatar_id)
    firsts.creator, firsts.listed_at = creator, at


async def apply_trades(
    session: AsyncSession, trades: Sequence[Mapping[str, Any]], *, direction: int, creators: Mapping[str, str]
) -> None:
    """Trade rows (as the projection stores them) added to the day rollups (``direction`` +1), or taken back
    out when a re-org removed their blocks (-1, after they were deleted and :func:`reset_first_outside_buys`
    was told what remains). ``creators``: each traded avatar's creator, to tell an outside buyer's first key."""
    if direction > 0:
        await _first_outside_buys(session, trades, creators=creators)
    by_day: dict[tuple[str, date], list[Mapping[str, Any]]] = defaultdict(list)
    for trade in trades:
        by_day[trade["avatar_id"], utc_day(trade["timestamp"])].append(trade)
    rows = await _locked_rows(session, AvatarDay, ("avatar_id", "day"), sorted(by_day))
    for key, group in by_day.items():
        avatar_day = rows[key]
        avatar_day.trades += direction * len(group)
        avatar_day.volume += direction * sum(trade["eth_amount"] for trade in group)
        avatar_day.creator_fees += direction * sum(trade["creator_fee"] for trade in group)


async def _first_outside_buys(
    session: AsyncSession, trades: Sequence[Mapping[str, Any]], *, creators: Mapping[str, str]
) -> None:
    """Each avatar's first outside buy: set by the first one seen."""
    outside: dict[str, datetime] = {}
    for trade in trades:
        if trade["is_buy"] and trade["trader"] != creators.get(trade["avatar_id"]):
            outside.setdefault(trade["avatar_id"], trade["timestamp"])
    rows = await _locked_rows(session, NetworkAvatar, ("avatar_id",), [(avatar_id,) for avatar_id in outside])
    for avatar_id, at in outside.items():
        firsts = rows[avatar_id,]
        if firsts.first_outside_buy_at is None:
            firsts.first_outside_buy_at = at


async def reset_first_outside_buys(session: AsyncSession, firsts: Mapping[str, datetime | None]) -> None:
    """After a re-org: each avatar's first outside buy, found again by the market among the trades that remain
    (this package does not read the market's tables: the market's projection imports it)."""
    for avatar_id in sorted(firsts):
        row = await _locked(session, NetworkAvatar, avatar_id=avatar_id)
        row.first_outside_buy_at = firsts[avatar_id]
