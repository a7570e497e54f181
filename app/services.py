"""The app's services: built once in the lifespan, handed to handlers by Litestar's dependency injection.

A handler names the service it needs as a typed parameter (``reader: TwinKeysReader``, ``chat_gate: ChatGate``)
and gets it; nothing looks a service up on ``app.state`` by name. :data:`SERVICE_DEPENDENCIES` maps every field
of :class:`Services` to a provider, so a field added here is injectable under its own name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.autoscale.service import AutoscaleService
from app.catalog.activity import ActivityFeed
from app.chain.client import Chain
from app.chain.indexer import Indexer
from app.chat.gate import ChatGate
from app.chat.journal import ReplyJournal
from app.chat.sockets import SocketQuota
from app.cluster.leader import Leadership
from app.config import Settings
from app.health import ReadinessCheck
from app.market.service import TwinKeysReader
from app.memory.service import MemoryService
from app.proxy.client.client import ProxyClient


@dataclass(frozen=True)
class Services:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]  # for work outside a request's own session (a chat socket's turns)
    chain: Chain
    reader: TwinKeysReader
    indexer: Indexer
    proxy_client: ProxyClient
    chat_gate: ChatGate
    chat_sockets: SocketQuota
    autoscale: AutoscaleService
    reply_journal: ReplyJournal  # turn ends written ahead of the database (app/chat/journal.py)
    leadership: Leadership  # whether this worker runs the singletons (indexer, autoscaler)
    readiness_checks: Mapping[str, ReadinessCheck]
    activity_feed: ActivityFeed  # trades and launches for /ws/activity (app/web/activity.py)
    memory: MemoryService  # what avatars remember about fans (app/memory)


def services_of(app: Litestar) -> Services:
    """The running app's services (set by the lifespan before the first request)."""
    services: Services = app.state.services
    return services


def _provider(name: str) -> Callable[[State], Any]:
    def provide(state: State) -> Any:
        return getattr(state.services, name)

    return provide


SERVICE_DEPENDENCIES: dict[str, Provide] = {
    field.name: Provide(_provider(field.name), sync_to_thread=False) for field in dataclasses.fields(Services)
}
