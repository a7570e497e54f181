"""``create_app()``: the one place that wires settings, plugins, routes and lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig, SQLAlchemyPlugin
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.logging.config import StructLoggingConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.plugins.structlog import StructlogConfig, StructlogPlugin

from app.config import Settings, get_settings
from app.db import migrate
from app.db.engine import engine_from_settings
from app.errors import exception_handlers
from app.health import HealthController, database_check, register_check


def _lifespan(settings: Settings):
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if settings.auto_migrate:
            # Alembic's env runs its own event loop; give it a thread of its own.
            await asyncio.to_thread(migrate.upgrade, settings.database_url)
        yield

    return lifespan


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    engine = engine_from_settings(settings)
    db_config = SQLAlchemyAsyncConfig(
        engine_instance=engine,
        before_send_handler="autocommit",
        session_dependency_key="db_session",
        set_default_exception_handler=False,
    )
    prometheus = PrometheusConfig(app_name="twin", prefix="twin_http", group_path=True,
                                  exclude=["/metrics"])
    app = Litestar(
        route_handlers=[HealthController, PrometheusController],
        plugins=[
            SQLAlchemyPlugin(config=db_config),
            StructlogPlugin(StructlogConfig(
                structlog_logging_config=StructLoggingConfig(log_exceptions="never"),
                enable_middleware_logging=False,
            )),
        ],
        middleware=[prometheus.middleware],
        exception_handlers=exception_handlers,
        lifespan=[_lifespan(settings)],
        cors_config=CORSConfig(allow_origins=settings.cors_origins),
        openapi_config=OpenAPIConfig(title="Twin market", version="0.1.0", path="/schema"),
        debug=False,
    )
    app.state.settings = settings
    app.state.engine = engine
    register_check(app.state, "database", database_check(engine))
    return app
