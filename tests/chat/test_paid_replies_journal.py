"""Nothing paid is lost: PostgreSQL stops while replies stream (a throwaway cluster of the test's own,
started with ``pg_ctl``), the nodes are paid on-chain all the same, every fan gets their ``done``
frame from the journal, and once the database is back every paid reply is stored exactly once
with its text, cost, payment and attestation, and no row is left pending."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app.chain.client import Chain
from app.chat.models import ChatMessage, MessageStatus, ReplyAttestation, Role
from app.config import Settings
from app.db import migrate
from app.db.engine import create_engine
from tests.chat.conftest import Served, holding_fan, receive, send_message, serving
from tests.helpers import free_port, launch

PG_BIN = Path("/usr/lib/postgresql/15/bin")
FANS = 3


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temp dir on a free port, run as the ``postgres`` user, stoppable at will."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="twin-workers-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres(PG_BIN / "initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres")

    def _as_postgres(self, *command: str | Path) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *map(str, command)], check=True, capture_output=True, timeout=120
        )

    def start(self) -> None:
        self._as_postgres(
            PG_BIN / "pg_ctl",
            "-D",
            self.dir / "data",
            "-w",
            "-l",
            self.dir / "log",
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1",
            "start",
        )

    def stop(self) -> None:
        self._as_postgres(PG_BIN / "pg_ctl", "-D", self.dir / "data", "-w", "-m", "fast", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def postgres() -> Iterator[ThrowawayPostgres]:
    cluster = ThrowawayPostgres()
    try:
        cluster.start()
        migrate.upgrade(cluster.url)
        yield cluster
    finally:
        cluster.remove()


async def test_replies_paid_while_the_database_is_down_are_all_stored_once_it_is_back(
    postgres: ThrowawayPostgres, chain: Chain, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=postgres.url,
        auto_migrate=False,
        indexer_poll_s=0,
        autoscale_tick_s=0,
        database_pool_size=2,
        chat_journal_dir=tmp_path / "journal",
        chat_journal_replay_s=0.5,
        chat_history_token_budget=0,
    )
    async with serving(settings, chain, tokens_per_second=15) as served:
        creator = chain.dev_accounts[1]
        http = await served.signed_in(creator)
        avatar_id = await launch(http, chain, creator, "durable")  # type: ignore[arg-type]
        fans = [await holding_fan(served, chain.dev_accounts[2 + index], avatar_id) for index in range(FANS)]
        paid_before = await served.node_opg_balance()
        sockets = [await served.chat(avatar_id, fan).__aenter__() for fan in fans]
        try:
            for index, ws in enumerate(sockets):
                await send_message(ws, f"outage-{index}", f"tell me something, number {index}")
            for ws in sockets:  # every reply is under way: its rows are stored, its node not yet paid
                assert (await receive(ws))["type"] == "token"
            await asyncio.to_thread(postgres.stop)
            done = [await until_done(ws) for ws in sockets]
        finally:
            for ws in sockets:
                await ws.__aexit__(None, None, None)
        assert all(frame["type"] == "done" for frame in done), done
        paid = await served.node_opg_balance() - paid_before
        assert paid == FANS * served.price_wei  # the nodes were paid while the database was down
        assert [int(frame["cost_wei"]) for frame in done] == [served.price_wei] * FANS
        journal = served.app.state.services.reply_journal
        assert len(await journal.entries()) == FANS  # written ahead, not yet stored

        await asyncio.to_thread(postgres.start)
        await until_replayed(journal)
        await stored_once(postgres.url, done, served)


async def until_done(ws: object) -> dict[str, object]:
    while True:
        frame = await receive(ws)  # type: ignore[arg-type]
        if frame["type"] in ("done", "error"):
            return frame


async def until_replayed(journal: object, timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while await journal.entries():  # type: ignore[attr-defined]  # noqa: ASYNC110 - the replay task's work
            await asyncio.sleep(0.2)


async def stored_once(url: str, done: list[dict[str, object]], served: Served) -> None:
    engine = create_engine(url)
    async with engine.connect() as connection:
        replies = (await connection.execute(select(ChatMessage).where(ChatMessage.role == Role.assistant))).all()
        attested = set((await connection.execute(select(ReplyAttestation.message_id))).scalars())
        pending = (
            await connection.execute(select(ChatMessage.id).where(ChatMessage.status == MessageStatus.pending))
        ).all()
    await engine.dispose()
    assert pending == []
    by_id = {reply.id: reply for reply in replies}
    assert sorted(by_id) == sorted(int(frame["message_id"]) for frame in done)  # type: ignore[call-overload]
    for frame in done:
        reply = by_id[int(frame["message_id"])]  # type: ignore[call-overload]
        assert reply.status == MessageStatus.complete
        assert reply.content
        assert reply.cost_wei == served.price_wei
        assert reply.payment_tx is not None
        assert reply.id in attested
    assert len({reply.payment_tx for reply in replies}) == FANS
