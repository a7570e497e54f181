"""Turns TwinKeys events into market rows, and undoes them when a re-org removes their blocks.

Every running total (supply, holders, volume, fees, market cap) changes only in ``_fold``, by
applying a trade or its exact inverse, so the index always equals a replay of the chain. A batch
is folded in memory: the markets and holdings it touches are read once, its trades are written
in one multi-row insert, and each touched market and holding is written once, with its final value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.avatars import service as avatars
from app.chain.indexer import ChainEvent
from app.db.base import table_of
from app.market import curve
from app.market.models import FeeWithdrawal, Holding, MarketAvatar, Trade
from app.network import rollups as network

LOAD_CHUNK = 1000  # (avatar, holder) pairs per query: well below any database's limit on bound values


def avatar_id_hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


@dataclass(slots=True)
class _Totals:
    """A market's running totals while a batch is folded."""

    supply: int
    holders: int
    trade_count: int
    volume: int
    creator_fees: int
    protocol_fees: int
    last_trade_at: datetime | None

    @classmethod
    def of(cls, market: MarketAvatar) -> _Totals:
        return cls(
            market.supply,
            market.holders,
            market.trade_count,
            market.volume,
            market.creator_fees,
            market.protocol_fees,
            market.last_trade_at,
        )


@dataclass
class _Book:
    """The markets and holdings one batch touches: loaded once, folded in memory, written once."""

    markets: dict[str, MarketAvatar] = field(default_factory=dict)
    totals: dict[str, _Totals] = field(default_factory=dict)
    rows: dict[tuple[str, str], Holding] = field(default_factory=dict)  # holdings as stored
    balances: dict[tuple[str, str], int] = field(default_factory=dict)  # every touched holding's balance

    def add_market(self, market: MarketAvatar) -> None:
        self.markets[market.avatar_id] = market
        self.totals[market.avatar_id] = _Totals.of(market)


class MarketProjection:
    RECEIPTS_FOR = frozenset({"Trade"})  # the indexer reads these events' receipts: a trade's network fee

    def __init__(self, curve_divisor: int) -> None:
        self._divisor = curve_divisor

    async def apply(self, session: AsyncSession, events: Sequence[ChainEvent]) -> None:
        trades = _trade_rows(events)
        book = await self._load(session, trades)
        applied = iter(trades)
        for event in events:
            if event.name == "Trade":
                trade = next(applied)
                self._fold(book, trade, direction=+1)
                _record_after(book, trade)
            elif event.name == "AvatarCreated":
                book.add_market(await self._on_AvatarCreated(session, event))
            else:
                handler = getattr(self, f"_on_{event.name}", None)
                if handler is not None:
                    await handler(session, event)
        if trades:
            await session.execute(insert(table_of(Trade)), trades)  # Core: no per-row ORM bookkeeping
            await network.apply_trades(session, trades, direction=+1, creators=_creators(book))
        await self._write(session, book)
        await network.settle(session)  # the network's days and windows last: the lock order of app.network.rollups

    async def revert_above(self, session: AsyncSession, block_number: int) -> None:
        trades = [
            dict(row)
            for row in (
                await session.execute(
                    select(table_of(Trade)).where(col(Trade.block_number) > block_number).order_by(col(Trade.id).desc())
                )
            ).mappings()
        ]
        book = await self._load(session, trades)
        for trade in trades:
            self._fold(book, trade, direction=-1)
        await session.execute(delete(Trade).where(col(Trade.block_number) > block_number))
        await network.reset_first_outside_buys(session, await _first_outside_buys(session, trades, _creators(book)))
        await network.apply_trades(session, trades, direction=-1, creators=_creators(book))
        await self._write(session, book)
        await session.flush()
        for avatar_id in {trade["avatar_id"] for trade in trades}:
            market = book.markets.get(avatar_id)
            if market is not None:
                market.last_trade_at = await session.scalar(
                    select(func.max(col(Trade.timestamp))).where(col(Trade.avatar_id) == avatar_id)
                )
        orphaned = (
            await session.scalars(select(MarketAvatar).where(col(MarketAvatar.created_block) > block_number))
        ).all()
        for market in orphaned:
            await avatars.unmark_listed(session, market.avatar_id)
            await network.record_listed(session, avatar_id=market.avatar_id, creator=market.creator, at=None)
            await session.delete(market)
        await session.execute(delete(FeeWithdrawal).where(col(FeeWithdrawal.block_number) > block_number))
        await network.settle(session)

    # ---------------------------------------------------------------- event handlers

    async def _on_AvatarCreated(self, session: AsyncSession, event: ChainEvent) -> MarketAvatar:
        avatar_id = avatar_id_hex(event.args["id"])
        market = MarketAvatar(
            avatar_id=avatar_id,
            creator=event.args["creator"],
            metadata_uri=event.args["metadataURI"],
            created_block=event.block_number,
            created_at=event.timestamp,
        )
        session.add(market)
        await avatars.mark_listed(
            session, avatar_id=avatar_id, onchain_creator=event.args["creator"], at=event.timestamp
        )
        await network.record_listed(session, avatar_id=avatar_id, creator=event.args["creator"], at=event.timestamp)
        return market

    async def _on_CreatorFeesWithdrawn(self, session: AsyncSession, event: ChainEvent) -> None:
        session.add(
            FeeWithdrawal(
                tx_hash=event.tx_hash,
                log_index=event.log_index,
                block_number=event.block_number,
                timestamp=event.timestamp,
                avatar_id=avatar_id_hex(event.args["id"]),
                account=event.args["creator"],
                recipient=event.args["to"],
                amount=event.args["amount"],
            )
        )

    async def _on_ProtocolFeesWithdrawn(self, session: AsyncSession, event: ChainEvent) -> None:
        session.add(
            FeeWithdrawal(
                tx_hash=event.tx_hash,
                log_index=event.log_index,
                block_number=event.block_number,
                timestamp=event.timestamp,
                avatar_id=avatar_id_hex(event.args["id"]),
                account=event.args["treasury"],
                recipient=event.args["to"],
                amount=event.args["amount"],
            )
        )

    # ---------------------------------------------------------------- the one place totals change

    @staticmethod
    def _fold(book: _Book, trade: Mapping[str, Any], *, direction: int) -> None:
        """Apply a trade (direction +1) or undo it (-1) to the book's totals and balances."""
        totals = book.totals.get(trade["avatar_id"])
        if totals is None:  # a trade always follows its avatar's creation; nothing to derive otherwise
            return
        key_change = trade["amount"] * direction * (1 if trade["is_buy"] else -1)
        pair = (trade["avatar_id"], trade["trader"])
        before = book.balances.get(pair, 0)
        after = book.balances[pair] = before + key_change
        totals.holders += (after > 0) - (before > 0)
        # Undoing: the supply before the trade is the supply after it plus the (reversed) change.
        totals.supply = trade["supply_after"] if direction > 0 else trade["supply_after"] + key_change
        totals.trade_count += direction
        totals.volume += direction * trade["eth_amount"]
        totals.creator_fees += direction * trade["creator_fee"]
        totals.protocol_fees += direction * trade["protocol_fee"]
        if direction > 0:
            totals.last_trade_at = trade["timestamp"]

    # ---------------------------------------------------------------- reading and writing a batch

    @staticmethod
    async def _load(session: AsyncSession, trades: Sequence[Mapping[str, Any]]) -> _Book:
        """The markets and holdings ``trades`` touch, as stored."""
        book = _Book()
        avatar_ids = sorted({trade["avatar_id"] for trade in trades})
        for chunk in _chunks(avatar_ids):
            for market in await session.scalars(select(MarketAvatar).where(col(MarketAvatar.avatar_id).in_(chunk))):
                book.add_market(market)
        pairs = sorted({(trade["avatar_id"], trade["trader"]) for trade in trades})
        for chunk in _chunks(pairs):
            for holding in await session.scalars(
                select(Holding).where(tuple_(col(Holding.avatar_id), col(Holding.holder)).in_(chunk))
            ):
                book.rows[holding.avatar_id, holding.holder] = holding
                book.balances[holding.avatar_id, holding.holder] = holding.balance
        return book

    async def _write(self, session: AsyncSession, book: _Book) -> None:
        """Each touched market and holding, once: holdings at zero are deleted."""
        for avatar_id, totals in book.totals.items():
            market = book.markets[avatar_id]
            market.supply = totals.supply
            market.holders = totals.holders
            market.trade_count = totals.trade_count
            market.volume = totals.volume
            market.creator_fees = totals.creator_fees
            market.protocol_fees = totals.protocol_fees
            market.last_trade_at = totals.last_trade_at
            market.market_cap = curve.market_cap(totals.supply, self._divisor)
        for (avatar_id, holder), balance in book.balances.items():
            holding = book.rows.get((avatar_id, holder))
            if holding is None:
                if balance != 0:
                    session.add(Holding(avatar_id=avatar_id, holder=holder, balance=balance))
            elif balance == 0:
                await session.delete(holding)
            elif holding.balance != balance:
                holding.balance = balance


def _trade_rows(events: Sequence[ChainEvent]) -> list[dict[str, Any]]:
    """The batch's Trade events as ``trade`` rows, each transaction's fee on its first trade only."""
    rows, fee_taken = [], set()
    for event in events:
        if event.name == "Trade":
            rows.append(_trade_row(event, first_of_transaction=event.tx_hash not in fee_taken))
            fee_taken.add(event.tx_hash)
    return rows


def _gas_paid(event: ChainEvent, *, first_of_transaction: bool) -> int | None:
    """The network fee the trader paid for this trade (see ``Trade.gas_paid``)."""
    if event.tx_fee is None:
        return None
    return event.tx_fee.wei if first_of_transaction and event.tx_fee.payer == event.args["trader"] else 0


def _trade_row(event: ChainEvent, *, first_of_transaction: bool) -> dict[str, Any]:
    """A Trade event as a ``trade`` row."""
    args = event.args
    return {
        "tx_hash": event.tx_hash,
        "log_index": event.log_index,
        "block_number": event.block_number,
        "timestamp": event.timestamp,
        "avatar_id": avatar_id_hex(args["id"]),
        "trader": args["trader"],
        "is_buy": args["isBuy"],
        "amount": args["shareAmount"],
        "eth_amount": args["ethAmount"],
        "protocol_fee": args["protocolEthAmount"],
        "creator_fee": args["subjectEthAmount"],
        "supply_after": args["supply"],
        "gas_paid": _gas_paid(event, first_of_transaction=first_of_transaction),
        "holders_after": None,  # set as the batch is folded (_record_after)
        "balance_after": None,
    }


def _record_after(book: _Book, trade: dict[str, Any]) -> None:
    """The avatar's holders and the trader's balance right after ``trade``, on its row (``Trade.holders_after``)."""
    totals = book.totals.get(trade["avatar_id"])
    if totals is not None:
        trade["holders_after"] = totals.holders
        trade["balance_after"] = book.balances[trade["avatar_id"], trade["trader"]]


def _creators(book: _Book) -> dict[str, str]:
    return {avatar_id: market.creator for avatar_id, market in book.markets.items()}


async def _first_outside_buys(
    session: AsyncSession, trades: Sequence[Mapping[str, Any]], creators: Mapping[str, str]
) -> dict[str, datetime | None]:
    """Each traded avatar's first buy by someone other than its creator, among the trades that remain."""
    return {
        avatar_id: await session.scalar(
            select(func.min(col(Trade.timestamp))).where(
                col(Trade.avatar_id) == avatar_id, col(Trade.is_buy), col(Trade.trader) != creators.get(avatar_id, "")
            )
        )
        for avatar_id in sorted({trade["avatar_id"] for trade in trades})
    }


def _chunks(items: Sequence[Any], size: int = LOAD_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
