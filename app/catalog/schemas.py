"""What the API and the pages show of an avatar across domains: its market with its chat activity."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from msgspec import Struct

from app.reviews.schemas import RatingOut


class RankingSort(StrEnum):
    market_cap = "market_cap"
    volume_24h = "volume_24h"
    holders = "holders"
    chats_24h = "chats_24h"
    newest = "newest"
    rating = "rating"  # the Bayesian average of reviews (app.reviews)


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
    rating: RatingOut | None = None  # filled in by app.catalog.ratings


class AvatarProfile(Struct):
    id: str
    handle: str
    name: str
    bio: str
    image_url: str
    model: str
    verification_level: str
    creator: str
    metadata_uri: str
    listed: bool
    created_at: datetime
    market: MarketStats
    persona: str | None = None  # only for the avatar's creator


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
