"""The one async engine factory, for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from app.config import Settings

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _enable_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL syncs at checkpoints, not at every commit: a power cut may lose the last
    # commits but never corrupts the file, and a commit stops costing an fsync (chain state, the
    # money, is re-indexed from the chain anyway).
    cursor.execute("PRAGMA synchronous=NORMAL")
    # SQLite takes one writer at a time; under a burst of chat messages a writer may queue for seconds.
    # Waiting (up to the pool's own wait) beats failing the message.
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def create_engine(database_url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    """Build the engine; on SQLite create the file's folder and turn on FKs and WAL.

    ``pool_size=0`` opens a connection per use instead of pooling (behind PgBouncer, or when
    several event loops share one engine, as the test client's do).
    """
    url = make_url(database_url)
    pooling: dict[str, Any] = {"poolclass": NullPool} if pool_size == 0 else {}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            if not pooling:  # writers queue on SQLite's lock, not on the pool; readers share the connections
                pooling = {"pool_size": pool_size, "max_overflow": pool_size}
        engine = create_async_engine(url, echo=echo, **pooling)
        event.listen(engine.sync_engine, "connect", _enable_sqlite_pragmas)
        return engine
    if not pooling:
        pooling = {"pool_pre_ping": True, "pool_size": pool_size, "max_overflow": 2 * pool_size}
    return create_async_engine(url, echo=echo, **pooling)


def engine_from_settings(settings: Settings) -> AsyncEngine:
    return create_engine(settings.database_url, echo=settings.database_echo, pool_size=settings.database_pool_size)


def session_factory(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)
