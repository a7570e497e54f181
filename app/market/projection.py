"""Turns TwinKeys events into market rows, and undoes them when a re-org removes their blocks.

Every running total (supply, holders, volume, fees, market cap) changes only here, by
applying a trade or its exact inverse, so the index always equals a replay of the chain.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.avatars import service as avatars
from app.chain.indexer import ChainEvent
from app.market import curve
from app.market.models import FeeWithdrawal, Holding, MarketAvatar, Trade


def avatar_id_hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


class MarketProjection:
    def __init__(self, curve_divisor: int) -> None:
        self._divisor = curve_divisor

    async def apply(self, session: AsyncSession, events: Sequence[ChainEvent]) -> None:
        for event in events:
            handler = getattr(self, f"_on_{event.name}", None)
            if handler is not None:
                await handler(session, event)

    async def revert_above(self, session: AsyncSession, block_number: int) -> None:
        trades = (await session.scalars(
            select(Trade).where(Trade.block_number > block_number).order_by(Trade.id.desc()))).all()
        touched = set()
        for trade in trades:
            await self._apply_trade(session, trade, direction=-1)
            touched.add(trade.avatar_id)
            await session.delete(trade)
        await session.flush()
        for avatar_id in touched:
            market = await session.get(MarketAvatar, avatar_id)
            if market is not None:
                market.last_trade_at = await session.scalar(
                    select(func.max(Trade.timestamp)).where(Trade.avatar_id == avatar_id))
        orphaned = (await session.scalars(
            select(MarketAvatar).where(MarketAvatar.created_block > block_number))).all()
        for market in orphaned:
            await avatars.unmark_listed(session, market.avatar_id)
            await session.delete(market)
        await session.execute(delete(FeeWithdrawal).where(FeeWithdrawal.block_number > block_number))

    # ---------------------------------------------------------------- event handlers

    async def _on_AvatarCreated(self, session: AsyncSession, event: ChainEvent) -> None:
        avatar_id = avatar_id_hex(event.args["id"])
        session.add(MarketAvatar(
            avatar_id=avatar_id, creator=event.args["creator"], metadata_uri=event.args["metadataURI"],
            created_block=event.block_number, created_at=event.timestamp,
        ))
        await avatars.mark_listed(session, avatar_id=avatar_id, onchain_creator=event.args["creator"],
                                  at=event.timestamp)

    async def _on_Trade(self, session: AsyncSession, event: ChainEvent) -> None:
        args = event.args
        trade = Trade(
            tx_hash=event.tx_hash, log_index=event.log_index, block_number=event.block_number,
            timestamp=event.timestamp, avatar_id=avatar_id_hex(args["id"]), trader=args["trader"],
            is_buy=args["isBuy"], amount=args["shareAmount"], eth_amount=args["ethAmount"],
            protocol_fee=args["protocolEthAmount"], creator_fee=args["subjectEthAmount"], supply_after=args["supply"],
        )
        session.add(trade)
        await self._apply_trade(session, trade, direction=+1)

    async def _on_CreatorFeesWithdrawn(self, session: AsyncSession, event: ChainEvent) -> None:
        session.add(FeeWithdrawal(
            tx_hash=event.tx_hash, log_index=event.log_index, block_number=event.block_number,
            timestamp=event.timestamp, avatar_id=avatar_id_hex(event.args["id"]), account=event.args["creator"],
            recipient=event.args["to"], amount=event.args["amount"],
        ))

    async def _on_ProtocolFeesWithdrawn(self, session: AsyncSession, event: ChainEvent) -> None:
        session.add(FeeWithdrawal(
            tx_hash=event.tx_hash, log_index=event.log_index, block_number=event.block_number,
            timestamp=event.timestamp, avatar_id=avatar_id_hex(event.args["id"]), account=event.args["treasury"],
            recipient=event.args["to"], amount=event.args["amount"],
        ))

    # ---------------------------------------------------------------- the one place totals change

    async def _apply_trade(self, session: AsyncSession, trade: Trade, *, direction: int) -> None:
        """Apply a trade (direction +1) or undo it (-1)."""
        market = await session.get(MarketAvatar, trade.avatar_id)
        if market is None:  # a trade always follows its avatar's creation; nothing to derive otherwise
            return
        key_change = trade.amount * direction * (1 if trade.is_buy else -1)
        holding = await session.get(Holding, (trade.avatar_id, trade.trader))
        before = holding.balance if holding else 0
        after = before + key_change
        if holding is None:
            holding = Holding(avatar_id=trade.avatar_id, holder=trade.trader, balance=after)
            session.add(holding)
        elif after == 0:
            await session.delete(holding)
            # Flush now: a later trade in the same batch may open this holding again.
            await session.flush()
        else:
            holding.balance = after
        market.holders += (after > 0) - (before > 0)
        # Undoing: the supply before the trade is the supply after it plus the (reversed) change.
        market.supply = trade.supply_after if direction > 0 else trade.supply_after + key_change
        market.trade_count += direction
        market.volume += direction * trade.eth_amount
        market.creator_fees += direction * trade.creator_fee
        market.protocol_fees += direction * trade.protocol_fee
        market.market_cap = curve.market_cap(market.supply, self._divisor)
        if direction > 0:
            market.last_trade_at = trade.timestamp
