"""Keeping the rollups: each event adds itself (or, undone by a re-org, takes itself back out) in the
transaction that stores the event, so a rollup is never ahead of or behind what it counts — across
restarts too. Rows are locked for the change (``FOR UPDATE`` where the database has it; SQLite has a
single writer), created first if missing, and wei is added in Python: exact on every database.

Lock order, so that concurrent writers never wait on each other in a cycle: an avatar's
``NetworkAvatar`` rows before its ``AvatarDay`` rows, then its ``AvatarHour`` rows (each sorted when several),
then the chatters', then the network's days (sorted), the windows' (shared: see ``UsageWindow``), the recent
hours' (shared: see ``RecentHours``) with the avatars' recent totals (sorted), and the model's. The network's
days, the windows and the recent totals are touched by everyone (each chat turn, each batch of blocks), so their
changes wait in
the session (:func:`_pending`) and are written last, by :func:`settle` — which each function here calls before
it returns, except those the indexer's projection calls several times in one transaction: it calls
:func:`settle` once, at the end."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, func, insert, literal, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from app.network import spread
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

Row = TypeVar("Row", bound=SQLModel)
RECENT_HOURS = 24  # the rankings' "24 h": the current UTC hour and the 23 before it (see RecentHours)
BATCH = 1000  # rows per statement: well below any database's limit on bound values
PENDING = "network_pending"  # the session.info key of the changes that wait for settle()


def utc_day(moment: datetime) -> date:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).date()


def utc_hour(moment: datetime) -> datetime:
    """The start of ``moment``'s UTC hour."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _dialect_name(session: AsyncSession) -> str:
    assert session.bind is not None, "the app's sessions are bound to its engine"
    return session.bind.dialect.name


def _dialect(session: AsyncSession) -> Any:
    """The dialect module whose ``insert`` has ``on_conflict_*``."""
    return postgresql if _dialect_name(session) == "postgresql" else sqlite


async def _locked(session: AsyncSession, table: type[Row], *, shared: bool = False, **key: Any) -> Row:
    """The row with primary key ``key``, created with its defaults if missing, locked until commit (``shared``: a
    share lock) — one statement when it exists, as it mostly does."""
    query = select(table).filter_by(**key).with_for_update(read=shared).execution_options(populate_existing=True)
    row = (await session.scalars(query)).one_or_none()
    if row is None:
        await session.execute(_dialect(session).insert(table).values(**key).on_conflict_do_nothing())
        row = (await session.scalars(query)).one()
    return row


async def _locked_rows(
    session: AsyncSession, table: type[Row], columns: tuple[str, ...], keys: Sequence[tuple[Any, ...]]
) -> dict[tuple[Any, ...], Row]:
    """:func:`_locked` for many rows at once (a batch of trades): two statements per thousand rows."""
    dialect = _dialect(session)
    key_columns = [getattr(table, column) for column in columns]
    rows: dict[tuple[Any, ...], Row] = {}
    for start in range(0, len(keys), BATCH):
        chunk = sorted(keys[start : start + BATCH])

        async def lock(wanted: list[tuple[Any, ...]]) -> None:
            query = (
                select(table)
                .where(tuple_(*key_columns).in_(wanted))
                .order_by(*key_columns)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
            for row in await session.scalars(query):
                rows[tuple(getattr(row, column) for column in columns)] = row

        await lock(chunk)
        if missing := [key for key in chunk if key not in rows]:  # created, then locked like the others
            await session.execute(
                dialect.insert(table)
                .values([dict(zip(columns, key, strict=True)) for key in missing])
                .on_conflict_do_nothing()
            )
            await lock(missing)
    return rows


@dataclass
class Pending:
    """Changes to the network's days and to the windows, waiting to be written by :func:`settle`."""

    days: dict[date, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    avatar_chats: dict[tuple[str, date], int] = field(default_factory=lambda: defaultdict(int))
    creator_fees: dict[tuple[str, date], int] = field(default_factory=lambda: defaultdict(int))
    recent_chats: dict[tuple[str, datetime], int] = field(default_factory=lambda: defaultdict(int))
    recent_volume: dict[tuple[str, datetime], int] = field(default_factory=lambda: defaultdict(int))
    # (avatar, fan): their latest chat's hour before this transaction (None: a new chatter) and after it
    chatter_hours: dict[tuple[str, str], tuple[datetime | None, datetime]] = field(default_factory=dict)


def _pending(session: AsyncSession) -> Pending:
    """The session's pending changes, kept with the transaction they belong to: a rolled-back transaction's
    are never written by the next."""
    transaction = session.sync_session.get_transaction()
    kept = session.info.get(PENDING)
    if kept is None or kept[0] is not transaction:
        kept = session.info[PENDING] = (transaction, Pending())
    pending: Pending = kept[1]
    return pending


def _listing(firsts: NetworkAvatar) -> tuple[date, dict[str, int]] | None:
    """What an avatar adds to its listing day's counts of new avatars, first chats and first outside buyers."""
    if firsts.listed_at is None:
        return None
    counts = {"new_avatars": 1, "new_chatted": firsts.first_chat_at is not None}
    return utc_day(firsts.listed_at), {**counts, "new_bought": firsts.first_outside_buy_at is not None}


def _relisted(session: AsyncSession, before: tuple[date, dict[str, int]] | None, firsts: NetworkAvatar) -> None:
    """An avatar's listing-day counts moved from ``before`` (:func:`_listing` before the change) to now."""
    days = _pending(session).days
    for listing, sign in ((before, -1), (_listing(firsts), +1)):
        if listing is not None:
            day, counts = listing
            for name, count in counts.items():
                days[day][name] += sign * count


async def settle(session: AsyncSession) -> None:
    """Writes the changes waiting in the session to the network's days and to the windows that cover them."""
    kept = session.info.pop(PENDING, None)
    if kept is None or kept[0] is not session.sync_session.get_transaction():
        return
    pending: Pending = kept[1]
    changed = sorted((day,) for day, counts in pending.days.items() if any(counts.values()))
    for (day,), row in (await _locked_rows(session, NetworkDay, ("day",), changed)).items():
        for name, delta in pending.days[day].items():
            setattr(row, name, getattr(row, name) + delta)
    if pending.avatar_chats or pending.creator_fees:
        await _settle_windows(session, pending)
    if pending.recent_chats or pending.recent_volume:
        await _settle_recent(session, pending)


async def _settle_windows(session: AsyncSession, pending: Pending) -> None:
    covering = [
        (window.days, window.last_day)
        for window in await session.scalars(
            select(UsageWindow).order_by(col(UsageWindow.days)).with_for_update(read=True)  # see UsageWindow
        )
        if window.last_day is not None
    ]
    chats: dict[tuple[int, str], int] = defaultdict(int)
    fees: dict[tuple[int, str], int] = defaultdict(int)
    for days, last_day in covering:
        first_day = last_day - timedelta(days=days - 1)
        for (avatar_id, day), count in pending.avatar_chats.items():
            if first_day <= day <= last_day:
                chats[days, avatar_id] += count
        for (creator, day), amount in pending.creator_fees.items():
            if first_day <= day <= last_day:
                fees[days, creator] += amount
    if chats:
        upsert = (
            _dialect(session)
            .insert(AvatarWindow)
            .values(
                [
                    {"days": days, "avatar_id": avatar_id, "chats": count}
                    for (days, avatar_id), count in sorted(chats.items())
                ]
            )
        )
        await session.execute(
            upsert.on_conflict_do_update(
                index_elements=["days", "avatar_id"], set_={"chats": AvatarWindow.chats + upsert.excluded.chats}
            )
        )
    totals = await _locked_rows(session, CreatorWindow, ("days", "creator"), sorted(key for key in fees if fees[key]))
    for key, total in totals.items():
        total.creator_fees += fees[key]
    for days in sorted({days for days, _ in totals}):
        await _summarise_fees(session, days)


async def _summarise_fees(session: AsyncSession, days: int) -> None:
    """The window's ``FeeWindow`` summed again from its creators' fees (flushed first: as just changed)."""
    fees = col(CreatorWindow.creator_fees)
    amounts = list(await session.scalars(select(fees).where(col(CreatorWindow.days) == days, fees > 0).order_by(fees)))
    counts = spread.histogram(amounts)
    summary = await _locked(session, FeeWindow, days=days)
    summary.creators = len(amounts)
    summary.median, summary.p90 = spread.quantile(amounts, 0.5), spread.quantile(amounts, 0.9)
    summary.largest = amounts[-1] if amounts else 0
    summary.top_10 = sum(amounts[-10:])
    summary.hhi, summary.gini = spread.hhi_of(counts), spread.gini_of(counts)


async def _settle_recent(session: AsyncSession, pending: Pending) -> None:
    """The changes in the recent hours (from ``RecentHours.first_hour`` on) added to the avatars' recent totals."""
    first_hour = (await _locked(session, RecentHours, shared=True, id=1)).first_hour  # see RecentHours
    if first_hour is None:  # not summed yet: the first move sums what this transaction commits
        return
    chats: dict[str, int] = defaultdict(int)
    volume: dict[str, int] = defaultdict(int)
    chatters: dict[str, int] = defaultdict(int)
    for (avatar_id, hour), count in pending.recent_chats.items():
        if hour >= first_hour:
            chats[avatar_id] += count
    for (avatar_id, hour), amount in pending.recent_volume.items():
        if hour >= first_hour:
            volume[avatar_id] += amount
    for (avatar_id, _), (before, after) in pending.chatter_hours.items():  # a fan who was not among them now is
        if after >= first_hour and (before is None or before < first_hour):
            chatters[avatar_id] += 1
    await _add_recent(session, chats, volume, chatters)


async def _add_recent(
    session: AsyncSession, chats: Mapping[str, int], volume: Mapping[str, int], chatters: Mapping[str, int]
) -> None:
    """Changes (negative to take out) to the avatars' recent totals; a row left at zero is deleted (a missing row
    reads as zero)."""
    changed = sorted(
        (key,)
        for key in chats.keys() | volume.keys() | chatters.keys()
        if chats.get(key, 0) or volume.get(key, 0) or chatters.get(key, 0)
    )
    for (avatar_id,), row in (await _locked_rows(session, AvatarRecent, ("avatar_id",), changed)).items():
        row.chats += chats.get(avatar_id, 0)
        row.volume += volume.get(avatar_id, 0)
        row.chatters += chatters.get(avatar_id, 0)
        if not (row.chats or row.volume or row.chatters):
            await session.delete(row)


async def rebuild_window(session: AsyncSession, days: int, last_day: date) -> None:
    """The window of ``days`` ending ``last_day`` summed again from the day rollups, unless another
    transaction just did: its row locked against every event's share lock, so none is lost or counted twice."""
    window = await _locked(session, UsageWindow, days=days)
    if window.last_day == last_day:
        return
    first_day = last_day - timedelta(days=days - 1)
    in_window = col(AvatarDay.day).between(first_day, last_day)
    await session.execute(delete(AvatarWindow).where(col(AvatarWindow.days) == days))
    await session.execute(delete(CreatorWindow).where(col(CreatorWindow.days) == days))
    await session.execute(
        insert(AvatarWindow).from_select(
            ["days", "avatar_id", "chats"],
            select(literal(days), col(AvatarDay.avatar_id), func.sum(col(AvatarDay.chats)))
            .where(in_window, col(AvatarDay.chats) > 0)
            .group_by(col(AvatarDay.avatar_id)),
        )
    )
    earned: dict[str, int] = defaultdict(int)
    for creator, fees in await session.execute(  # wei: summed here, exact on every database
        select(col(NetworkAvatar.creator), col(AvatarDay.creator_fees))
        .outerjoin(NetworkAvatar, col(NetworkAvatar.avatar_id) == col(AvatarDay.avatar_id))
        .where(in_window, col(AvatarDay.trades) != 0)
    ):
        earned[creator or ""] += fees
    rows = [{"days": days, "creator": creator, "creator_fees": fees} for creator, fees in earned.items() if fees]
    for start in range(0, len(rows), BATCH):
        await session.execute(insert(CreatorWindow), rows[start : start + BATCH])
    await _summarise_fees(session, days)
    window.last_day = last_day


ONE_HOUR = timedelta(hours=1)


def recent_start(now: datetime) -> datetime:
    """The first of the recent hours at ``now``: ``RECENT_HOURS - 1`` hours before ``now``'s."""
    return utc_hour(now) - timedelta(hours=RECENT_HOURS - 1)


async def advance_recent(session: AsyncSession, now: datetime) -> None:
    """The recent hours moved to start ``RECENT_HOURS - 1`` hours before ``now``'s, under the lock every event
    shares: the hours they leave taken back out of the avatars' recent totals (a row left at zero deleted), with
    the chatters whose latest chat was in them, or, the first time, the hours from there on summed. A no-op when
    they already start there; after a long stop, every hour missed leaves at once."""
    start = recent_start(now)
    recent = await _locked(session, RecentHours, id=1)
    if recent.first_hour is not None and recent.first_hour >= start:
        return

    def leaving(hour: Any) -> Any:
        return hour >= start if recent.first_hour is None else hour.between(recent.first_hour, start - ONE_HOUR)

    sign = +1 if recent.first_hour is None else -1
    chats: dict[str, int] = defaultdict(int)
    volume: dict[str, int] = defaultdict(int)
    for avatar_id, count, amount in await session.execute(  # wei: summed here, exact on every database
        select(col(AvatarHour.avatar_id), col(AvatarHour.chats), col(AvatarHour.volume)).where(
            leaving(col(AvatarHour.hour))
        )
    ):
        chats[avatar_id] += sign * count
        volume[avatar_id] += sign * amount
    chatters = {
        avatar_id: sign * count
        for avatar_id, count in await session.execute(
            select(col(AvatarChatter.avatar_id), func.count())
            .where(leaving(col(AvatarChatter.last_hour)))
            .group_by(col(AvatarChatter.avatar_id))
        )
    }
    await _add_recent(session, chats, volume, chatters)
    recent.first_hour = start


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
    pending = _pending(session)  # once the transaction has begun: kept with it
    listing = _listing(firsts)
    if firsts.first_chat_at is None or utc_day(firsts.first_chat_at) > day:
        firsts.first_chat_at = ended_at
    _relisted(session, listing, firsts)
    avatar_day = await _locked(session, AvatarDay, avatar_id=avatar_id, day=day)
    avatar_day.chats += 1
    pending.days[day]["chats"] += 1
    pending.days[day]["active_avatars"] += avatar_day.chats == 1
    pending.avatar_chats[avatar_id, day] += 1
    hour = utc_hour(ended_at)
    avatar_hour = await _locked(session, AvatarHour, avatar_id=avatar_id, hour=hour)
    avatar_hour.chats += 1
    pending.recent_chats[avatar_id, hour] += 1
    chatter = await session.get(AvatarChatter, (avatar_id, fan), with_for_update=True)
    before = None if chatter is None else chatter.last_hour
    if chatter is None:
        session.add(AvatarChatter(avatar_id=avatar_id, fan=fan, first_day=day, last_day=day, chats=1, last_hour=hour))
        avatar_day.chatters += 1
    else:
        chatter.chats += 1
        chatter.last_hour = max(chatter.last_hour, hour)
        if day > chatter.last_day:  # a turn can end a moment after a later one, across midnight: counted once
            chatter.last_day, chatter.active_days = day, chatter.active_days + 1
            avatar_day.chatters += 1
    earlier = pending.chatter_hours.get((avatar_id, fan))  # this transaction's first change keeps its "before"
    after = hour if chatter is None else chatter.last_hour
    pending.chatter_hours[avatar_id, fan] = (before if earlier is None else earlier[0], after)
    await _network_chatter(session, fan, day)
    await settle(session)
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
    days = _pending(session).days
    if chatter is None:
        session.add(Chatter(fan=fan, first_day=day, last_day=day))
    else:
        days[chatter.last_day]["last_chatters"] -= 1
        chatter.last_day = day
    days[day]["last_chatters"] += 1
    days[day]["chatters"] += 1


# ---------------------------------------------------------------- nodes


async def record_node_outcome(session: AsyncSession, *, node: str, at: datetime, served: bool, paid_wei: int) -> None:
    """A reply a node served (and what it was paid), or a failure of the node to serve one."""
    node_day = await _locked(session, NodeDay, node=node, day=utc_day(at))
    node_day.replies += served
    node_day.failures += not served
    node_day.earned += paid_wei


# ---------------------------------------------------------------- the market


async def record_listed(session: AsyncSession, *, avatar_id: str, creator: str, at: datetime | None) -> None:
    """An avatar created on-chain (``at``), or its creation undone by a re-org (``at`` None). Then :func:`settle`."""
    firsts = await _locked(session, NetworkAvatar, avatar_id=avatar_id)
    listing = _listing(firsts)
    firsts.creator, firsts.listed_at = creator, at
    _relisted(session, listing, firsts)


async def apply_trades(
    session: AsyncSession, trades: Sequence[Mapping[str, Any]], *, direction: int, creators: Mapping[str, str]
) -> None:
    """Trade rows (as the projection stores them) added to the day rollups (``direction`` +1), or taken back
    out when a re-org removed their blocks (-1, after they were deleted and :func:`reset_first_outside_buys`
    was told what remains). ``creators``: each traded avatar's creator, to tell an outside buyer's first key and
    whose fees they are. Then :func:`settle`."""
    if direction > 0:
        await _first_outside_buys(session, trades, creators=creators)
    by_day: dict[tuple[str, date], list[Mapping[str, Any]]] = defaultdict(list)
    for trade in trades:
        by_day[trade["avatar_id"], utc_day(trade["timestamp"])].append(trade)
    rows = await _locked_rows(session, AvatarDay, ("avatar_id", "day"), sorted(by_day))
    pending = _pending(session)
    for (avatar_id, day), group in by_day.items():
        count, volume, fees = (
            direction * len(group),
            direction * sum(trade["eth_amount"] for trade in group),
            direction * sum(trade["creator_fee"] for trade in group),
        )
        avatar_day = rows[avatar_id, day]
        avatar_day.trades += count
        avatar_day.volume += volume
        avatar_day.creator_fees += fees
        network_day = pending.days[day]
        network_day["trades"] += count
        network_day["volume"] += volume
        network_day["creator_fees"] += fees
        pending.creator_fees[creators.get(avatar_id) or "", day] += fees
    by_hour: dict[tuple[str, datetime], int] = defaultdict(int)
    for trade in trades:
        by_hour[trade["avatar_id"], utc_hour(trade["timestamp"])] += direction * trade["eth_amount"]
    hours = await _locked_rows(session, AvatarHour, ("avatar_id", "hour"), sorted(by_hour))
    for key, volume in by_hour.items():
        hours[key].volume += volume
        pending.recent_volume[key] += volume


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
            listing = _listing(firsts)
            firsts.first_outside_buy_at = at
            _relisted(session, listing, firsts)


async def reset_first_outside_buys(session: AsyncSession, firsts: Mapping[str, datetime | None]) -> None:
    """After a re-org: each avatar's first outside buy, found again by the market among the trades that remain
    (this package does not read the market's tables: the market's projection imports it). Then :func:`settle`."""
    for avatar_id in sorted(firsts):
        row = await _locked(session, NetworkAvatar, avatar_id=avatar_id)
        listing = _listing(row)
        row.first_outside_buy_at = firsts[avatar_id]
        _relisted(session, listing, row)
