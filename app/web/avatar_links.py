"""Avatar URLs beyond the pages: its drawn portrait, and ``/avatars/@handle`` as a share link that lands
on its page."""

from __future__ import annotations

from litestar import Controller, Response, get
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.avatars.models import Avatar
from app.avatars.service import get_avatar
from app.errors import NotFound
from app.validation import parse_avatar_id
from app.web.portraits import portrait_svg

PORTRAIT_MAX_AGE_S = 86_400  # the face is a function of the id; only its label (the name) may change


class AvatarLinksController(Controller):
    include_in_schema = False

    @get("/avatars/{avatar_id:str}/portrait.svg")
    async def portrait(self, db_session: AsyncSession, avatar_id: str) -> Response[str]:
        avatar = await get_avatar(db_session, parse_avatar_id(avatar_id))
        return Response(portrait_svg(avatar.id, f"Portrait of {avatar.name}"), media_type="image/svg+xml",
                        headers={"cache-control": f"public, max-age={PORTRAIT_MAX_AGE_S}"})


async def avatar_id_by_handle(session: AsyncSession, handle: str) -> str:
    """The id of the avatar ``@handle`` (the share link ``/avatars/@handle``)."""
    avatar_id = await session.scalar(select(Avatar.id).where(Avatar.handle == handle.removeprefix("@").lower()))
    if avatar_id is None:
        raise NotFound(f"no avatar {handle}")
    return avatar_id
