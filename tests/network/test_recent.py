"""The rankings' last 24 hours from the hourly rollups: events add to the recent totals, the hours that leave are
taken back out when the recent hours move forward, a re-org takes its trades back out of both, and the kept totals
always equal a sum of the hours they cover."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.engine import create_engine, session_factory
from app.network import recent
from app.network.models import AvatarRecent
from app.network.rollups import advance_recent, apply_trades, record_turn, settle
from app.network.upkeep import AFTER_THE_HOUR_S, until_next_hour
from tests.network.recount import recent_totals

NOW = datetime(2026, 12, 7, 15, 40, tzinfo=UTC)
BUSY, QUIET = "0x" + "11" * 16, "0x" + "22" * 16
ADA, BOB = "0x" + "aa" * 20, "0x" + "bb" * 20


@pytest.fixture
async def session(database_url: str) -> AsyncIterator[AsyncSession]:
    engine = create_engine(database_url)
    async with session_factory(engine)() as session:
        await advance_recent(session, NOW)  # summed from NOW's hours (none yet)
        await session.commit()
        yield session
    await engine.dispose()


async def turn(session: AsyncSession, avatar_id: str, fan: str, at: datetime) -> None:
    await record_turn(
        session,
        avatar_id=avatar_id,
        fan=fan,
        model=None,
        ended_at=at,
        replied=True,
        prompt_tokens=None,
        completion_tokens=None,
        paid_wei=0,
    )


def trade(avatar_id: str, at: datetime, wei: int) -> dict[str, object]:
    return {"avatar_id": avatar_id, "timestamp": at, "eth_amount": wei, "creator_fee": 0, "is_buy": True, "trader": ADA}


async def kept(session: AsyncSession) -> dict[str, recent.Recent]:
    totals = await recent_totals(session)
    assert totals["kept"] == totals["summed"]
    return await recent.recent_of(session, [BUSY, QUIET])


async def test_the_last_24_hours_move_by_the_hour_and_follow_a_reorg(session: AsyncSession) -> None:
    big = 3 * 10**20  # past 2**64: summed exactly
    await turn(session, BUSY, ADA, NOW - timedelta(hours=23, minutes=30))  # 15:10 yesterday, the first hour kept
    await turn(session, BUSY, BOB, NOW - timedelta(hours=1))
    await turn(session, BUSY, ADA, NOW)
    await turn(session, QUIET, BOB, NOW - timedelta(hours=30))  # before the recent hours: in its hour only
    await turn(session, QUIET, ADA, NOW - timedelta(hours=23, minutes=30))  # her only chat with it: leaves at 16:00
    trades = [trade(BUSY, NOW - timedelta(hours=23, minutes=30), big), trade(QUIET, NOW, 5)]
    await apply_trades(session, trades, direction=+1, creators={})
    await settle(session)
    await session.commit()

    assert await kept(session) == {
        BUSY: recent.Recent(chats=3, chatters=2, volume=big),
        QUIET: recent.Recent(chats=1, chatters=1, volume=5),
    }

    await advance_recent(session, NOW + timedelta(minutes=19))  # the same hour: nothing leaves
    await advance_recent(session, NOW + timedelta(minutes=20))  # 16:00: yesterday's 15:00 leaves
    await session.commit()
    assert await kept(session) == {
        BUSY: recent.Recent(chats=2, chatters=2, volume=0),  # Ada chatted again since
        QUIET: recent.Recent(chats=0, chatters=0, volume=5),  # Ada's chat with it left, and she with it
    }

    await apply_trades(session, trades, direction=-1, creators={})  # a re-org: the hour that left stays out
    await settle(session)
    await session.commit()
    assert await kept(session) == {BUSY: recent.Recent(chats=2, chatters=2), QUIET: recent.Recent()}
    assert await session.scalar(select(AvatarRecent).where(AvatarRecent.avatar_id == QUIET)) is None  # back to zero

    await advance_recent(session, NOW + timedelta(days=3))  # after a long stop: every hour missed leaves
    await session.commit()
    assert await kept(session) == {BUSY: recent.Recent(), QUIET: recent.Recent()}
    assert (await session.scalars(select(AvatarRecent))).all() == []


def test_the_upkeep_wakes_a_moment_after_each_hour_begins() -> None:
    assert until_next_hour(NOW) == 20 * 60 + AFTER_THE_HOUR_S
    assert until_next_hour(NOW.replace(minute=0)) == 3600 + AFTER_THE_HOUR_S


async def test_before_the_first_sum_the_figures_read_as_none_yet_without_failing(database_url: str) -> None:
    # The upkeep could not sum the recent hours (a database down as the process started): events still count in
    # their hours and the chatters, a read answers (zeros) instead of failing, and the first sum counts them.
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            await turn(session, BUSY, ADA, datetime.now(UTC))
            await settle(session)
            await session.commit()
            figures = await recent.recent_of(session, [BUSY, QUIET])
            assert figures[BUSY] == recent.Recent()  # the totals come with the first sum
            assert figures[QUIET] == recent.Recent()
            await advance_recent(session, datetime.now(UTC))
            await session.commit()
            assert (await recent.recent_of(session, [BUSY]))[BUSY] == recent.Recent(chats=1, chatters=1, volume=0)
    finally:
        await engine.dispose()
