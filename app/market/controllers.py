"""HTTP endpoints of the market: quotes, trades, holders, holdings, candles."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromQuery, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from app.avatars.service import get_avatar
from app.errors import error_responses
from app.lib.pagination import Page, check_limit
from app.market import service
from app.market.schemas import (
    Candle,
    CandleInterval,
    HolderOut,
    HoldingOut,
    Quote,
    Side,
    TradeOut,
)
from app.market.service import TwinKeysReader
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

SlippageParam = Annotated[
    int,
    Parameter(
        description="basis points the price may move, 0–5,000",
        schema_extra={"minimum": 0, "maximum": service.MAX_SLIPPAGE_BPS},
    ),
]


class MarketController(Controller):
    tags = ["market"]

    @get(
        "/api/avatars/{avatar_id:str}/quote",
        summary="Price, fees and bounds for the next buy or sell",
        responses=error_responses(400, 404, 503),
    )
    async def quote(
        self,
        reader: NamedDependency[TwinKeysReader],
        avatar_id: AvatarIdParam,
        side: FromQuery[Side],
        amount: KeyAmountParam,
        slippage_bps: SlippageParam = 100,
    ) -> Quote:
        return await service.quote(
            reader,
            avatar_id=parse_avatar_id(avatar_id),
            side=side,
            amount=parse_key_amount(amount),
            slippage_bps=slippage_bps,
        )

    @get(
        "/api/avatars/{avatar_id:str}/holders",
        summary="Holders of an avatar's keys, largest first",
        responses=error_responses(400, 404, 503),
    )
    async def holders(
        self,
        db_session: NamedDependency[AsyncSession],
        avatar_id: AvatarIdParam,
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> Page[HolderOut]:
        avatar = await get_avatar(db_session, parse_avatar_id(avatar_id))
        return await service.holders(db_session, avatar.id, cursor=cursor, limit=check_limit(limit))

    @get(
        "/api/avatars/{avatar_id:str}/trades",
        summary="An avatar's trades, newest first",
        responses=error_responses(400, 404, 503),
    )
    async def avatar_trades(
        self,
        db_session: NamedDependency[AsyncSession],
        avatar_id: AvatarIdParam,
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> Page[TradeOut]:
        avatar = await get_avatar(db_session, parse_avatar_id(avatar_id))
        return await service.trades_page(db_session, avatar_id=avatar.id, cursor=cursor, limit=check_limit(limit))

    @get(
        "/api/avatars/{avatar_id:str}/candles",
        summary="OHLC of the key price and volume",
        responses=error_responses(400, 404, 503),
    )
    async def candles(
        self,
        reader: NamedDependency[TwinKeysReader],
        db_session: NamedDependency[AsyncSession],
        avatar_id: AvatarIdParam,
        interval: FromQuery[CandleInterval] = CandleInterval.h1,
    ) -> list[Candle]:
        avatar = await get_avatar(db_session, parse_avatar_id(avatar_id))
        return await service.candles(db_session, await reader.divisor(), avatar.id, interval)

    @get(
        "/api/wallets/{address:str}/holdings",
        summary="A wallet's keys with their current sell value",
        responses=error_responses(400, 503),
    )
    async def holdings(
        self, reader: NamedDependency[TwinKeysReader], db_session: NamedDependency[AsyncSession], address: AddressParam
    ) -> list[HoldingOut]:
        return await service.holdings(db_session, reader, parse_address(address))

    @get(
        "/api/wallets/{address:str}/trades",
        summary="A wallet's trades, newest first",
        responses=error_responses(400, 503),
    )
    async def wallet_trades(
        self, db_session: NamedDependency[AsyncSession], address: AddressParam, cursor: Cursor = None, limit: Limit = 50
    ) -> Page[TradeOut]:
        return await service.trades_page(
            db_session, trader=parse_address(address), cursor=cursor, limit=check_limit(limit)
        )
