"""HTTP endpoints of the market: rankings, quotes, trades, holders, holdings, candles, creator stats."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.deps import provide_current_address
from app.avatars.service import get_avatar
from app.chat import service as chat
from app.errors import error_responses
from app.market import service
from app.market.schemas import (
    Candle,
    CandleInterval,
    CreatorAvatarStats,
    HolderOut,
    HoldingOut,
    Page,
    Quote,
    Side,
    TradeOut,
)
from app.validation import (
    AddressParam,
    AvatarIdParam,
    KeyAmountParam,
    parse_address,
    parse_avatar_id,
    parse_key_amount,
)

Cursor = Annotated[str | None, Parameter(description="next_cursor of the previous page", max_length=512)]
Limit = Annotated[int, Parameter(description="items per page, 1–100", schema_extra={"minimum": 1, "maximum": 100})]

SlippageParam = Annotated[int, Parameter(description="basis points the price may move, 0–5,000",
                                         schema_extra={"minimum": 0, "maximum": service.MAX_SLIPPAGE_BPS})]


async def creator_stats_with_chats(session: AsyncSession, reader: service.TwinKeysReader,
                                   creator: str) -> list[CreatorAvatarStats]:
    """The market's creator stats with the chat domain's daily figures (the API and the dashboard show them)."""
    stats = await service.creator_stats(session, reader, creator)
    avatar_ids = [row.avatar_id for row in stats]
    messages = await chat.messages_by_day(session, avatar_ids)
    spend = await chat.inference_spend_by_day(session, avatar_ids)
    return [msgspec.structs.replace(row, chat_messages_by_day=messages.get(row.avatar_id, {}),
                                    inference_spend_by_day=spend.get(row.avatar_id, {})) for row in stats]


class MarketController(Controller):
    tags = ["market"]

    @get("/api/avatars/{avatar_id:str}/quote", summary="Price, fees and bounds for the next buy or sell",
         responses=error_responses(400, 404, 503))
    async def quote(self, state: State, avatar_id: AvatarIdParam, side: FromQuery[Side], amount: KeyAmountParam,
                    slippage_bps: SlippageParam = 100) -> Quote:
        return await service.quote(state.twin_keys_reader, avatar_id=parse_avatar_id(avatar_id), side=side,
                                   amount=parse_key_amount(amount), slippage_bps=slippage_bps)

    @get("/api/avatars/{avatar_id:str}/holders", summary="Holders of an avatar's keys, largest first",
         responses=error_responses(400, 404, 503))
    async def holders(self, db_session: NamedDependency[AsyncSession], avatar_id: AvatarIdParam, cursor: Cursor = None,
                      limit: Limit = 50) -> Page[HolderOut]:
        avatar = await get_avatar(db_session, parse_avatar_id(avatar_id))
        return await service.holders(db_session, avatar.id, cursor=cursor, limit=service.check_limit(limit))

    @get("/api/avatars/{avatar_id:str}/trades", summary="An avatar's trades, newest first",
         responses=error_responses(400, 404, 503))
    async def avatar_trades(self, db_session: NamedDependency[AsyncSession], avatar_id: AvatarIdParam,
                            cursor: Cursor = None,
                            limit: Limit = 50) -> Page[TradeOut]:
        avatar = await get_avatar(db_session, parse_avatar_id(avatar_id))
        return await service.trades_page(db_session, avatar_id=avatar.id, cursor=cursor,
                                         limit=service.check_limit(limit))

    @get("/api/avatars/{avatar_id:str}/candles", summary="OHLC of the key price and volume",
         responses=error_responses(400, 404, 503))
    async def candles(self, state: State, db_session: NamedDependency[AsyncSession], avatar_id: AvatarIdParam,
                      interval: FromQuery[CandleInterval] = CandleInterval.h1) -> list[Candle]:
        avatar = await get_avatar(db_session, parse_avatar_id(avatar_id))
        return await service.candles(db_session, await state.twin_keys_reader.divisor(), avatar.id, interval)

    @get("/api/wallets/{address:str}/holdings", summary="A wallet's keys with their current sell value",
         responses=error_responses(400, 503))
    async def holdings(self, state: State, db_session: NamedDependency[AsyncSession],
                       address: AddressParam) -> list[HoldingOut]:
        return await service.holdings(db_session, state.twin_keys_reader, parse_address(address))

    @get("/api/wallets/{address:str}/trades", summary="A wallet's trades, newest first",
         responses=error_responses(400, 503))
    async def wallet_trades(self, db_session: NamedDependency[AsyncSession], address: AddressParam,
                            cursor: Cursor = None,
                            limit: Limit = 50) -> Page[TradeOut]:
        return await service.trades_page(db_session, trader=parse_address(address), cursor=cursor,
                                         limit=service.check_limit(limit))

    @get("/api/creators/me/stats", summary="Per avatar of the signed-in creator: holders, volume, fees, chats",
         dependencies={"address": Provide(provide_current_address)}, responses=error_responses(401, 503))
    async def creator_stats(self, state: State, db_session: NamedDependency[AsyncSession],
                            address: NamedDependency[str]) -> list[CreatorAvatarStats]:
        return await creator_stats_with_chats(db_session, state.twin_keys_reader, address)
