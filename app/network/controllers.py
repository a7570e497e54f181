"""The network's usage, public: JSON, CSV, and one avatar's own chat figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Controller, MediaType, Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import Parameter
from litestar.stores.base import Store
from sqlalchemy.ext.asyncio import AsyncSession

from app.avatars.service import get_avatar
from app.config import Settings
from app.db.models import utc_now
from app.errors import error_responses
from app.network.usage import (
    AvatarUsage,
    CsvSection,
    NetworkUsage,
    Window,
    avatar_usage,
    network_usage,
    usage_csv,
)
from app.validation import AvatarIdParam, BadInput, parse_avatar_id

WindowParam = Annotated[
    str,
    Parameter(
        description="24h, 7d or 30d: whole UTC days ending today",
        schema_extra={"enum": [window.value for window in Window]},
    ),
]
FormatParam = Annotated[str, Parameter(description="json or csv", schema_extra={"enum": ["json", "csv"]})]
SectionParam = Annotated[
    str,
    Parameter(
        description="with format=csv: daily, models or nodes",
        schema_extra={"enum": [section.value for section in CsvSection]},
    ),
]
USAGE_STORE = "network_usage"


Choice = TypeVar("Choice", Window, CsvSection)


def parse_choice(kind: type[Choice], value: str, field: str) -> Choice:
    try:
        return kind(value)
    except ValueError:
        raise BadInput(field, f"one of {', '.join(choice.value for choice in kind)}") from None


async def cached_usage(store: Store, session: AsyncSession, window: Window, ttl_s: int) -> NetworkUsage:
    """The window's usage, computed from the rollups at most once per ``ttl_s`` (and per UTC day)."""
    today = utc_now().date()
    key = f"{window.value}:{today.isoformat()}"
    if ttl_s and (cached := await store.get(key)) is not None:
        return msgspec.msgpack.decode(cached, type=NetworkUsage)
    usage = await network_usage(session, window, today)
    if ttl_s:
        await store.set(key, msgspec.msgpack.encode(usage), expires_in=ttl_s)
    return usage


@dataclass
class UsageOperation(Operation):
    """The usage route answers JSON, or CSV with ``format=csv``: both documented."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse):
            ok.content = {**(ok.content or {}), "text/csv": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))}


class NetworkController(Controller):
    tags = ["network"]

    @get(
        "/api/network/usage",
        summary="The network's usage over a window: chats, spread, models, nodes, fees, new avatars, per day",
        responses=error_responses(400, 503),
        operation_class=UsageOperation,
    )
    async def usage(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[Settings],
        db_session: NamedDependency[AsyncSession],
        window: WindowParam = "24h",
        format: FormatParam = "json",
        section: SectionParam = "daily",
    ) -> Response[NetworkUsage]:
        chosen = parse_choice(Window, window, "window")
        if format not in ("json", "csv"):
            raise BadInput("format", "json or csv")
        chosen_section = parse_choice(CsvSection, section, "section")
        usage = await cached_usage(
            request.app.stores.get(USAGE_STORE), db_session, chosen, settings.network_usage_cache_s
        )
        if format == "csv":
            name = f"twin-network-{chosen.value}-{chosen_section.value}.csv"
            return Response(
                usage_csv(usage, chosen_section),  # type: ignore[arg-type]
                media_type="text/csv",
                headers={"Content-Disposition": f'attachment; filename="{name}"'},
            )
        return Response(usage, media_type=MediaType.JSON)

    @get(
        "/api/avatars/{avatar_id:str}/usage",
        summary="An avatar's chats per day, chatters and returning chatters",
        responses=error_responses(400, 404, 503),
    )
    async def avatar(
        self, db_session: NamedDependency[AsyncSession], avatar_id: AvatarIdParam, window: WindowParam = "30d"
    ) -> AvatarUsage:
        avatar = await get_avatar(db_session, parse_avatar_id(avatar_id))
        return await avatar_usage(db_session, avatar.id, parse_choice(Window, window, "window"), utc_now().date())
