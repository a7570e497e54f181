"""Across a UTC midnight: requests answer from the windows as built (ending yesterday) until the background upkeep
rebuilds them, never rebuilding themselves, and then answer the new day's windows; figures stay equal to the day
rollups on both sides. A request still rebuilds a window never built, or one the upkeep left more than a day behind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.engine import create_engine, session_factory
from app.network.models import UsageWindow
from app.network.rollups import apply_trades, record_listed, record_turn, settle
from app.network.upkeep import catch_up
from app.network.usage import Window, network_usage
from tests.network.recount import windows

EVENING = datetime(2026, 12, 7, 23, 30, tzinfo=UTC)
AFTER_MIDNIGHT = datetime(2026, 12, 8, 0, 0, 30, tzinfo=UTC)
AVATAR, CREATOR, FAN = "0x" + "11" * 16, "0x" + "cc" * 20, "0x" + "aa" * 20


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


async def activity(sessions: async_sessionmaker[AsyncSession], at: datetime, chats: int, fee: int) -> None:
    async with sessions() as session:
        for _ in range(chats):
            await record_turn(
                session,
                avatar_id=AVATAR,
                fan=FAN,
                model=None,
                ended_at=at,
                replied=True,
                prompt_tokens=None,
                completion_tokens=None,
                paid_wei=0,
            )
        trade = {"avatar_id": AVATAR, "timestamp": at, "eth_amount": 20 * fee, "creator_fee": fee}
        await apply_trades(
            session, [trade | {"is_buy": False, "trader": CREATOR}], direction=+1, creators={AVATAR: CREATOR}
        )
        await settle(session)
        await session.commit()


async def figures(sessions: async_sessionmaker[AsyncSession], window: Window, now: datetime) -> tuple[object, ...]:
    async with sessions() as session:
        usage = await network_usage(session, window, now.date())
        kept = await windows(session)
        built = await session.scalar(select(UsageWindow.last_day).where(UsageWindow.days == window.days))
    for totals in kept.values():
        assert totals["kept"] == totals["summed"]
    return usage.last_day, built, usage.chats, usage.creator_fees.total_wei, usage.distribution.active_avatars


async def test_requests_answer_from_the_windows_as_built_until_the_upkeep_rebuilds_them(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        await record_listed(session, avatar_id=AVATAR, creator=CREATOR, at=EVENING - timedelta(days=3))
        await settle(session)
        await session.commit()
    await catch_up(sessions, EVENING)
    await activity(sessions, EVENING, chats=2, fee=5)
    await activity(sessions, AFTER_MIDNIGHT, chats=1, fee=7)  # before the upkeep's round after midnight
    evening, morning = EVENING.date(), AFTER_MIDNIGHT.date()

    assert await figures(sessions, Window.h24, AFTER_MIDNIGHT) == (evening, evening, 2, "5", 1)  # yesterday, whole
    assert await figures(sessions, Window.d7, AFTER_MIDNIGHT) == (evening, evening, 2, "5", 1)

    await catch_up(sessions, AFTER_MIDNIGHT)

    assert await figures(sessions, Window.h24, AFTER_MIDNIGHT) == (morning, morning, 1, "7", 1)
    assert await figures(sessions, Window.d7, AFTER_MIDNIGHT) == (morning, morning, 3, "12", 1)


async def test_a_request_rebuilds_a_window_never_built_or_left_behind(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await activity(sessions, EVENING, chats=1, fee=3)
    assert await figures(sessions, Window.d30, EVENING) == (EVENING.date(), EVENING.date(), 1, "3", 1)
    later = EVENING + timedelta(days=2)  # the upkeep stopped: more than a day behind
    assert await figures(sessions, Window.d30, later) == (later.date(), later.date(), 1, "3", 1)
