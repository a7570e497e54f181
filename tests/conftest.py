"""Shared fixtures: one anvil node for the session with every test between a snapshot and its
revert, a migrated database per test (SQLite copy, or PostgreSQL truncated), settings that
point at it, and an app with an async test client.

With ``TWIN_TEST_DATABASE_URL`` set (CI does), every database test runs on that
PostgreSQL database instead of SQLite.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from app.all_models import metadata
from app.chain.anvil import AnvilNode
from app.chain.client import Chain, chain_from_embedded
from app.chain.embedded import EmbeddedChain
from app.config import Settings
from app.db import migrate
from app.db.engine import create_engine
from tests.helpers import CHAIN_STATE_DIRS

POSTGRES_URL = os.environ.get("TWIN_TEST_DATABASE_URL")
# A Settings() that a test builds without saying where the chain is never reaches the checkout's
# own var/chain, nor the session's node (whose state every test reverts): such apps share a node
# of their own here.
STRAY_CHAIN_STATE_DIR = Path(tempfile.mkdtemp(prefix="twin-test-stray-chain-"))
os.environ["TWIN_CHAIN_STATE_DIR"] = str(STRAY_CHAIN_STATE_DIR)
os.environ["TWIN_CHAT_JOURNAL_DIR"] = str(STRAY_CHAIN_STATE_DIR / "journal")  # never the checkout's var/
CHAIN_STATE_DIR = Path(tempfile.mkdtemp(prefix="twin-test-chain-"))


def pytest_sessionfinish() -> None:
    """No node outlives the session, even one a killed server or a test that never let go left."""
    for state_dir in (STRAY_CHAIN_STATE_DIR, CHAIN_STATE_DIR, *CHAIN_STATE_DIRS):
        with contextlib.suppress(OSError, ValueError, KeyError):
            AnvilNode.terminate(int(json.loads((state_dir / "node.json").read_text())["pid"]))
        shutil.rmtree(state_dir, ignore_errors=True)


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Apply every migration once per session: to PostgreSQL, or to a template SQLite file."""
    if POSTGRES_URL:
        migrate.upgrade(POSTGRES_URL)
        return POSTGRES_URL
    template = tmp_path_factory.mktemp("db") / "template.db"
    migrate.upgrade(sqlite_url(template))
    return str(template)


@pytest.fixture
async def database_url(migrated_database: str, tmp_path: Path) -> str:
    """A clean, migrated database for one test."""
    if POSTGRES_URL:
        engine = create_engine(POSTGRES_URL)
        tables = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        await engine.dispose()
        return POSTGRES_URL
    path = tmp_path / "twin.db"
    shutil.copyfile(migrated_database, path)
    return sqlite_url(path)


@pytest.fixture
def settings(database_url: str) -> Settings:
    # The test client serves the app on an event loop of its own while tests also reach the
    # database from theirs: no pooled connection may cross loops, and tests index explicitly
    # (`await app.state.services.indexer.sync()`) and tick the autoscaler (`await app.state.services.autoscale.tick()`)
    # rather than through background tasks.
    return Settings(
        database_url=database_url, auto_migrate=False, indexer_poll_s=0, database_pool_size=0, autoscale_tick_s=0
    )


@pytest.fixture(scope="session")
def embedded_chain() -> Iterator[EmbeddedChain]:
    """One anvil node for the session; each test runs between a snapshot and its revert."""
    chain = EmbeddedChain.start(Settings(chain_state_dir=CHAIN_STATE_DIR))
    yield chain
    chain.close()


@contextlib.contextmanager
def chain_of_its_own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedChain]:
    """A node apart from the session's, for tests that need a registry or a clock nobody else touches."""
    chain = EmbeddedChain.start(Settings(chain_state_dir=tmp_path_factory.mktemp("own-chain")))
    try:
        yield chain
    finally:
        chain.close()


@contextlib.asynccontextmanager
async def connected_chain_of_its_own(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Chain]:
    """``chain_of_its_own`` as the app sees it (a Chain), closed afterwards."""
    with chain_of_its_own(tmp_path_factory) as embedded:
        chain = chain_from_embedded(embedded)
        try:
            yield chain
        finally:
            await close_quietly(chain)


@contextlib.asynccontextmanager
async def between_snapshot(embedded: EmbeddedChain) -> AsyncIterator[Chain]:
    """A Chain on ``embedded`` whose every change is reverted afterwards."""
    snapshot = embedded.take_snapshot()
    chain = chain_from_embedded(embedded)
    try:
        yield chain
    finally:
        await close_quietly(chain)
        embedded.revert_to_snapshot(snapshot)


@pytest.fixture
async def chain(embedded_chain: EmbeddedChain) -> AsyncIterator[Chain]:
    async with between_snapshot(embedded_chain) as chain:
        yield chain


async def close_quietly(chain: Chain) -> None:
    """Close the chain's connections; those opened on the test client's loop went with that loop."""
    with contextlib.suppress(Exception):
        await chain.close()


@pytest.fixture
def app(settings: Settings, chain: Chain) -> Litestar:
    from app.main import create_app

    return create_app(settings, chain=chain)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as test_client:
        yield test_client
