"""HTTP endpoints that answer with views across domains: rankings, profiles, the creator's stats; and launch."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, JSONBody, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.deps import provide_current_address, provide_optional_address
from app.avatars import service as avatars
from app.avatars.models import Avatar
from app.avatars.schemas import AvatarCreate, AvatarLaunched, AvatarUpdate
from app.catalog import service
from app.catalog.schemas import AvatarProfile, CreatorAvatarStats, RankedAvatar, RankingSort
from app.config import Settings
from app.errors import SESSION_WRITE, error_responses
from app.lib.pagination import Page
from app.market.service import TwinKeysReader
from app.reviews.service import Prior
from app.validation import AvatarIdParam, parse_avatar_id


def public_base_url(request: Request[Any, Any, Any], settings: Settings) -> str:
    return settings.public_base_url or str(request.base_url)


def launched(avatar: Avatar) -> AvatarLaunched:
    return AvatarLaunched(
        id=avatar.id,
        handle=avatar.handle,
        metadata_uri=avatar.metadata_uri,
        creator=avatar.creator,
        listed=avatar.listed_at is not None,
        persona=avatar.persona,
        name=avatar.name,
        model=avatar.model,
        verification_level=avatar.verification_level,
    )


class CatalogController(Controller):
    """``/api/avatars`` and the creator's stats. Launching is the avatars domain's (this controller only calls its
    service): it shares the rankings' path, and Litestar serves one path from one controller."""

    tags = ["avatars"]

    @post(
        "/api/avatars/",
        summary="Launch an avatar (signed in); then create it on-chain from the same wallet",
        dependencies={"address": Provide(provide_current_address)},
        status_code=201,
        responses=error_responses(400, 401, 409, 503, *SESSION_WRITE),
    )
    async def launch(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[Settings],
        db_session: NamedDependency[AsyncSession],
        address: NamedDependency[str],
        data: JSONBody[AvatarCreate],
    ) -> AvatarLaunched:
        avatar = await avatars.create_avatar(
            db_session,
            creator=address,
            data=data,
            public_base_url=public_base_url(request, settings),
            launch_ttl_s=settings.avatar_launch_ttl_s,
        )
        return launched(avatar)

    @get(
        "/api/avatars/",
        summary="Rankings: listed avatars by market cap, 24 h volume, holders, chats, newest or rating",
        responses=error_responses(400, 503),
    )
    async def rankings(
        self,
        reader: NamedDependency[TwinKeysReader],
        settings: NamedDependency[Settings],
        db_session: NamedDependency[AsyncSession],
        sort: FromQuery[RankingSort] = RankingSort.market_cap,
        q: Annotated[str | None, Parameter(max_length=64)] = None,
        cursor: Annotated[str | None, Parameter(max_length=512)] = None,
        limit: Annotated[
            int, Parameter(description="items per page, 1–100", schema_extra={"minimum": 1, "maximum": 100})
        ] = 20,
    ) -> Page[RankedAvatar]:
        return await service.ranked_page(
            db_session, reader, Prior.of(settings), sort=sort, q=q, cursor=cursor, limit=limit
        )

    @get(
        "/api/avatars/{avatar_id:str}",
        summary="Public profile with market data (the persona only for its creator)",
        dependencies={"viewer": Provide(provide_optional_address)},
        responses=error_responses(400, 404, 503),
    )
    async def get_profile(
        self,
        reader: NamedDependency[TwinKeysReader],
        db_session: NamedDependency[AsyncSession],
        avatar_id: AvatarIdParam,
        viewer: NamedDependency[str | None],
    ) -> AvatarProfile:
        avatar = await avatars.get_avatar(db_session, parse_avatar_id(avatar_id))
        return await service.avatar_profile(db_session, reader, avatar, viewer)

    @patch(
        "/api/avatars/{avatar_id:str}",
        summary="Edit an avatar (its creator only)",
        dependencies={"address": Provide(provide_current_address)},
        responses=error_responses(400, 401, 403, 404, 503, *SESSION_WRITE),
    )
    async def edit(
        self,
        reader: NamedDependency[TwinKeysReader],
        db_session: NamedDependency[AsyncSession],
        avatar_id: AvatarIdParam,
        address: NamedDependency[str],
        data: JSONBody[AvatarUpdate],
    ) -> AvatarProfile:
        """The avatars domain makes the change; the answer is the profile it leaves."""
        avatar = await avatars.update_avatar(
            db_session, avatar_id=parse_avatar_id(avatar_id), editor=address, changes=data
        )
        return await service.avatar_profile(db_session, reader, avatar, address)

    @get(
        "/api/creators/me/stats",
        summary="Per avatar of the signed-in creator: holders, volume, fees, chats",
        dependencies={"address": Provide(provide_current_address)},
        responses=error_responses(401, 503),
        tags=["market"],
    )
    async def creator_stats(
        self,
        reader: NamedDependency[TwinKeysReader],
        db_session: NamedDependency[AsyncSession],
        address: NamedDependency[str],
    ) -> list[CreatorAvatarStats]:
        return await service.creator_dashboard(db_session, reader, address)
