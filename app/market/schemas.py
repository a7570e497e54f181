"""What the market API returns. Wei amounts are decimal strings: JSON numbers lose precision."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar

from msgspec import Struct

from app.reviews.schemas import RatingOut


class Side(StrEnum):
    buy = "buy"
    sell = "sell"


class RankingSort(StrEnum):
    market_cap = "market_cap"
    volume_24h = "volume_24h"
    holders = "holders"
    chats_24h = "chats_24h"
    newest = "newest"
    rating = "rating"  # the Bayesian average of reviews (app.reviews)


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


class MarketStats(Struct):
    supply: int
    holders: int
    next_key_price: str
    market_cap: str
    volume_total: str
    volume_24h: str
    trade_count: int
    creator_fees_earned: str
    chats_24h: int
    chatters_24h: int
    last_trade_at: datetime | None


class RankedAvatar(Struct):
    id: str
    handle: str
    name: str
    image_url: str
    model: str
    verification_level: str
    creator: str
    created_at: datetime
    market: MarketStats
    rating: RatingOut | None = None  # filled in by app.reviews.ranking


T = TypeVar("T")


class Page(Struct, Generic[T]):
    items: list[T]
    next_cursor: str | None


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


class HoldingOut(Struct):
    avatar_id: str
    handle: str
    name: str
    balance: int
    sellable: int
    sell_value: str
    cost_basis: str


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


class CreatorAvatarStats(Struct):
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
    chat_messages_by_day: dict[str, int]
    # The last 30 UTC days ("YYYY-MM-DD"): holders at each day's end (every day), and the days with trades'
    # volume and creator fees (wei), and with paid replies' inference spend (wei).
    holders_by_day: dict[str, int]
    volume_by_day: dict[str, str]
    fees_by_day: dict[str, str]
    inference_spend_by_day: dict[str, str]
