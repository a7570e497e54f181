"""Each window's summary of how creators' fees are spread is kept with the creators' totals — by the window's
rebuild, by trades and by a re-org — and always equals the old per-request pass over those totals."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.engine import create_engine, session_factory
from app.network.rollups import apply_trades, rebuild_window, record_listed, settle
from app.network.usage import Window, network_usage
from tests.network.recount import summarised, windows

NOW = datetime(2026, 12, 7, 15, 40, tzinfo=UTC)
CREATORS = ["0x" + f"{number:040x}" for number in range(1, 31)]


@pytest.fixture
async def session(database_url: str) -> AsyncIterator[AsyncSession]:
    engine = create_engine(database_url)
    async with session_factory(engine)() as session:
        yield session
    await engine.dispose()


def trades(rng: random.Random, count: int, days_back: int) -> list[dict[str, object]]:
    made = []
    for _ in range(count):
        avatar = rng.randrange(len(CREATORS) * 2)  # two avatars per creator
        fee = rng.choice((1, 10**15, rng.randrange(10**21)))  # ties, and sums past 2**64
        made.append(
            {
                "avatar_id": "0x" + f"{avatar:032x}",
                "timestamp": NOW - timedelta(days=rng.randrange(days_back), minutes=rng.randrange(600)),
                "eth_amount": 20 * fee,
                "creator_fee": fee,
                "is_buy": False,  # no outside buyers to follow here
                "trader": CREATORS[0],
            }
        )
    return made


async def check(session: AsyncSession) -> None:
    kept = await windows(session)
    assert set(kept) == {7, 30}
    for window in kept.values():
        assert window["kept"] == window["summed"]
    fees = (await network_usage(session, Window.d30, NOW.date())).creator_fees
    creators, median, p90, largest, top_10, hhi, gini = summarised(sorted(kept[30]["summed"][1].values()))
    assert (fees.creators, fees.median_wei, fees.p90_wei, fees.max_wei) == (
        creators,
        str(median),
        str(p90),
        str(largest),
    )
    assert (fees.hhi, fees.gini) == (hhi, gini)
    assert fees.top_10_share == round(top_10 / int(fees.total_wei), 4)


async def test_the_fee_summary_follows_rebuilds_trades_and_a_reorg(session: AsyncSession) -> None:
    rng = random.Random(17)
    creators = {"0x" + f"{avatar:032x}": CREATORS[avatar // 2] for avatar in range(len(CREATORS) * 2)}
    for avatar_id, creator in creators.items():  # whose fees a window's rebuild reads from the listings
        await record_listed(session, avatar_id=avatar_id, creator=creator, at=NOW - timedelta(days=60))
    await apply_trades(session, trades(rng, 200, 40), direction=+1, creators=creators)
    await settle(session)
    for days in (7, 30):
        await rebuild_window(session, days, NOW.date())
    await session.commit()
    await check(session)

    later = trades(rng, 60, 10)
    await apply_trades(session, later, direction=+1, creators=creators)
    await settle(session)
    await session.commit()
    await check(session)

    await apply_trades(session, later[20:], direction=-1, creators=creators)  # a re-org takes some back
    await settle(session)
    await session.commit()
    await check(session)
