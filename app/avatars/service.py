"""Launching, editing and reading avatars. The persona never leaves for anyone but the creator."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

import msgspec
from eth_abi import encode
from eth_hash.auto import keccak
from eth_utils import to_checksum_address
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.avatars.models import Avatar
from app.avatars.schemas import AvatarCreate, AvatarMetadata, AvatarUpdate
from app.db.models import utc_now
from app.errors import Conflict, Forbidden, NotFound
from app.lib.time import aware

DEFAULT_LAUNCH_TTL_S = 86_400


def avatar_id_for(creator: str, nonce: int) -> str:
    """TwinKeys.avatarIdFor: bytes12(keccak256(abi.encode(creator, uint32 nonce))) then the nonce. The
    contract lets only ``creator`` create this id, so an id the API issued cannot be squatted."""
    tag = keccak(encode(["address", "uint32"], [to_checksum_address(creator), nonce]))[:12]
    return "0x" + (tag + nonce.to_bytes(4, "big")).hex()


def new_avatar_id(creator: str) -> str:
    """A fresh bytes16 id bound to ``creator`` (a random 32-bit nonce)."""
    return avatar_id_for(creator, secrets.randbits(32))


async def create_avatar(
    session: AsyncSession,
    *,
    creator: str,
    data: AvatarCreate,
    public_base_url: str,
    launch_ttl_s: int = DEFAULT_LAUNCH_TTL_S,
) -> Avatar:
    """A new avatar, or the creator's own avatar of that handle that the chain does not hold (its
    launch never reached the chain, or the chain lost it): launched again under the same id.

    A handle whose launch was never completed (unlisted, untouched for ``launch_ttl_s``) is released:
    it goes to the next creator who asks, under a new id bound to them."""
    existing = await session.scalar(select(Avatar).where(col(Avatar.handle) == data.handle))
    if existing is not None:
        if existing.listed_at is not None:
            raise Conflict(f"handle: @{data.handle} is taken", extra={"field": "handle"})
        if existing.creator == creator:
            for name, value in msgspec.structs.asdict(data).items():
                setattr(existing, name, value)
            existing.updated_at = utc_now()
            await session.flush()
            return existing
        if aware(existing.updated_at) > utc_now() - timedelta(seconds=launch_ttl_s):
            raise Conflict(
                f"handle: @{data.handle} is taken (an unfinished launch holds it for up to {launch_ttl_s} s)",
                extra={"field": "handle"},
            )
        await session.delete(existing)  # abandoned: its id stays bound to its creator, the handle is free
        await session.flush()
    avatar_id = new_avatar_id(creator)
    avatar = Avatar(
        id=avatar_id,
        creator=creator,
        metadata_uri=f"{public_base_url.rstrip('/')}/api/avatars/{avatar_id}/metadata",
        **msgspec.structs.asdict(data),
    )
    session.add(avatar)
    try:
        await session.flush()
    except IntegrityError:  # a concurrent launch took the handle between the check and the insert
        await session.rollback()
        raise Conflict(f"handle: @{data.handle} is taken", extra={"field": "handle"}) from None
    return avatar


async def get_avatar(session: AsyncSession, avatar_id: str) -> Avatar:
    avatar = await session.get(Avatar, avatar_id)
    if avatar is None:
        raise NotFound(f"no avatar with id {avatar_id}")
    return avatar


async def avatar_id_by_handle(session: AsyncSession, handle: str) -> str:
    """The id of the avatar ``@handle`` (the share link ``/avatars/@handle``)."""
    query = select(col(Avatar.id)).where(col(Avatar.handle) == handle.removeprefix("@").lower())
    avatar_id = await session.scalar(query)
    if avatar_id is None:
        raise NotFound(f"no avatar {handle}")
    return avatar_id


async def update_avatar(session: AsyncSession, *, avatar_id: str, editor: str, changes: AvatarUpdate) -> Avatar:
    avatar = await get_avatar(session, avatar_id)
    if avatar.creator != editor:
        raise Forbidden("only the avatar's creator can edit it")
    for name, value in msgspec.structs.asdict(changes).items():
        if value is not msgspec.UNSET:
            setattr(avatar, name, value)
    avatar.updated_at = utc_now()
    await session.flush()
    return avatar


async def mark_listed(session: AsyncSession, *, avatar_id: str, onchain_creator: str, at: datetime) -> bool:
    """List an avatar once the chain shows its creation by the same creator; False if it doesn't match."""
    avatar = await session.get(Avatar, avatar_id)
    if avatar is None or avatar.creator != onchain_creator:
        return False
    if avatar.listed_at is None:
        avatar.listed_at = at
    return True


async def unmark_listed(session: AsyncSession, avatar_id: str) -> None:
    """A re-org removed the creation: the avatar is no longer listed."""
    avatar = await session.get(Avatar, avatar_id)
    if avatar is not None:
        avatar.listed_at = None


async def avatars_by_ids(session: AsyncSession, avatar_ids: list[str]) -> dict[str, Avatar]:
    if not avatar_ids:
        return {}
    rows = await session.scalars(select(Avatar).where(col(Avatar.id).in_(avatar_ids)))
    return {avatar.id: avatar for avatar in rows}


def metadata_of(avatar: Avatar) -> AvatarMetadata:
    return AvatarMetadata(
        id=avatar.id,
        name=avatar.name,
        handle=avatar.handle,
        bio=avatar.bio,
        image=avatar.image_url,
        model=avatar.model,
        verification_level=avatar.verification_level,
        creator=avatar.creator,
    )
