"""Who may chat with an avatar: its creator, and whoever holds at least one of its keys (per the index). The chat
page says so before the socket opens, and the socket refuses anyone else; both ask :func:`chat_access`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from app.avatars.models import Avatar
from app.chat.frames import ChatRefused
from app.market import service as market


class AccessKind(StrEnum):
    signed_out = "signed_out"
    creator = "creator"
    holder = "holder"
    no_key = "no_key"


@dataclass(frozen=True)
class ChatAccess:
    kind: AccessKind
    keys: int  # the viewer's keys of the avatar (0 signed out)

    @property
    def may_chat(self) -> bool:
        return self.kind in (AccessKind.creator, AccessKind.holder)


async def chat_access(session: AsyncSession, avatar: Avatar, viewer: str | None) -> ChatAccess:
    """Whether ``viewer`` may chat with ``avatar``, and why."""
    if viewer is None:
        return ChatAccess(AccessKind.signed_out, 0)
    keys = await market.balance_of(session, avatar.id, viewer)
    kind = AccessKind.creator if viewer == avatar.creator else AccessKind.holder if keys else AccessKind.no_key
    return ChatAccess(kind, keys)


async def keys_held(session: AsyncSession, avatar: Avatar, fan: str) -> int:
    """The fan's keys of the avatar; :class:`ChatRefused` (``no_key``) if the fan may not chat with it."""
    access = await chat_access(session, avatar, fan)
    if not access.may_chat:
        raise ChatRefused("no_key", f"hold at least one key of @{avatar.handle} to chat with it")
    return access.keys
