"""``create_app()``: the one place that wires settings, plugins, routes and lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import structlog
from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig, SQLAlchemyPlugin
from litestar import Litestar
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from litestar.exceptions import NotFoundException
from litestar.logging.config import StructLoggingConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig
from litestar.plugins.structlog import StructlogConfig, StructlogPlugin
from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from litestar.types import ControllerRouterHandler
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.auth.controllers import AuthController
from app.auth.csrf import CSRFGuard
from app.auth.origins import cors_config
from app.auth.sessions import SESSION_COOKIE, SessionConfig
from app.autoscale.controllers import AutoscaleController
from app.autoscale.service import OPERATOR_BACKLOG, decisions_channel, running_autoscaler
from app.avatars.controllers import AvatarController
from app.catalog.activity import ActivityFeed
from app.catalog.controllers import CatalogController
from app.chain.client import Chain, connect_chain, watch_chain
from app.chain.controllers import ChainController, DevChainController
from app.chain.indexer import Indexer
from app.chain.service import watch_embedded
from app.chat import store as chat_store
from app.chat.controllers import ChatController
from app.chat.gate import ChatGate, open_gate
from app.chat.journal import ReplyJournal
from app.chat.sockets import SocketQuota
from app.chat.turn import ChatService
from app.cluster.leader import leadership_for
from app.config import Settings, get_settings
from app.db import migrate
from app.db.engine import engine_from_settings, session_factory
from app.db.models import utc_now
from app.demo.world import DemoWorld
from app.errors import exception_handlers
from app.hardening import GuardedRequest, keep_recursion_limit_sane
from app.health import HealthController, MetricsController, ReadinessCheck, database_check
from app.lib.redis import redis_client
from app.market.controllers import MarketController
from app.market.projection import MarketProjection
from app.market.service import TwinKeysReader
from app.memory.controllers import MemoryController
from app.memory.service import running_memory
from app.network import upkeep as network_upkeep
from app.network.controllers import NetworkController
from app.network.recorder import NodeOutcomeRecorder
from app.proxy.accounts import platform_wallet
from app.proxy.client.client import ProxyClient
from app.proxy.client.controllers import NodeDirectoryController
from app.proxy.config import ProxySettings, load_proxy_settings
from app.proxy.node.app import in_process_node
from app.reviews.controllers import ReviewController, ReviewDomainController, rate_limit_config
from app.services import SERVICE_DEPENDENCIES, Services
from app.web.activity import activity_socket
from app.web.assets import static_routers, template_config
from app.web.avatar_links import AvatarLinksController
from app.web.controllers import WebController, not_found
from app.web.network import NetworkPageController


def _chain_check(chain: Chain, indexer: Indexer) -> ReadinessCheck:
    async def check() -> str | None:
        await chain.w3.eth.block_number
        if indexer.last_error:
            raise RuntimeError(f"indexer paused: {indexer.last_error}")
        if chain.embedded is not None and chain.embedded.state_lost:
            return (
                "the embedded chain's saved state was lost: the contracts were deployed again and the "
                "index follows the new chain"
            )
        return None

    return check


@asynccontextmanager
async def _proxy_client(
    chain: Chain, proxy_settings: ProxySettings, on_outcome: NodeOutcomeRecorder
) -> AsyncIterator[ProxyClient]:
    """The client every chat reply goes through. On the embedded chain a node runs in this
    process, reached over HTTP semantics through an ASGI transport, exactly like a remote one."""
    wallet = platform_wallet(proxy_settings, chain)
    async with contextlib.AsyncExitStack() as stack:
        transports = {}
        own = []
        if chain.is_embedded:
            node = await stack.enter_async_context(in_process_node(proxy_settings, chain))
            transports[node.endpoint], own = node.transport, [node.tee_id]
        client = ProxyClient(
            chain, wallet, proxy_settings, transports=transports, own_tee_ids=own, on_outcome=on_outcome
        )
        stack.push_async_callback(client.aclose)
        yield client


def _lifespan(
    settings: Settings, proxy_settings: ProxySettings, engine: AsyncEngine, given_chain: Chain | None
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if settings.auto_migrate:
            # Alembic's env runs its own event loop; give it a thread of its own.
            await asyncio.to_thread(migrate.upgrade, settings.database_url)
        sessions = session_factory(engine)
        journal = ReplyJournal.for_database(settings.chat_journal_dir, settings.database_url)
        replayed = await journal.replay_at_start(sessions)  # paid replies first
        if not settings.redis_url and replayed:  # the only worker: what is still pending died with its process
            async with sessions() as session:
                await chat_store.settle_all_pending(session)
        chain = given_chain or await connect_chain(settings)
        reader = TwinKeysReader(chain.twin_keys)
        leadership = leadership_for(settings, sessions)  # indexer, autoscaler
        divisor = await reader.divisor()
        indexer = Indexer(
            chain.w3,
            chain.twin_keys,
            MarketProjection(divisor),
            sessions,
            confirmations=settings.chain_confirmations,
            start_block=chain.deployment_block,
            poll_interval_s=settings.indexer_poll_s,
            batch_blocks=settings.indexer_batch_blocks,
            max_blocks_per_s=settings.indexer_max_blocks_per_s,
            fence=leadership.fence,
            receipts_for=MarketProjection.RECEIPTS_FOR,
        )
        if settings.indexer_poll_s:
            leadership.singleton("indexer", indexer.run_while_leading)
        tasks = [
            asyncio.create_task(journal.run(sessions, interval_s=settings.chat_journal_replay_s), name="chat-journal")
        ]
        await network_upkeep.before_serving(sessions, utc_now())  # the rankings' 24 h current before serving
        tasks.append(asyncio.create_task(network_upkeep.run(sessions), name="network-upkeep"))
        if settings.chain_probe_interval_s:
            tasks.append(asyncio.create_task(watch_chain(chain, settings), name="chain-watch"))
        demo = _demo_world(settings, chain, sessions)
        if demo is not None:  # before the proxy node registers (see DemoWorld)
            await demo.build_history()
        if chain.owns_node:
            tasks.append(asyncio.create_task(watch_embedded(chain), name="embedded-chain"))
        try:
            async with _proxy_client(chain, proxy_settings, NodeOutcomeRecorder(sessions)) as proxy_client:
                nodes = max(1, len(await proxy_client.routable_nodes()))
                async with (
                    open_gate(settings, nodes) as gate,
                    running_autoscaler(
                        settings,
                        app.plugins.get(ChannelsPlugin),
                        sessions,
                        _serving_nodes(proxy_client, gate),
                        proxy_settings.models,
                        leadership=leadership,
                    ) as autoscale,
                    leadership.campaigning(),
                    running_memory(sessions, proxy_client, settings, gate.busy) as memory,
                ):
                    app.state.services = Services(
                        settings=settings,
                        sessions=sessions,
                        chain=chain,
                        reader=reader,
                        indexer=indexer,
                        proxy_client=proxy_client,
                        chat_gate=gate,
                        autoscale=autoscale,
                        reply_journal=journal,
                        leadership=leadership,
                        chat_sockets=SocketQuota(
                            per_session=settings.chat_max_sockets_per_session,
                            per_address=settings.chat_max_sockets_per_address,
                        ),
                        readiness_checks={
                            "database": database_check(engine),
                            "chain": _chain_check(chain, indexer),
                            "leadership": leadership.readiness,
                        },
                        activity_feed=ActivityFeed(sessions, divisor),
                        memory=memory,
                    )
                    if demo is not None:
                        chat = ChatService(
                            sessions, proxy_client, settings, meter=autoscale.meter, memory=memory, journal=journal
                        )
                        tasks.append(asyncio.create_task(demo.converse(chat), name="demo"))
                    yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if given_chain is None:
                await chain.close()
            await journal.aclose()
            await engine.dispose()

    return lifespan


def _demo_world(settings: Settings, chain: Chain, sessions: async_sessionmaker[AsyncSession]) -> DemoWorld | None:
    """The first start of an empty embedded world opens on a living market (app/demo)."""
    if not (chain.owns_node and settings.demo_world):
        return None
    base_url = settings.public_base_url or f"http://{settings.host}:{settings.port}"
    return DemoWorld(settings, chain, sessions, base_url)


def _serving_nodes(proxy_client: ProxyClient, gate: ChatGate) -> Callable[[], Awaitable[int]]:
    """The autoscaler's count of serving nodes: the registry's healthy ones. The chat queue's capacity
    follows it, so nodes that join take streams from the next tick on."""

    async def count() -> int:
        nodes = len(await proxy_client.routable_nodes())
        await gate.set_nodes(max(1, nodes))
        return nodes

    return count


def _channels(settings: Settings, redis: Redis | None) -> ChannelsPlugin:
    """Pub/sub to websockets: through Redis when configured (a publish reaches every worker's sockets),
    else in this process. A socket that reads slower than events come keeps only the newest few."""
    backend = RedisChannelsPubSubBackend(redis=redis) if redis is not None else MemoryChannelsBackend()
    return ChannelsPlugin(
        backend=backend,
        channels=[decisions_channel(settings)],
        subscriber_max_backlog=OPERATOR_BACKLOG,
        subscriber_backlog_strategy="dropleft",
    )


def _store(settings: Settings, namespace: str) -> Store:
    """Redis when configured (shared by every worker), else this process's memory."""
    if settings.redis_url:
        return RedisStore(
            redis_client(settings.redis_url),
            namespace=f"{settings.redis_namespace}:{namespace}",
            handle_client_shutdown=True,
        )
    return MemoryStore()


def _logging(settings: Settings) -> StructLoggingConfig:
    """Structured lines at ``TWIN_LOG_LEVEL``, ours and the libraries' (httpx, x402) alike."""
    level = settings.log_level.upper()
    config = StructLoggingConfig(
        log_exceptions="never", wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level))
    )
    assert config.standard_lib_logging_config is not None  # built by the config itself
    config.standard_lib_logging_config.root["level"] = level
    return config


ROUTES: list[ControllerRouterHandler] = [
    HealthController,
    MetricsController,
    ChainController,
    AuthController,
    CatalogController,
    AvatarController,
    MarketController,
    ChatController,
    MemoryController,
    AutoscaleController,
    NodeDirectoryController,
    WebController,
    AvatarLinksController,
    activity_socket,
    ReviewController,
    ReviewDomainController,
    NetworkController,
    NetworkPageController,
]


def create_app(
    settings: Settings | None = None, *, chain: Chain | None = None, proxy_settings: ProxySettings | None = None
) -> Litestar:
    """The backend. ``chain`` is connected at start unless given (`twin serve` and tests give it)."""
    keep_recursion_limit_sane()
    settings = settings or get_settings()
    proxy_settings = proxy_settings or load_proxy_settings()
    engine = engine_from_settings(settings)
    db_config = SQLAlchemyAsyncConfig(
        engine_instance=engine,
        session_maker=session_factory(engine),  # the app's sessions, the plugin's included, are one kind
        before_send_handler="autocommit",
        session_dependency_key="db_session",
        set_default_exception_handler=False,
    )
    prometheus = PrometheusConfig(app_name="twin", prefix="twin_http", group_path=True, exclude=["/metrics"])
    sessions = SessionConfig(
        store="sessions",
        key=SESSION_COOKIE,
        secure=settings.session_secure_cookie,
        samesite="lax",
        max_age=7 * 24 * 3600,
    )
    embedded_chain = chain.is_embedded if chain is not None else not settings.chain_rpc_url
    channels_redis = redis_client(settings.redis_url) if settings.redis_url else None
    channels = _channels(settings, channels_redis)
    app = Litestar(
        route_handlers=[*ROUTES, *static_routers(settings), *([DevChainController] if embedded_chain else [])],
        plugins=[
            SQLAlchemyPlugin(config=db_config),
            channels,
            StructlogPlugin(
                StructlogConfig(structlog_logging_config=_logging(settings), enable_middleware_logging=False)
            ),
        ],
        middleware=[
            prometheus.middleware,
            sessions.middleware,
            CSRFGuard(settings),
            rate_limit_config(settings).middleware,
        ],
        stores={"sessions": _store(settings, "sessions")},
        exception_handlers={**exception_handlers, NotFoundException: not_found},
        template_config=template_config(),
        lifespan=[_lifespan(settings, proxy_settings, engine, chain)],
        dependencies=SERVICE_DEPENDENCIES,
        cors_config=cors_config(settings),
        openapi_config=OpenAPIConfig(title="Twin market", version="0.1.0", path="/schema"),
        debug=False,
        request_class=GuardedRequest,
    )
    if channels_redis is not None:
        app.on_shutdown.append(channels_redis.aclose)  # after the plugin's own shutdown, which still uses it
    return app
