"""The fan's memories with an avatar: ``GET/PATCH/DELETE /api/avatars/{id}/memories[/{memory_id}]``.

Only the signed-in fan's own thread: anyone else, the avatar's creator included, gets 404 for a memory.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, patch
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.deps import provide_current_address
from app.avatars.service import get_avatar
from app.errors import SESSION_WRITE, error_responses
from app.lib.pagination import MAX_ROW_ID
from app.memory.schemas import MemoriesForgotten, MemoryOut, MemoryPatch
from app.memory.service import MemoryService
from app.validation import AvatarIdParam, BadInput, parse_avatar_id

MemoryId = Annotated[int, Parameter(description="a memory's id", ge=1, le=MAX_ROW_ID)]


async def _avatar_id(db_session: AsyncSession, avatar_id: str) -> str:
    return (await get_avatar(db_session, parse_avatar_id(avatar_id))).id


class MemoryController(Controller):
    path = "/api/avatars/{avatar_id:str}/memories"
    tags = ["memory"]
    dependencies = {"address": Provide(provide_current_address)}

    @get(
        "/",
        summary="What the avatar remembers about the signed-in fan, with the message each came from",
        responses=error_responses(400, 401, 404, 503),
    )
    async def list_memories(
        self,
        memory: NamedDependency[MemoryService],
        db_session: NamedDependency[AsyncSession],
        avatar_id: AvatarIdParam,
        address: NamedDependency[str],
    ) -> list[MemoryOut]:
        return await memory.list_memories(db_session, await _avatar_id(db_session, avatar_id), address)

    @patch(
        "/{memory_id:int}",
        summary="Edit or pin one of the signed-in fan's memories",
        responses=error_responses(400, 401, 404, 503, *SESSION_WRITE),
    )
    async def edit(
        self,
        memory: NamedDependency[MemoryService],
        db_session: NamedDependency[AsyncSession],
        avatar_id: AvatarIdParam,
        memory_id: MemoryId,
        address: NamedDependency[str],
        data: JSONBody[MemoryPatch],
    ) -> MemoryOut:
        if data.text is None and data.pinned is None:
            raise BadInput("body", "give text, pinned or both")
        return await memory.edit(db_session, await _avatar_id(db_session, avatar_id), address, memory_id, data)

    @delete(
        "/{memory_id:int}",
        summary="Forget one of the signed-in fan's memories",
        responses=error_responses(400, 401, 404, 503, *SESSION_WRITE),
    )
    async def forget(
        self,
        memory: NamedDependency[MemoryService],
        db_session: NamedDependency[AsyncSession],
        avatar_id: AvatarIdParam,
        memory_id: MemoryId,
        address: NamedDependency[str],
    ) -> None:
        await memory.forget(db_session, await _avatar_id(db_session, avatar_id), address, memory_id)

    @delete(
        "/",
        summary="Forget everything the avatar remembers about the signed-in fan",
        status_code=200,
        responses=error_responses(400, 401, 404, 503, *SESSION_WRITE),
    )
    async def forget_everything(
        self,
        memory: NamedDependency[MemoryService],
        db_session: NamedDependency[AsyncSession],
        avatar_id: AvatarIdParam,
        address: NamedDependency[str],
    ) -> MemoriesForgotten:
        count = await memory.forget_everything(db_session, await _avatar_id(db_session, avatar_id), address)
        return MemoriesForgotten(forgotten=count)
