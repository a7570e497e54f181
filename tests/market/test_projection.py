"""The projection applied to a batch of events equals a replay of the chain, event by event."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.chain.indexer import ChainEvent, TransactionFee
from app.db.engine import create_engine, session_factory
from app.market import curve
from app.market.models import Holding, MarketAvatar, Trade
from app.market.projection import MarketProjection

DIVISOR = 1_600_000
AVATAR = bytes.fromhex("11" * 16)
CREATOR = "0x" + "c" * 40
FAN = "0x" + "f" * 40
AT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def session(database_url: str) -> AsyncIterator[AsyncSession]:
    engine = create_engine(database_url)
    async with session_factory(engine)() as session:
        yield session
    await engine.dispose()


class Tape:
    """Events of one avatar as the chain emits them, with the supply each trade leaves."""

    def __init__(self) -> None:
        self.events: list[ChainEvent] = []
        self.supply = 0

    def _event(self, name: str, args: dict[str, object]) -> None:
        index = len(self.events)
        self.events.append(
            ChainEvent(
                name=name,
                args=args,
                block_number=1 + index,
                block_hash=f"0x{index:064x}",
                tx_hash=f"0x{index:064x}",
                log_index=0,
                timestamp=AT,
            )
        )

    def create(self) -> None:
        self._event("AvatarCreated", {"id": AVATAR, "creator": CREATOR, "metadataURI": "ipfs://m"})

    def trade(self, trader: str, amount: int, *, buy: bool) -> None:
        lowest_supply = self.supply if buy else self.supply - amount  # the curve segment the keys span
        self.supply += amount if buy else -amount
        price = curve.price(lowest_supply, amount, DIVISOR)
        self._event(
            "Trade",
            {
                "id": AVATAR,
                "trader": trader,
                "isBuy": buy,
                "shareAmount": amount,
                "ethAmount": price,
                "protocolEthAmount": 0,
                "subjectEthAmount": 0,
                "supply": self.supply,
            },
        )


async def balances(session: AsyncSession) -> dict[str, int]:
    return {h.holder: h.balance for h in await session.scalars(select(Holding))}


async def test_a_holder_who_sells_out_and_buys_again_in_one_batch_is_counted_once(session: AsyncSession) -> None:
    tape = Tape()
    tape.create()
    tape.trade(CREATOR, 1, buy=True)
    tape.trade(FAN, 2, buy=True)
    tape.trade(FAN, 2, buy=False)
    tape.trade(FAN, 1, buy=True)

    await MarketProjection(DIVISOR).apply(session, tape.events)
    await session.commit()

    market = await session.get(MarketAvatar, "0x" + AVATAR.hex())
    assert market is not None
    assert (market.supply, market.holders) == (2, 2)
    assert await balances(session) == {CREATOR: 1, FAN: 1}


async def test_selling_out_then_reverting_the_sale_restores_the_holding(session: AsyncSession) -> None:
    tape = Tape()
    tape.create()
    tape.trade(CREATOR, 1, buy=True)
    tape.trade(FAN, 3, buy=True)
    tape.trade(FAN, 3, buy=False)
    projection = MarketProjection(DIVISOR)
    await projection.apply(session, tape.events)
    await session.commit()

    await projection.revert_above(session, block_number=3)  # undo the sale (block 4)
    await session.commit()

    market = await session.get(MarketAvatar, "0x" + AVATAR.hex())
    assert market is not None
    assert (market.supply, market.holders) == (4, 2)
    assert await balances(session) == {CREATOR: 1, FAN: 3}


def paid(event: ChainEvent, payer: str, wei: int, *, tx_hash: str | None = None) -> ChainEvent:
    """``event`` as the indexer gives it with its transaction's receipt read."""
    return dataclasses.replace(event, tx_fee=TransactionFee(payer=payer, wei=wei), tx_hash=tx_hash or event.tx_hash)


async def test_a_trade_carries_the_network_fee_its_trader_paid_once_per_transaction(session: AsyncSession) -> None:
    tape = Tape()
    tape.create()
    tape.trade(CREATOR, 1, buy=True)
    tape.trade(FAN, 2, buy=True)  # these two trades share one transaction, sent by the fan
    tape.trade(FAN, 1, buy=True)
    tape.trade(FAN, 1, buy=False)  # sent for the fan by someone else (a relayer)
    tape.trade(CREATOR, 1, buy=True)  # from a node whose receipts say no effective gas price
    created, launch, first, second, relayed, unknown = tape.events
    shared = "0x" + "ab" * 32
    events = [
        created,
        paid(launch, CREATOR, 7),
        paid(first, FAN, 100, tx_hash=shared),
        dataclasses.replace(paid(second, FAN, 100, tx_hash=shared), log_index=1),
        paid(relayed, "0x" + "e" * 40, 50),
        unknown,
    ]

    await MarketProjection(DIVISOR).apply(session, events)
    await session.commit()

    trades = (await session.scalars(select(Trade).order_by(col(Trade.id)))).all()
    assert [trade.gas_paid for trade in trades] == [7, 100, 0, 0, None]


async def test_each_trade_records_the_holders_and_the_trader_s_keys_after_it(session: AsyncSession) -> None:
    tape = Tape()
    tape.create()
    tape.trade(CREATOR, 1, buy=True)
    tape.trade(FAN, 2, buy=True)
    tape.trade(FAN, 1, buy=True)
    tape.trade(FAN, 3, buy=False)

    await MarketProjection(DIVISOR).apply(session, tape.events)
    await session.commit()

    trades = (await session.scalars(select(Trade).order_by(col(Trade.id)))).all()
    assert [(trade.holders_after, trade.balance_after) for trade in trades] == [(1, 1), (2, 2), (2, 3), (1, 0)]
