"""Creators' daily market figures, replayed from trades: holders at each day's end, volume and fees per day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from app.market.models import Trade
from app.market.service import daily_market

AVATAR = "0x" + "11" * 16
CREATOR, FAN, OTHER = "0x" + "cc" * 20, "0x" + "aa" * 20, "0x" + "bb" * 20
FIRST_DAY = date(2026, 3, 10)


def trade(day: date, trader: str, keys: int, *, price: int = 1_000, fee: int = 50) -> Trade:
    """A buy of ``keys`` (a sell when negative) at noon UTC on ``day``."""
    return Trade(
        tx_hash="0x",
        log_index=0,
        block_number=1,
        timestamp=datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12),
        avatar_id=AVATAR,
        trader=trader,
        is_buy=keys > 0,
        amount=abs(keys),
        eth_amount=price,
        protocol_fee=fee,
        creator_fee=fee,
        supply_after=0,
    )


def day(offset: int) -> date:
    return FIRST_DAY + timedelta(days=offset)


def test_holders_carry_over_days_without_trades_and_count_trades_before_the_window() -> None:
    trades = [
        trade(day(-5), CREATOR, 1, price=0, fee=0),  # before the window: opens it with one holder
        trade(day(1), FAN, 2, price=300, fee=15),
        trade(day(1), OTHER, 1, price=200, fee=10),
        trade(day(3), FAN, -2, price=250, fee=12),  # sold to zero: one holder fewer
        trade(day(3), FAN, 1, price=100, fee=5),  # and back the same day
        trade(day(4), OTHER, -1, price=90, fee=4),
    ]

    daily = daily_market(trades, FIRST_DAY, 6)

    assert daily.holders == {
        day(0).isoformat(): 1,
        day(1).isoformat(): 3,
        day(2).isoformat(): 3,
        day(3).isoformat(): 3,
        day(4).isoformat(): 2,
        day(5).isoformat(): 2,
    }
    assert daily.volume == {day(1).isoformat(): 500, day(3).isoformat(): 350, day(4).isoformat(): 90}
    assert daily.creator_fees == {day(1).isoformat(): 25, day(3).isoformat(): 17, day(4).isoformat(): 4}


def test_an_avatar_without_trades_has_no_holders_on_any_day() -> None:
    daily = daily_market([], FIRST_DAY, 3)

    assert daily.holders == {day(0).isoformat(): 0, day(1).isoformat(): 0, day(2).isoformat(): 0}
    assert daily.volume == {}
    assert daily.creator_fees == {}
