"""Avatar URLs beyond the pages: its drawn portrait (the share link ``/avatars/@handle`` is the avatar
page's own: see ``WebController.avatar``)."""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from sqlalchemy.ext.asyncio import AsyncSession

from app.avatars.service import get_avatar
from app.validation import parse_avatar_id
from app.web.portraits import portrait_svg

PORTRAIT_MAX_AGE_S = 86_400  # the face is a function of the id; only its label (the name) may change


class AvatarLinksController(Controller):
    include_in_schema = False

    @get("/avatars/{avatar_id:str}/portrait.svg")
    async def portrait(self, db_session: NamedDependency[AsyncSession], avatar_id: FromPath[str]) -> Response[str]:
        avatar = await get_avatar(db_session, parse_avatar_id(avatar_id))
        return Response(
            portrait_svg(avatar.id, f"Portrait of {avatar.name}"),
            media_type="image/svg+xml",
            headers={"cache-control": f"public, max-age={PORTRAIT_MAX_AGE_S}"},
        )
