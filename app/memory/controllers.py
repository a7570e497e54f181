"""The fan's memories with an avatar: ``GET/PATCH/DELETE /api/avatars/{id}/memories[/{memory_id}]``.

Only the signed-in fan's own thread: anyone else, the avatar's creator included, gets 404 for a memory.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, patch
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.deps import provide_current_address
from app.avatars.service import get_avatar
from app.errors import SESSION_WRITE, error_responses
from app.market.service import MAX_ROW_ID
from app.memory.schemas import MemoriesForgotten, MemoryOut, MemoryPatch
from app.memory.service import MemoryService
from app.validation import AvatarIdParam, BadInput, parse_avatar_id

MemoryId = Annotated[int, Parameter(description="a memory's id", ge=1, le=MAX_ROW_ID)]


def _memory(state: State) -> MemoryService:
    return state.memory  # type: ignore[no-any-return]


async def _avatar_id(db_session: AsyncSession, avatar_id: str) -> str:
    return (await get_avatar(db_session, parse_avatar_id(avatar_id))).id


class MemoryController(Controller):
    path = "/api/avatars/{avatar_id:str}/memories"
    tags = ["memory"]
    dependencies = {"address": Provide(provide_current_address)}

    @get("/", summary="What the avatar remembers about the signed-in fan, with the message each came from",
         responses=error_responses(400, 401, 404, 503))
    async def list_memories(self, state: State, db_session: AsyncSession, avatar_id: AvatarIdParam,
                            address: str) -> list[MemoryOut]:
        return await _memory(state).list_memories(db_session, await _avatar_id(db_session, avatar_id), address)

    @patch("/{memory_id:int}", summary="Edit or pin one of the signed-in fan's memories",
           responses=error_responses(400, 401, 404, 503, *SESSION_WRITE))
    async def edit(self, state: State, db_session: AsyncSession, avatar_id: AvatarIdParam, memory_id: MemoryId,
                   address: str, data: MemoryPatch) -> MemoryOut:
        if data.text is None and data.pinned is None:
            raise BadInput("body", "give text, pinned or both")
        return await _memory(state).edit(db_session, await _avatar_id(db_session, avatar_id), address, memory_id, data)

    @delete("/{memory_id:int}", summary="Forget one of the signed-in fan's memories",
            responses=error_responses(400, 401, 404, 503, *SESSION_WRITE))
    async def forget(self, state: State, db_session: AsyncSession, avatar_id: AvatarIdParam, memory_id: MemoryId,
                     address: str) -> None:
        await _memory(state).forget(db_session, await _avatar_id(db_session, avatar_id), address, memory_id)

    @delete("/", summary="Forget everything the avatar remembers about the signed-in fan", status_code=200,
            responses=error_responses(400, 401, 404, 503, *SESSION_WRITE))
    async def forget_everything(self, state: State, db_session: AsyncSession, avatar_id: AvatarIdParam,
                                address: str) -> MemoriesForgotten:
        count = await _memory(state).forget_everything(db_session, await _avatar_id(db_session, avatar_id), address)
        return MemoriesForgotten(forgotten=count)
