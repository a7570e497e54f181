"""The SQLite engine's connection settings: what keeps the embedded default safe and quick under load."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from app.db.engine import SQLITE_BUSY_TIMEOUT_MS, create_engine


async def test_sqlite_connections_enforce_keys_use_wal_and_wait_for_the_writer(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/nested/twin.db")
    try:
        async with engine.connect() as connection:
            pragmas = {name: (await connection.execute(text(f"PRAGMA {name}"))).scalar_one()
                       for name in ("foreign_keys", "journal_mode", "synchronous", "busy_timeout")}
    finally:
        await engine.dispose()

    assert (tmp_path / "nested" / "twin.db").exists()
    # synchronous 1 is NORMAL: in WAL mode, synced at checkpoints rather than at every commit
    assert pragmas == {"foreign_keys": 1, "journal_mode": "wal", "synchronous": 1,
                       "busy_timeout": SQLITE_BUSY_TIMEOUT_MS}
