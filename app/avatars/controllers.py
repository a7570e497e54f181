"""HTTP endpoints to launch, edit and read avatars."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Controller, Request, get, patch, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.deps import provide_current_address, provide_optional_address
from app.avatars import service
from app.avatars.models import Avatar
from app.avatars.schemas import AvatarCreate, AvatarLaunched, AvatarMetadata, AvatarProfile, AvatarUpdate
from app.chat import service as chat
from app.errors import SESSION_WRITE, error_responses
from app.market import service as market
from app.market.schemas import Page, RankedAvatar, RankingSort
from app.reviews import ranking
from app.reviews.service import Prior
from app.validation import AvatarIdParam, parse_avatar_id


def public_base_url(request: Request[Any, Any, Any], state: State) -> str:
    return state.settings.public_base_url or str(request.base_url)


def launched(avatar: Avatar) -> AvatarLaunched:
    return AvatarLaunched(id=avatar.id, handle=avatar.handle, metadata_uri=avatar.metadata_uri,
                          creator=avatar.creator, listed=avatar.listed_at is not None, persona=avatar.persona,
                          name=avatar.name, model=avatar.model, verification_level=avatar.verification_level)


async def profile(session: AsyncSession, state: State, avatar: Avatar, viewer: str | None) -> AvatarProfile:
    divisor = await state.twin_keys_reader.divisor()
    since = datetime.now(UTC) - market.DAY
    volume = (await market.volumes_since(session, since, [avatar.id])).get(avatar.id, 0)
    chats = (await chat.chat_activity_since(session, since, [avatar.id])).get(avatar.id, (0, 0))
    stats = market.market_stats(await market.market_of(session, avatar.id), divisor, volume, chats)
    return AvatarProfile(
        id=avatar.id, handle=avatar.handle, name=avatar.name, bio=avatar.bio, image_url=avatar.image_url,
        model=avatar.model, verification_level=avatar.verification_level, creator=avatar.creator,
        metadata_uri=avatar.metadata_uri, listed=avatar.listed_at is not None, created_at=avatar.created_at,
        market=stats, persona=avatar.persona if viewer == avatar.creator else None,
    )


async def ranked_page(session: AsyncSession, state: State, *, sort: RankingSort, q: str | None, cursor: str | None,
                      limit: int) -> Page[RankedAvatar]:
    """One page of the rankings, as the API and the marketplace page show them, each with its rating."""
    divisor, prior = await state.twin_keys_reader.divisor(), Prior.of(state.settings)
    if sort is RankingSort.rating:
        return await ranking.by_rating(session, prior, divisor=divisor, q=q, cursor=cursor,
                                       limit=market.check_limit(limit))
    return await ranking.with_ratings(session, await market.rankings(
        session, divisor=divisor, sort=sort, q=q, cursor=cursor, limit=market.check_limit(limit),
        chat_activity=await chat.chat_activity_since(session, datetime.now(UTC) - market.DAY)), prior)


class AvatarController(Controller):
    path = "/api/avatars"
    tags = ["avatars"]

    @post("/", summary="Launch an avatar (signed in); then create it on-chain from the same wallet",
          dependencies={"address": Provide(provide_current_address)}, status_code=201,
          responses=error_responses(400, 401, 409, 503, *SESSION_WRITE))
    async def launch(self, request: Request[Any, Any, Any], state: State, db_session: AsyncSession, address: str,
                     data: AvatarCreate) -> AvatarLaunched:
        avatar = await service.create_avatar(db_session, creator=address, data=data,
                                             public_base_url=public_base_url(request, state),
                                             launch_ttl_s=state.settings.avatar_launch_ttl_s)
        return launched(avatar)

    @get("/", summary="Rankings: listed avatars by market cap, 24 h volume, holders, chats, newest or rating",
         responses=error_responses(400, 503))
    async def rankings(self, state: State, db_session: AsyncSession, sort: RankingSort = RankingSort.market_cap,
                       q: Annotated[str | None, Parameter(max_length=64)] = None,
                       cursor: Annotated[str | None, Parameter(max_length=512)] = None,
                       limit: Annotated[int, Parameter(description="items per page, 1–100", schema_extra={
                           "minimum": 1, "maximum": 100})] = 20) -> Page[RankedAvatar]:
        return await ranked_page(db_session, state, sort=sort, q=q, cursor=cursor, limit=limit)

    @get("/{avatar_id:str}", summary="Public profile with market data (the persona only for its creator)",
         dependencies={"viewer": Provide(provide_optional_address)}, responses=error_responses(400, 404, 503))
    async def get_profile(self, state: State, db_session: AsyncSession, avatar_id: AvatarIdParam,
                          viewer: str | None) -> AvatarProfile:
        avatar = await service.get_avatar(db_session, parse_avatar_id(avatar_id))
        return await profile(db_session, state, avatar, viewer)

    @patch("/{avatar_id:str}", summary="Edit an avatar (its creator only)",
           dependencies={"address": Provide(provide_current_address)},
           responses=error_responses(400, 401, 403, 404, 503, *SESSION_WRITE))
    async def edit(self, state: State, db_session: AsyncSession, avatar_id: AvatarIdParam, address: str,
                   data: AvatarUpdate) -> AvatarProfile:
        avatar = await service.update_avatar(db_session, avatar_id=parse_avatar_id(avatar_id), editor=address,
                                             changes=data)
        return await profile(db_session, state, avatar, address)

    @get("/{avatar_id:str}/metadata", summary="The public metadata document the on-chain URI points to",
         responses=error_responses(400, 404, 503))
    async def metadata(self, db_session: AsyncSession, avatar_id: AvatarIdParam) -> AvatarMetadata:
        return service.metadata_of(await service.get_avatar(db_session, parse_avatar_id(avatar_id)))
