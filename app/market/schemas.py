"""What the market API returns. Wei amounts are decimal strings: JSON numbers lose precision."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from msgspec import Struct


class Side(StrEnum):
    buy = "buy"
    sell = "sell"


class CandleInterval(StrEnum):
    m1 = "1m"
    m5 = "5m"
    m15 = "15m"
    h1 = "1h"
    h4 = "4h"
    d1 = "1d"


class Quote(Struct):
    avatar_id: str
    side: Side
    amount: int
    block_number: int
    supply: int
    price: str
    protocol_fee: str
    creator_fee: str
    total: str
    slippage_bps: int
    deadline: int
    max_total_cost: str | None = None
    min_proceeds: str | None = None


class TradeOut(Struct):
    id: int
    tx_hash: str
    block_number: int
    timestamp: datetime
    avatar_id: str
    trader: str
    side: Side
    amount: int
    price: str
    protocol_fee: str
    creator_fee: str
    supply_after: int
    gas_paid: str | None  # the network fee the trader paid for it (see app.market.models.Trade); None: unknown


class HoldingOut(Struct):
    avatar_id: str
    handle: str
    name: str
    balance: int
    sellable: int
    sell_value: str
    cost_basis: str
    gas_paid: str  # the network fees the wallet's trades of this avatar paid, as far as known
    gas_paid_known: bool  # False when some of those trades were indexed before fees were recorded


class HolderOut(Struct):
    holder: str
    balance: int


class Candle(Struct):
    start: datetime
    open: str
    high: str
    low: str
    close: str
    volume: str
    trades: int
