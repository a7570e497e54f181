"""Quotes, holdings, trade history, candles, and the market figures of avatars and creators.

Amounts come from the index (derived from chain events) and from the contract itself
for anything a wallet will pay or receive next (quotes read the chain at a stated block).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, exists, func, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col
from web3.contract import AsyncContract
from web3.types import BlockIdentifier

from app.avatars.models import Avatar
from app.avatars.service import avatars_by_ids
from app.errors import Conflict, NotFound
from app.lib.pagination import Page, cursor_id, cursor_int, cursor_str, decode_cursor, encode_cursor
from app.lib.time import aware
from app.market import curve
from app.market.models import FeeWithdrawal, Holding, MarketAvatar, Trade
from app.market.schemas import (
    Candle,
    CandleInterval,
    HolderOut,
    HoldingOut,
    Quote,
    Side,
    TradeOut,
)
from app.validation import BadInput

QUOTE_TTL_S = 300
MAX_SLIPPAGE_BPS = 5_000
DAY = timedelta(days=1)
INTERVAL_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14_400, "1d": 86_400}
MAX_CANDLES = 500
CREATOR_CHART_DAYS = 30


# ---------------------------------------------------------------- chain reads


@dataclass(frozen=True)
class FeeLevels:
    protocol: int
    creator: int


@dataclass(frozen=True)
class Head:
    number: int
    hash: bytes
    timestamp: int


class TwinKeysReader:
    """Reads of TwinKeys state a quote or a valuation needs, all at one block.

    A burst of quotes costs the chain one small read per burst, not several per request: callers
    that ask for the head while a read of it is under way share that read (so every answer is as
    fresh as the moment it was asked for), and fee levels and supplies are kept for the block they
    were read at."""

    def __init__(self, contract: AsyncContract) -> None:
        self.contract = contract
        self._divisor: int | None = None
        self._head: Head | None = None
        self._head_read: asyncio.Future[Head] | None = None
        self._block_reads: dict[tuple[int, str], Any] = {}

    async def divisor(self) -> int:
        if self._divisor is None:  # immutable in the contract
            self._divisor = await self.contract.functions.curveDivisor().call()
        return self._divisor

    async def head(self) -> Head:
        """The latest block: read now, or by the read under way that callers before us started."""
        if self._head_read is None:
            self._head_read = asyncio.ensure_future(self._read_head())
            self._head_read.add_done_callback(lambda _: setattr(self, "_head_read", None))
        return await asyncio.shield(self._head_read)

    async def _read_head(self) -> Head:
        latest = await self.contract.w3.eth.get_block("latest")
        head = Head(latest["number"], bytes(latest["hash"]), latest["timestamp"])
        if self._head is None or head.hash != self._head.hash:
            self._block_reads.clear()  # everything kept was read at another block
        self._head = head
        return head

    async def _at_block(self, block: int, key: str, read: Callable[[], Awaitable[Any]]) -> Any:
        """``read()`` at ``block``, shared by every caller for that block (a failed read is not kept)."""
        cache_key = (block, key)
        if cache_key not in self._block_reads:
            self._block_reads[cache_key] = asyncio.ensure_future(read())
        try:
            return await asyncio.shield(self._block_reads[cache_key])
        except Exception:
            self._block_reads.pop(cache_key, None)
            raise

    async def fee_levels(self, block: BlockIdentifier = "latest") -> FeeLevels:
        functions = self.contract.functions

        async def read() -> FeeLevels:
            protocol, creator = await asyncio.gather(
                functions.protocolFeePercent().call(block_identifier=block),
                functions.creatorFeePercent().call(block_identifier=block),
            )
            return FeeLevels(protocol=protocol, creator=creator)

        return await self._at_block(block, "fees", read) if isinstance(block, int) else await read()

    async def paused(self, block: BlockIdentifier = "latest") -> bool:
        """Whether creation and buys are paused (sells never are)."""

        def read() -> Awaitable[bool]:
            return self.contract.functions.paused().call(block_identifier=block)

        return await self._at_block(block, "paused", read) if isinstance(block, int) else await read()

    async def supply(self, avatar_id: str, block: BlockIdentifier = "latest") -> int:
        def read() -> Awaitable[int]:
            return self.contract.functions.keysSupply(bytes.fromhex(avatar_id[2:])).call(block_identifier=block)

        return await self._at_block(block, avatar_id, read) if isinstance(block, int) else await read()

    async def creator_fees(self, avatar_id: str) -> int:
        return await self.contract.functions.creatorFees(bytes.fromhex(avatar_id[2:])).call()


async def quote(reader: TwinKeysReader, *, avatar_id: str, side: Side, amount: int, slippage_bps: int) -> Quote:
    """What the next trade costs or pays, from chain state at the latest block, with bounds to send."""
    if not 0 <= slippage_bps <= MAX_SLIPPAGE_BPS:
        raise BadInput("slippage_bps", f"must be between 0 and {MAX_SLIPPAGE_BPS}")
    head = await reader.head()
    supply, fees, divisor, paused = await asyncio.gather(
        reader.supply(avatar_id, head.number),
        reader.fee_levels(head.number),
        reader.divisor(),
        reader.paused(head.number),
    )
    if supply == 0:
        raise NotFound(f"no avatar {avatar_id} on-chain")
    if paused and side is Side.buy:  # the buy would revert with EnforcedPause; sells still work
        raise Conflict("the market is paused: buys and launches are stopped for now (sells still work)", code="paused")
    if side is Side.sell and amount >= supply:
        raise BadInput("amount", f"at most {supply - 1} keys can be sold (the last key stays with the curve)")
    price = curve.price(supply - amount, amount, divisor) if side is Side.sell else curve.price(supply, amount, divisor)
    protocol_fee, creator_fee = curve.fees(price, fees.protocol, fees.creator)
    total = price + protocol_fee + creator_fee if side is Side.buy else price - protocol_fee - creator_fee
    result = Quote(
        avatar_id=avatar_id,
        side=side,
        amount=amount,
        block_number=head.number,
        supply=supply,
        price=str(price),
        protocol_fee=str(protocol_fee),
        creator_fee=str(creator_fee),
        total=str(total),
        slippage_bps=slippage_bps,
        # The contract checks the deadline against block time, which can run ahead of ours (ChainClock).
        deadline=max(int(time.time()), head.timestamp) + QUOTE_TTL_S,
    )
    if side is Side.buy:
        result.max_total_cost = str(total * (10_000 + slippage_bps) // 10_000)
    else:
        result.min_proceeds = str(total * (10_000 - slippage_bps) // 10_000)
    return result


# ---------------------------------------------------------------- market data


async def market_of(session: AsyncSession, avatar_id: str) -> MarketAvatar | None:
    return await session.get(MarketAvatar, avatar_id)


@dataclass(frozen=True)
class MarketFigures:
    """An avatar's market as the index and the curve tell it (wei as decimal strings, as the API shows them)."""

    supply: int
    holders: int
    next_key_price: str
    market_cap: str
    volume_total: str
    volume_24h: str
    trade_count: int
    creator_fees_earned: str
    last_trade_at: datetime | None


def market_figures(market: MarketAvatar | None, divisor: int, volume_24h: int) -> MarketFigures:
    supply = market.supply if market else 0
    return MarketFigures(
        supply=supply,
        holders=market.holders if market else 0,
        next_key_price=str(curve.price(supply, 1, divisor)),
        market_cap=str(market.market_cap if market else 0),
        volume_total=str(market.volume if market else 0),
        volume_24h=str(volume_24h),
        trade_count=market.trade_count if market else 0,
        creator_fees_earned=str(market.creator_fees if market else 0),
        last_trade_at=market.last_trade_at if market else None,
    )


def listed_query(q: str | None, *columns: Any) -> Select[Any]:
    """``columns`` of the listed avatars (each joined with its market) whose handle or name contains ``q``."""
    query = (
        select(*columns)
        .join(MarketAvatar, col(MarketAvatar.avatar_id) == col(Avatar.id))
        .where(col(Avatar.listed_at).is_not(None))
    )
    if q:
        pattern = f"%{q.lower()}%"
        query = query.where(col(Avatar.handle).ilike(pattern) | col(Avatar.name).ilike(pattern))
    return query


async def listed_markets_by(
    session: AsyncSession,
    *,
    key: Any,
    join: tuple[Any, Any] | None = None,
    where: Any = None,
    after: tuple[Any, str] | None,
    q: str | None,
    limit: int,
) -> list[tuple[Avatar, MarketAvatar, Any]]:
    """Up to ``limit`` listed avatars, greatest ``key`` (an expression over the avatar, its market, or a table
    ``join`` joins: (table, on clause)) first, ties by id, after the keyset ``after``, those ``where`` holds only:
    each with its market and its key. Ranked on ids and keys alone, then the page's rows read by id: the sort stays
    narrow however many are listed."""
    query = listed_query(q, col(Avatar.id), key)
    if join is not None:
        query = query.join(*join)
    if where is not None:
        query = query.where(where)
    if after is not None:
        query = query.where(tuple_(key, col(Avatar.id)) < tuple_(literal(after[0], key.type), literal(after[1])))
    ranked = (await session.execute(query.order_by(key.desc(), col(Avatar.id).desc()).limit(limit))).all()
    ids = [avatar_id for avatar_id, _ in ranked]
    rows = {
        avatar.id: (avatar, market)
        for avatar, market in await session.execute(
            listed_query(None, Avatar, MarketAvatar).where(col(Avatar.id).in_(ids))
        )
    }
    return [(*rows[avatar_id], value) for avatar_id, value in ranked]


# ---------------------------------------------------------------- trades, holders, holdings


def trade_out(trade: Trade) -> TradeOut:
    return TradeOut(
        id=trade.id or 0,
        tx_hash=trade.tx_hash,
        block_number=trade.block_number,
        timestamp=trade.timestamp,
        avatar_id=trade.avatar_id,
        trader=trade.trader,
        side=Side.buy if trade.is_buy else Side.sell,
        amount=trade.amount,
        price=str(trade.eth_amount),
        protocol_fee=str(trade.protocol_fee),
        creator_fee=str(trade.creator_fee),
        supply_after=trade.supply_after,
        gas_paid=None if trade.gas_paid is None else str(trade.gas_paid),
    )


async def trades_page(
    session: AsyncSession, *, avatar_id: str | None = None, trader: str | None = None, cursor: str | None, limit: int
) -> Page[TradeOut]:
    """Newest first; the cursor is the id of the last trade of the previous page."""
    query = select(Trade).order_by(col(Trade.id).desc()).limit(limit + 1)
    if avatar_id is not None:
        query = query.where(col(Trade.avatar_id) == avatar_id)
    if trader is not None:
        query = query.where(col(Trade.trader) == trader)
    after = decode_cursor(cursor, cursor_id)
    if after is not None:
        query = query.where(col(Trade.id) < after[0])
    trades = (await session.scalars(query)).all()
    page = trades[:limit]
    next_cursor = encode_cursor(page[-1].id) if len(trades) > limit else None
    return Page(items=[trade_out(trade) for trade in page], next_cursor=next_cursor)


async def holders(session: AsyncSession, avatar_id: str, *, cursor: str | None, limit: int) -> Page[HolderOut]:
    """Largest holders first (ties by address)."""
    rows = (await session.scalars(select(Holding).where(col(Holding.avatar_id) == avatar_id))).all()
    ranked = sorted(((row.balance, row.holder) for row in rows), reverse=True)
    after = decode_cursor(cursor, cursor_int, cursor_str)
    if after is not None:
        ranked = [row for row in ranked if row < (after[0], after[1])]
    page = ranked[:limit]
    next_cursor = encode_cursor(*page[-1]) if len(ranked) > limit else None
    return Page(items=[HolderOut(holder=holder, balance=balance) for balance, holder in page], next_cursor=next_cursor)


async def holdings(session: AsyncSession, reader: TwinKeysReader, address: str) -> list[HoldingOut]:
    """A wallet's keys with what selling them now would pay, what the wallet spent on them and the network
    fees its trades of them paid."""
    rows = (await session.scalars(select(Holding).where(col(Holding.holder) == address))).all()
    if not rows:
        return []
    avatar_ids = [row.avatar_id for row in rows]
    markets = {
        m.avatar_id: m
        for m in await session.scalars(select(MarketAvatar).where(col(MarketAvatar.avatar_id).in_(avatar_ids)))
    }
    profiles = await avatars_by_ids(session, avatar_ids)
    spent: dict[str, int] = defaultdict(int)
    gas: dict[str, int] = defaultdict(int)
    gas_unknown: set[str] = set()
    for trade in await session.scalars(
        select(Trade).where(col(Trade.trader) == address, col(Trade.avatar_id).in_(avatar_ids))
    ):
        trade_fees = trade.protocol_fee + trade.creator_fee
        spent[trade.avatar_id] += trade.eth_amount + trade_fees if trade.is_buy else -(trade.eth_amount - trade_fees)
        if trade.gas_paid is None:
            gas_unknown.add(trade.avatar_id)
        else:
            gas[trade.avatar_id] += trade.gas_paid
    fees = await reader.fee_levels()
    divisor = await reader.divisor()
    result = []
    for row in rows:
        supply = markets[row.avatar_id].supply
        sellable = min(row.balance, supply - 1)
        price = curve.price(supply - sellable, sellable, divisor)
        protocol_fee, creator_fee = curve.fees(price, fees.protocol, fees.creator)
        profile = profiles.get(row.avatar_id)
        result.append(
            HoldingOut(
                avatar_id=row.avatar_id,
                handle=profile.handle if profile else "",
                name=profile.name if profile else "",
                balance=row.balance,
                sellable=sellable,
                sell_value=str(price - protocol_fee - creator_fee),
                cost_basis=str(spent[row.avatar_id]),
                gas_paid=str(gas[row.avatar_id]),
                gas_paid_known=row.avatar_id not in gas_unknown,
            )
        )
    return result


@dataclass(frozen=True)
class Portfolio:
    """A wallet's keys with their profit and loss, and a page of its trades (the portfolio page)."""

    holdings: list[tuple[HoldingOut, int]]  # with each one's P&L (see holding_pnl)
    value: int  # what selling every sellable key now would pay
    cost_basis: int  # net spend on the avatars held: buys with fees, less what sells paid
    gas_paid: int  # network fees the trades of the avatars held paid (a floor when not gas_paid_known)
    gas_paid_known: bool
    trades: Page[TradeOut]
    avatar_names: dict[str, str]  # of the avatars the page's trades name

    @property
    def pnl(self) -> int:
        """Profit and loss after network fees: value now, less the net spend and the gas paid."""
        return self.value - self.cost_basis - self.gas_paid


def holding_pnl(holding: HoldingOut) -> int:
    """A holding's profit and loss: its sell value now, less the net spend on it and the network fees paid."""
    return int(holding.sell_value) - int(holding.cost_basis) - int(holding.gas_paid)


async def portfolio(
    session: AsyncSession, reader: TwinKeysReader, address: str, *, cursor: str | None, limit: int
) -> Portfolio:
    held = await holdings(session, reader, address)
    trades = await trades_page(session, trader=address, cursor=cursor, limit=limit)
    named = await avatars_by_ids(session, list({trade.avatar_id for trade in trades.items}))
    return Portfolio(
        holdings=[(holding, holding_pnl(holding)) for holding in held],
        value=sum(int(holding.sell_value) for holding in held),
        cost_basis=sum(int(holding.cost_basis) for holding in held),
        gas_paid=sum(int(holding.gas_paid) for holding in held),
        gas_paid_known=all(holding.gas_paid_known for holding in held),
        trades=trades,
        avatar_names={avatar_id: avatar.name for avatar_id, avatar in named.items()},
    )


async def balance_of(session: AsyncSession, avatar_id: str, holder: str) -> int:
    holding = await session.get(Holding, (avatar_id, holder))
    return holding.balance if holding else 0


async def balances_of(session: AsyncSession, avatar_id: str, holders: Sequence[str]) -> dict[str, int]:
    """Keys of the avatar each of ``holders`` holds now (those holding none left out)."""
    rows = await session.execute(
        select(col(Holding.holder), col(Holding.balance)).where(
            col(Holding.avatar_id) == avatar_id, col(Holding.holder).in_(holders)
        )
    )
    return {holder: balance for holder, balance in rows}


async def first_buys(session: AsyncSession, avatar_id: str, traders: Sequence[str]) -> dict[str, datetime]:
    """When each of ``traders`` first bought a key of the avatar."""
    rows = await session.execute(
        select(col(Trade.trader), func.min(col(Trade.timestamp)))
        .where(col(Trade.avatar_id) == avatar_id, col(Trade.trader).in_(traders), col(Trade.is_buy))
        .group_by(col(Trade.trader))
    )
    return {trader: aware(first) for trader, first in rows}


# ---------------------------------------------------------------- demand signals for the autoscaler


@dataclass(frozen=True)
class KeyBuy:
    trade_id: int
    avatar_id: str
    trader: str
    first_buy: bool  # the buyer had never traded this avatar's keys before: a new holder


async def trade_id_before(session: AsyncSession, since: datetime) -> int:
    """The last trade id before ``since`` (0 if none): a cursor from which :func:`key_buys_after` reads."""
    return await session.scalar(select(func.max(col(Trade.id))).where(col(Trade.timestamp) < since)) or 0


async def key_buys_after(session: AsyncSession, after_id: int, limit: int = 1_000) -> list[KeyBuy]:
    """Buys with a trade id above ``after_id``, oldest first, each saying whether it was the buyer's first."""
    earlier = aliased(Trade)
    first_buy = ~exists().where(
        col(earlier.avatar_id) == col(Trade.avatar_id),
        col(earlier.trader) == col(Trade.trader),
        col(earlier.id) < col(Trade.id),
    )
    rows = await session.execute(
        select(col(Trade.id), col(Trade.avatar_id), col(Trade.trader), first_buy)
        .where(col(Trade.is_buy), col(Trade.id) > after_id)
        .order_by(col(Trade.id))
        .limit(limit)
    )
    return [KeyBuy(trade_id or 0, avatar_id, trader, bool(first)) for trade_id, avatar_id, trader, first in rows]


async def holder_counts(session: AsyncSession, avatar_ids: Sequence[str]) -> dict[str, int]:
    if not avatar_ids:
        return {}
    rows = await session.execute(
        select(col(MarketAvatar.avatar_id), col(MarketAvatar.holders)).where(
            col(MarketAvatar.avatar_id).in_(avatar_ids)
        )
    )
    return {avatar_id: holders for avatar_id, holders in rows}


# ---------------------------------------------------------------- charts


async def candles(session: AsyncSession, divisor: int, avatar_id: str, interval: CandleInterval) -> list[Candle]:
    """OHLC of the spot key price (the next key's price after each trade) and traded volume."""
    seconds = INTERVAL_SECONDS[interval.value]
    since = datetime.now(UTC) - timedelta(seconds=seconds * MAX_CANDLES)
    trades = (
        await session.scalars(
            select(Trade)
            .where(col(Trade.avatar_id) == avatar_id, col(Trade.timestamp) >= since)
            .order_by(col(Trade.id))
        )
    ).all()
    buckets: dict[int, list[Trade]] = defaultdict(list)
    for trade in trades:
        buckets[int(aware(trade.timestamp).timestamp()) // seconds * seconds].append(trade)
    result = []
    for start, group in sorted(buckets.items()):
        prices = [curve.price(trade.supply_after, 1, divisor) for trade in group]
        result.append(
            Candle(
                start=datetime.fromtimestamp(start, UTC),
                open=str(prices[0]),
                high=str(max(prices)),
                low=str(min(prices)),
                close=str(prices[-1]),
                volume=str(sum(trade.eth_amount for trade in group)),
                trades=len(group),
            )
        )
    return result


# ---------------------------------------------------------------- creators


@dataclass(frozen=True)
class DailyMarket:
    """One avatar's market over a window of UTC days (``YYYY-MM-DD``)."""

    holders: dict[str, int]  # at the end of every day of the window
    volume: dict[str, int]  # days with trades only
    creator_fees: dict[str, int]  # days with trades only


def daily_market(trades: Sequence[Trade], first_day: date, days: int) -> DailyMarket:
    """Replays one avatar's trades (all of them, oldest first: holders count from the first) into daily figures
    from ``first_day`` for ``days`` days."""
    balances: dict[str, int] = defaultdict(int)
    holders = 0
    holders_after: dict[date, int] = {}
    volume: dict[str, int] = defaultdict(int)
    creator_fees: dict[str, int] = defaultdict(int)
    for trade in trades:
        day = aware(trade.timestamp).astimezone(UTC).date()
        before = balances[trade.trader]
        balances[trade.trader] += trade.amount if trade.is_buy else -trade.amount
        holders += (balances[trade.trader] > 0) - (before > 0)
        holders_after[max(day, first_day)] = holders  # trades before the window open its first day
        if day >= first_day:
            volume[day.isoformat()] += trade.eth_amount
            creator_fees[day.isoformat()] += trade.creator_fee
    holders_by_day: dict[str, int] = {}
    carried = 0
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        carried = holders_after.get(day, carried)  # a day without trades keeps the day before's count
        holders_by_day[day.isoformat()] = carried
    return DailyMarket(holders_by_day, dict(volume), dict(creator_fees))


def _wei_strings(amounts: dict[str, int]) -> dict[str, str]:
    return {key: str(amount) for key, amount in amounts.items()}


@dataclass(frozen=True)
class CreatorMarket:
    """One of a creator's avatars as the market sees it: totals, fees, and daily figures (``YYYY-MM-DD``)."""

    avatar_id: str
    handle: str
    name: str
    listed: bool
    holders: int
    supply: int
    volume_total: str
    fees_earned: str
    fees_claimed: str
    fees_claimable: str
    holders_by_day: dict[str, int]
    volume_by_day: dict[str, str]
    fees_by_day: dict[str, str]


async def creator_markets(
    session: AsyncSession, reader: TwinKeysReader, creator: str, *, days: int = CREATOR_CHART_DAYS
) -> list[CreatorMarket]:
    """Per avatar of ``creator``: totals and daily figures of the market over the last ``days`` days."""
    avatars = (
        await session.scalars(select(Avatar).where(col(Avatar.creator) == creator).order_by(col(Avatar.created_at)))
    ).all()
    ids = [avatar.id for avatar in avatars]
    trades: dict[str, list[Trade]] = defaultdict(list)
    for trade in await session.scalars(select(Trade).where(col(Trade.avatar_id).in_(ids)).order_by(col(Trade.id))):
        trades[trade.avatar_id].append(trade)
    first_day = datetime.now(UTC).date() - timedelta(days=days - 1)
    markets = {
        m.avatar_id: m for m in await session.scalars(select(MarketAvatar).where(col(MarketAvatar.avatar_id).in_(ids)))
    }
    claimed: dict[str, int] = defaultdict(int)
    for avatar_id, amount in await session.execute(
        select(cast("ColumnElement[str]", col(FeeWithdrawal.avatar_id)), col(FeeWithdrawal.amount)).where(
            col(FeeWithdrawal.avatar_id).in_(ids)
        )
    ):  # a withdrawal of a listed avatar has its id
        claimed[avatar_id] += amount
    result = []
    for avatar in avatars:
        market = markets.get(avatar.id)
        daily = daily_market(trades[avatar.id], first_day, days)
        result.append(
            CreatorMarket(
                avatar_id=avatar.id,
                handle=avatar.handle,
                name=avatar.name,
                listed=avatar.listed_at is not None,
                holders=market.holders if market else 0,
                supply=market.supply if market else 0,
                volume_total=str(market.volume if market else 0),
                fees_earned=str(market.creator_fees if market else 0),
                fees_claimed=str(claimed[avatar.id]),
                fees_claimable=str(await reader.creator_fees(avatar.id) if market else 0),
                holders_by_day=daily.holders,
                volume_by_day=_wei_strings(daily.volume),
                fees_by_day=_wei_strings(daily.creator_fees),
            )
        )
    return result
