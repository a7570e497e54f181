"""The market as the indexer derives it from TwinKeys events. The chain is the truth;
every row here can be rebuilt by re-reading the chain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db.types import Wei


class Trade(SQLModel, table=True):
    """One `Trade` event, written exactly once (unique by transaction hash and log index)."""

    __tablename__ = "trade"
    __table_args__ = (
        UniqueConstraint("tx_hash", "log_index"),
        Index("ix_trade_avatar_id_id", "avatar_id", "id"),
        Index("ix_trade_trader_id", "trader", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tx_hash: str = Field(max_length=66)
    log_index: int
    block_number: int = Field(sa_type=BigInteger, index=True)
    timestamp: datetime = Field(index=True)
    avatar_id: str = Field(max_length=34)
    trader: str = Field(max_length=42)
    is_buy: bool
    amount: int = Field(sa_type=BigInteger)
    eth_amount: int = Field(sa_type=Wei)
    protocol_fee: int = Field(sa_type=Wei)
    creator_fee: int = Field(sa_type=Wei)
    supply_after: int = Field(sa_type=BigInteger)
    # The network fee the trader paid for the trade's transaction (gas used × effective gas price), on the
    # transaction's first trade only so that sums count it once; 0 when someone else sent the transaction;
    # None where unknown (indexed before fees were recorded, or a node without effectiveGasPrice).
    gas_paid: int | None = Field(default=None, sa_type=Wei, nullable=True)
    # The avatar's holders and the trader's keys just after the trade, as the projection folded them (the activity
    # feed's milestones); None on trades indexed before they were recorded.
    holders_after: int | None = None
    balance_after: int | None = Field(default=None, sa_type=BigInteger)


class Holding(SQLModel, table=True):
    """Keys of one avatar held by one wallet; rows at zero are deleted."""

    __tablename__ = "holding"

    avatar_id: str = Field(primary_key=True, max_length=34)
    holder: str = Field(primary_key=True, max_length=42, index=True)
    balance: int = Field(sa_type=BigInteger)


class MarketAvatar(SQLModel, table=True):
    """An avatar as created on-chain, with running totals kept by the indexer."""

    __tablename__ = "market_avatar"
    __table_args__ = (  # the rankings by market cap and by holders read their page through them
        Index("ix_market_avatar_market_cap_avatar_id", "market_cap", "avatar_id"),
        Index("ix_market_avatar_holders_avatar_id", "holders", "avatar_id"),
    )

    avatar_id: str = Field(primary_key=True, max_length=34)
    creator: str = Field(max_length=42, index=True)
    metadata_uri: str = Field(max_length=600)
    created_block: int = Field(sa_type=BigInteger, index=True)
    created_at: datetime
    supply: int = Field(default=0, sa_type=BigInteger)
    holders: int = Field(default=0)
    trade_count: int = Field(default=0)
    volume: int = Field(default=0, sa_type=Wei)
    creator_fees: int = Field(default=0, sa_type=Wei)
    protocol_fees: int = Field(default=0, sa_type=Wei)
    market_cap: int = Field(default=0, sa_type=Wei)
    last_trade_at: datetime | None = None


class FeeWithdrawal(SQLModel, table=True):
    """Fees of one avatar that its creator or the protocol treasury withdrew."""

    __tablename__ = "fee_withdrawal"
    __table_args__ = (UniqueConstraint("tx_hash", "log_index"),)

    id: int | None = Field(default=None, primary_key=True)
    tx_hash: str = Field(max_length=66)
    log_index: int
    block_number: int = Field(sa_type=BigInteger, index=True)
    timestamp: datetime
    avatar_id: str | None = Field(default=None, max_length=34, index=True)
    account: str = Field(max_length=42, index=True)
    recipient: str = Field(max_length=42)
    amount: int = Field(sa_type=Wei)
