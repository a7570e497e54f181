"""The one async engine factory, for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool, StaticPool

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


async def claim_writer(session: AsyncSession) -> None:
    """Call first in a short transaction that writes: on SQLite it queues for the writer before
    holding a connection (:class:`SqliteWriterSession`); elsewhere it does nothing."""
    if isinstance(session, SqliteWriterSession):
        await session.claim_writer()


_WRITER_LOCKS: weakref.WeakKeyDictionary[Engine, asyncio.Lock] = weakref.WeakKeyDictionary()


def session_factory(engine: AsyncEngine) -> async_sessionmaker:
    """Sessions on ``engine``; on a pooled SQLite file, sessions that queue for its writer in this process."""
    if engine.dialect.name != "sqlite" or isinstance(engine.pool, (NullPool, StaticPool)):
        # Without a pool the engine serves several event loops (the test client's), and an asyncio
        # lock belongs to one; a memory database has a single connection anyway.
        return async_sessionmaker(engine, expire_on_commit=False)
    lock = _WRITER_LOCKS.setdefault(engine.sync_engine, asyncio.Lock())
    return async_sessionmaker(engine, class_=SqliteWriterSession, expire_on_commit=False, writer_lock=lock)


class SqliteWriterSession(AsyncSession):
    """A session that queues for its SQLite file's single writer in this process, in arrival order.

    SQLite lets one transaction write at a time; the others poll for the lock, sleeping up to 100 ms
    between tries, so under a burst of writers the polling (not the writing) sets the pace, and a
    writer can run out its busy timeout while the file is mostly idle. Here a transaction takes an
    asyncio lock before its first write and gives it back when it ends: writers hand the file on at
    once, in order, and reads never wait (WAL). A writer still queued after the busy timeout gets
    the same error SQLite would have given.
    """

    def __init__(self, *args: Any, writer_lock: asyncio.Lock, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._writer_lock = writer_lock
        self._writing = False
        for name in ("after_commit", "after_rollback", "after_soft_rollback"):
            event.listen(self.sync_session, name, self._release)

    async def claim_writer(self) -> None:
        """Queue for the writer now, before this session takes a pooled connection for its first
        statement: a transaction that will write anyway then waits without holding one."""
        if not self._writing:
            await self._take_writer()

    async def _write_ahead(self, statement: Any = None) -> None:
        """Take the writer lock if what comes next may write: pending changes (flushed first) or DML."""
        if self._writing or not (self.new or self.dirty or self.deleted or getattr(statement, "is_dml", False)):
            return
        await self._take_writer()

    async def _take_writer(self) -> None:
        try:
            async with asyncio.timeout(SQLITE_BUSY_TIMEOUT_MS / 1000):
                await self._writer_lock.acquire()
        except TimeoutError:
            raise OperationalError("queued for the SQLite writer", None, Exception("database is locked")) from None
        self._writing = True

    def _release(self, *_: Any) -> None:
        if self._writing:
            self._writing = False
            self._writer_lock.release()

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        await self._write_ahead(statement)
        return await super().execute(statement, *args, **kwargs)

    async def scalar(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        await self._write_ahead(statement)
        return await super().scalar(statement, *args, **kwargs)

    async def scalars(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        await self._write_ahead(statement)
        return await super().scalars(statement, *args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        await self._write_ahead()
        return await super().get(*args, **kwargs)

    async def flush(self, objects: Any = None) -> None:
        await self._write_ahead()
        await super().flush(objects)

    async def commit(self) -> None:
        await self._write_ahead()
        await super().commit()

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            self._release()
