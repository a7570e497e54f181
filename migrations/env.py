"""Alembic environment: async engine, batch mode on SQLite, the app's metadata."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from app.all_models import metadata
from app.config import get_settings
from app.db.engine import create_engine

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().database_url


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Render the project's own column types by their import path."""
    if type_ == "type" and obj.__class__.__module__ == "app.db.types":
        autogen_context.imports.add("import app.db.types")
        return f"app.db.types.{obj!r}"
    return False


def _include_name(name: str | None, type_: str, parents: Any) -> bool:
    """Leave out the full-text search the memory migrations create by hand, per database, and no model declares:
    SQLite's FTS5 table (and its shadow tables), PostgreSQL's stored tsvector column ``memory.document``."""
    if type_ == "table":
        return not (name or "").startswith("memory_fts")
    return not (type_ == "column" and name == "document" and parents.get("table_name") == "memory")


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    dialect = connection.dialect.name if connection is not None else (url or "").split(":")[0]
    context.configure(
        connection=connection,
        url=url,
        target_metadata=metadata,
        render_as_batch=dialect.startswith("sqlite"),
        compare_type=True,
        compare_server_default=True,
        render_item=_render_item,
        include_name=_include_name,
        literal_binds=connection is None,
    )


def run_migrations_offline() -> None:
    _configure(url=_database_url())
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_engine(_database_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
