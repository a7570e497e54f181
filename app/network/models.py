"""Rollups of the network's usage per avatar, model, node and UTC day, kept as events arrive.

Trades come from the indexer's projection (and are taken back out on a re-org), chats from the chat
service in the transaction that ends their turn, node outcomes from the proxy client. Every figure
the network page shows is read from here, never by counting trades or messages."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from app.db.types import Wei


class NetworkAvatar(SQLModel, table=True):
    """One avatar's firsts: listed on-chain, first chat, first key bought by someone other than its creator."""

    __tablename__ = "network_avatar"

    avatar_id: str = Field(primary_key=True, max_length=34)
    creator: str | None = Field(default=None, max_length=42, index=True)
    listed_at: datetime | None = Field(default=None, index=True)
    first_chat_at: datetime | None = None
    first_outside_buy_at: datetime | None = None


class AvatarDay(SQLModel, table=True):
    """One avatar's chats and trades on one UTC day."""

    __tablename__ = "network_avatar_day"
    __table_args__ = (Index("ix_network_avatar_day_day", "day"),)

    avatar_id: str = Field(primary_key=True, max_length=34)
    day: date = Field(primary_key=True)
    chats: int = 0  # fans' messages whose turn ended (answered or not)
    chatters: int = 0  # distinct fans among them
    trades: int = 0
    volume: int = Field(default=0, sa_type=Wei)
    creator_fees: int = Field(default=0, sa_type=Wei)


class AvatarHour(SQLModel, table=True):
    """One avatar's chats and traded volume in one UTC hour, kept like ``AvatarDay``: what the rankings' last
    24 hours (``AvatarRecent``) are summed from and taken back out of as the hours pass."""

    __tablename__ = "network_avatar_hour"
    __table_args__ = (Index("ix_network_avatar_hour_hour", "hour"),)

    avatar_id: str = Field(primary_key=True, max_length=34)
    hour: datetime = Field(primary_key=True)  # its start, UTC
    chats: int = 0  # as AvatarDay's: fans' messages whose turn ended in this hour
    volume: int = Field(default=0, sa_type=Wei)


class ModelDay(SQLModel, table=True):
    """Replies of one model on one UTC day: how many, their tokens, and what the nodes were paid."""

    __tablename__ = "network_model_day"
    __table_args__ = (Index("ix_network_model_day_day", "day"),)

    model: str = Field(primary_key=True, max_length=128)
    day: date = Field(primary_key=True)
    replies: int = 0  # complete, verified replies
    failed: int = 0  # turns that ended without one
    prompt_tokens: int = 0
    completion_tokens: int = 0
    spend: int = Field(default=0, sa_type=Wei)  # OPG wei paid for replies (a rejected one counts: it was paid)
    paid_replies: int = 0


class NodeDay(SQLModel, table=True):
    """One proxy node's replies, failures and earnings on one UTC day, as the proxy client saw them."""

    __tablename__ = "network_node_day"
    __table_args__ = (Index("ix_network_node_day_day", "day"),)

    node: str = Field(primary_key=True, max_length=600)  # its endpoint
    day: date = Field(primary_key=True)
    replies: int = 0
    failures: int = 0
    earned: int = Field(default=0, sa_type=Wei)


class Chatter(SQLModel, table=True):
    """A fan's first and last day of chatting anywhere: chatters in a window ending today are those
    whose last day falls in it, counted from an index instead of from messages."""

    __tablename__ = "network_chatter"
    __table_args__ = (Index("ix_network_chatter_last_day", "last_day"),)

    fan: str = Field(primary_key=True, max_length=42)
    first_day: date
    last_day: date


class AvatarChatter(SQLModel, table=True):
    """A fan's chatting with one avatar: first and last day, on how many days, how many chats."""

    __tablename__ = "network_avatar_chatter"
    __table_args__ = (
        Index("ix_network_avatar_chatter_avatar_id_last_day", "avatar_id", "last_day"),
        Index("ix_network_avatar_chatter_avatar_id_last_hour", "avatar_id", "last_hour"),
        Index("ix_network_avatar_chatter_last_hour", "last_hour"),  # the upkeep: who leaves the recent hours
    )

    avatar_id: str = Field(primary_key=True, max_length=34)
    fan: str = Field(primary_key=True, max_length=42)
    first_day: date
    last_day: date
    active_days: int = 1
    chats: int = 0
    last_hour: datetime  # the start of the latest UTC hour they chatted in: the rankings' distinct chatters


class NetworkDay(SQLModel, table=True):
    """The whole network on one UTC day, kept beside the avatars' own days so that a window's daily series and
    totals read one row per day: distinct chatters (not a sum of the avatars' own), chats, active avatars,
    trades, and the avatars listed that day with how many of them have had a first chat and a first outside
    buyer since."""

    __tablename__ = "network_day"

    day: date = Field(primary_key=True)
    chatters: int = 0  # distinct fans who chatted this day
    last_chatters: int = 0  # fans whose latest chatting day is this one: a window's distinct chatters sum these
    chats: int = 0
    active_avatars: int = 0  # avatars chatted with this day
    trades: int = 0
    volume: int = Field(default=0, sa_type=Wei)
    creator_fees: int = Field(default=0, sa_type=Wei)
    new_avatars: int = 0  # listed this day
    new_chatted: int = 0  # of those, chatted with (ever)
    new_bought: int = 0  # of those, with a key bought by someone besides their creator (ever)


class UsageWindow(SQLModel, table=True):
    """A window's per-avatar and per-creator totals (``AvatarWindow``, ``CreatorWindow``, ``FeeWindow``) cover its
    ``days`` UTC days ending ``last_day``. Rebuilt from the day rollups by the background upkeep once a UTC day
    begins (``app.network.upkeep``; by a request only when never built or more than a day behind); kept by every
    event on a day they cover in between."""

    __tablename__ = "network_window"

    days: int = Field(primary_key=True)
    last_day: date | None = None


class AvatarWindow(SQLModel, table=True):
    """One avatar's chats over a window (see ``UsageWindow``): how activity is spread, without a day scan."""

    __tablename__ = "network_avatar_window"
    __table_args__ = (Index("ix_network_avatar_window_days_chats", "days", "chats"),)

    days: int = Field(primary_key=True)
    avatar_id: str = Field(primary_key=True, max_length=34)
    chats: int = 0


class CreatorWindow(SQLModel, table=True):
    """One creator's fees over a window (see ``UsageWindow``)."""

    __tablename__ = "network_creator_window"
    __table_args__ = (Index("ix_network_creator_window_days_creator_fees", "days", "creator_fees"),)

    days: int = Field(primary_key=True)
    creator: str = Field(primary_key=True, max_length=42)  # "" for avatars whose creator is not known
    creator_fees: int = Field(default=0, sa_type=Wei)


class FeeWindow(SQLModel, table=True):
    """How a window's creators' fees (``CreatorWindow``, those above zero) are spread, summed again from them in each
    transaction that changes them (the indexer's, a re-org's, the window's rebuild): a request reads one row."""

    __tablename__ = "network_fee_window"

    days: int = Field(primary_key=True)
    creators: int = 0
    median: int = Field(default=0, sa_type=Wei)  # the fees at place n // 2 from the least, from 0
    p90: int = Field(default=0, sa_type=Wei)  # at place 9n // 10
    largest: int = Field(default=0, sa_type=Wei)
    top_10: int = Field(default=0, sa_type=Wei)  # the ten largest, summed
    hhi: float = 0.0
    gini: float = 0.0


class RecentHours(SQLModel, table=True):
    """Where the rankings' recent hours start (one row): ``AvatarRecent`` sums every avatar's ``AvatarHour`` rows
    from ``first_hour`` on, and is empty while ``first_hour`` is None (not summed yet). Moved forward (the hours
    before it taken back out) once an hour begins, so the sums cover the current UTC hour and the 23 before it —
    24 hourly buckets, 23 to 24 h of time — or one bucket more until the move is done. Events share-lock it, the
    move locks it: see ``UsageWindow``."""

    __tablename__ = "network_recent_hours"

    id: int = Field(default=1, primary_key=True)
    first_hour: datetime | None = None


class AvatarRecent(SQLModel, table=True):
    """One avatar's chats, traded volume and distinct chatters over the recent hours (see ``RecentHours``): the
    rankings' ``chats_24h``, ``volume_24h`` and ``chatters_24h``. Only avatars with some: a missing row is zero."""

    __tablename__ = "network_avatar_recent"
    __table_args__ = (  # the rankings by chats_24h and volume_24h read the page through them
        Index("ix_network_avatar_recent_chats_avatar_id", "chats", "avatar_id"),
        Index("ix_network_avatar_recent_volume_avatar_id", "volume", "avatar_id"),
    )

    avatar_id: str = Field(primary_key=True, max_length=34)
    chats: int = 0
    volume: int = Field(default=0, sa_type=Wei)
    chatters: int = 0  # fans whose latest chat with it ended in the recent hours
