"""The metadata document of an avatar. The other ``/api/avatars`` routes (launch, rankings, profile, edit) are
``app.catalog.controllers``': Litestar serves one path from one controller, and their answers are the catalog's."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from app.avatars import service
from app.avatars.schemas import AvatarMetadata
from app.errors import error_responses
from app.validation import AvatarIdParam, parse_avatar_id


class AvatarController(Controller):
    path = "/api/avatars"
    tags = ["avatars"]

    @get(
        "/{avatar_id:str}/metadata",
        summary="The public metadata document the on-chain URI points to",
        responses=error_responses(400, 404, 503),
    )
    async def metadata(self, db_session: NamedDependency[AsyncSession], avatar_id: AvatarIdParam) -> AvatarMetadata:
        return service.metadata_of(await service.get_avatar(db_session, parse_avatar_id(avatar_id)))
