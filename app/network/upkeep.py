"""Moving the network's rollups on with the clock in the background, so that no request pays for it: the rankings'
recent hours once an hour begins (see ``RecentHours``). A lifespan task on every worker: each move is locked and a
no-op once another worker made it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.engine import claim_writer
from app.db.models import utc_now
from app.network.rollups import advance_recent, utc_hour

log = structlog.get_logger()
AFTER_THE_HOUR_S = 1.0  # wakes a moment after an hour begins: a clock a little behind still sees the new hour
RETRY_S = 30.0  # after a failure (the database down): soon, not at the next hour


async def catch_up(sessions: async_sessionmaker[AsyncSession], now: datetime) -> None:
    """Everything due at ``now`` moved, in one short transaction."""
    async with sessions() as session:
        await claim_writer(session)
        await advance_recent(session, now)
        await session.commit()


def until_next_hour(now: datetime) -> float:
    return (utc_hour(now) + timedelta(hours=1) - now).total_seconds() + AFTER_THE_HOUR_S


async def run(sessions: async_sessionmaker[AsyncSession], clock: Callable[[], datetime] = utc_now) -> None:
    """:func:`catch_up` at each hour's start, forever (the lifespan made the first move before serving)."""
    while True:
        await asyncio.sleep(until_next_hour(clock()))
        while True:
            try:
                await catch_up(sessions, clock())
                break
            except Exception as error:  # noqa: BLE001 - the database is down: tried again soon
                log.warning("network_upkeep_failed", error=repr(error)[:200])
                await asyncio.sleep(RETRY_S)
