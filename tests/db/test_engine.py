"""The SQLite engine's connection settings: what keeps the embedded default safe and quick under load."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, text
from sqlalchemy.exc import IntegrityError

from app.db.engine import SQLITE_BUSY_TIMEOUT_MS, create_engine, session_factory

entry_table = Table("entry", MetaData(), Column("writer", Integer, nullable=False))


async def test_sqlite_connections_enforce_keys_use_wal_and_wait_for_the_writer(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/nested/twin.db")
    try:
        async with engine.connect() as connection:
            pragmas = {
                name: (await connection.execute(text(f"PRAGMA {name}"))).scalar_one()
                for name in ("foreign_keys", "journal_mode", "synchronous", "busy_timeout")
            }
    finally:
        await engine.dispose()

    assert (tmp_path / "nested" / "twin.db").exists()
    # synchronous 1 is NORMAL: in WAL mode, synced at checkpoints rather than at every commit
    assert pragmas == {
        "foreign_keys": 1,
        "journal_mode": "wal",
        "synchronous": 1,
        "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
    }


async def test_sqlite_writers_queue_in_arrival_order_and_all_land(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/twin.db", pool_size=5)
    sessions = session_factory(engine)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE entry (writer INTEGER NOT NULL)"))
    started: list[int] = []

    async def write(writer: int) -> None:
        async with sessions() as session:
            await session.execute(text("SELECT count(*) FROM entry"))  # reads never wait for the writer
            started.append(writer)
            await session.execute(insert(entry_table).values(writer=writer))
            await asyncio.sleep(0.01)  # the write transaction stays open across an await, as the app's do
            await session.commit()

    try:
        await asyncio.gather(*(write(writer) for writer in range(40)))
        async with sessions() as session:
            landed = list(await session.scalars(text("SELECT writer FROM entry ORDER BY rowid")))
    finally:
        await engine.dispose()

    assert sorted(landed) == list(range(40))
    assert landed == started  # handed from writer to writer in the order they asked, none polling SQLite


async def test_a_failed_write_hands_the_writer_on(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/twin.db", pool_size=2)
    sessions = session_factory(engine)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE entry (writer INTEGER NOT NULL UNIQUE)"))
    try:
        async with sessions() as session:
            await session.execute(insert(entry_table).values(writer=1))
            await session.commit()
        async with sessions() as session:
            with pytest.raises(IntegrityError):
                await session.execute(insert(entry_table).values(writer=1))
            await session.rollback()
        async with asyncio.timeout(5), sessions() as session:  # not stuck behind the failed one
            await session.execute(insert(entry_table).values(writer=2))
            await session.commit()
            assert list(await session.scalars(text("SELECT writer FROM entry ORDER BY writer"))) == [1, 2]
    finally:
        await engine.dispose()
