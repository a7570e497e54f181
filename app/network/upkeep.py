"""Moving the network's rollups on with the clock in the background, so that no request pays for it: the rankings'
recent hours once an hour begins (see ``RecentHours``), the usage windows' totals once a UTC day does (see
``UsageWindow``). A lifespan task on every worker: each move is locked and a no-op once another worker made it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.engine import claim_writer
from app.db.models import utc_now
from app.network.rollups import advance_recent, rebuild_window, utc_hour
from app.network.usage import Window

log = structlog.get_logger()
AFTER_THE_HOUR_S = 1.0  # wakes a moment after an hour begins: a clock a little behind still sees the new hour
RETRY_S = 30.0  # after a failure (the database down): soon, not at the next hour


async def _in_transaction(
    sessions: async_sessionmaker[AsyncSession], write: Callable[[AsyncSession], Awaitable[None]]
) -> None:
    async with sessions() as session:
        await claim_writer(session)
        await write(session)
        await session.commit()


async def move_hours(sessions: async_sessionmaker[AsyncSession], now: datetime) -> None:
    """The rankings' recent hours moved to ``now``'s: one short transaction (the lifespan's before serving)."""
    await _in_transaction(sessions, lambda session: advance_recent(session, now))


async def before_serving(sessions: async_sessionmaker[AsyncSession], now: datetime) -> None:
    """The rankings' 24 h made current before the first request, unless the database is down now: then a log line,
    and :func:`run` moves them once it answers (the process still starts; ``/readyz`` says why)."""
    try:
        await move_hours(sessions, now)
    except (SQLAlchemyError, OSError) as error:
        log.warning("network_upkeep_skipped", error=repr(error)[:200])


async def catch_up(sessions: async_sessionmaker[AsyncSession], now: datetime) -> None:
    """Everything due at ``now``: the recent hours, then each window summed again if it ends before today (a
    transaction each, so that the writer is held for one window at a time). Requests meanwhile answer from the
    windows as they were built."""
    await move_hours(sessions, now)
    for window in Window:
        await _in_transaction(sessions, partial(rebuild_window, days=window.days, last_day=now.date()))


def until_next_hour(now: datetime) -> float:
    return (utc_hour(now) + timedelta(hours=1) - now).total_seconds() + AFTER_THE_HOUR_S


async def run(sessions: async_sessionmaker[AsyncSession], clock: Callable[[], datetime] = utc_now) -> None:
    """:func:`catch_up` now (at start), then at each hour's start, forever."""
    while True:
        try:
            await catch_up(sessions, clock())
        except Exception as error:  # noqa: BLE001 - the database is down: tried again soon
            log.warning("network_upkeep_failed", error=repr(error)[:200])
            await asyncio.sleep(RETRY_S)
            continue
        await asyncio.sleep(until_next_hour(clock()))
