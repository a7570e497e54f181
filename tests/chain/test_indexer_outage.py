"""A stalled chain node (SIGSTOP) pauses the indexer and turns readiness red naming the chain,
chain reads answer 503 with Retry-After instead of hanging, and everything catches up after
SIGCONT."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.chain.client import Chain, chain_from_embedded
from app.config import Settings
from app.main import create_app
from tests.conftest import close_quietly
from tests.helpers import buy, launch

STALL_TIMEOUT_S = 0.5


async def wait_until(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_a_stalled_node_pauses_indexing_and_answers_503_then_everything_catches_up(
    settings: Settings, chain: Chain, client: AsyncTestClient[Litestar]
) -> None:
    assert chain.embedded is not None
    avatar_id = await launch(client, chain, chain.dev_accounts[1], "outage")
    impatient = chain_from_embedded(chain.embedded, timeout_s=STALL_TIMEOUT_S)
    app = create_app(settings, chain=impatient)
    pid = chain.embedded.node.pid
    async with AsyncTestClient(app=app) as stalled_client:
        indexer = app.state.services.indexer
        indexer._poll_interval_s = 0.05
        await indexer.sync()
        runner = asyncio.create_task(indexer.run())
        try:
            os.kill(pid, signal.SIGSTOP)
            try:
                await wait_until(lambda: indexer.last_error is not None)
                ready = await stalled_client.get("/readyz")
                assert ready.status_code == 503
                assert "chain" in ready.json()["detail"]
                assert ready.json()["dependencies"]["database"] == "ok"
                assert (await stalled_client.get("/healthz")).status_code == 200

                started = time.monotonic()
                quote = await stalled_client.get(f"/api/avatars/{avatar_id}/quote", params={"side": "buy", "amount": 1})
                assert time.monotonic() - started < 5 * STALL_TIMEOUT_S + 2  # a deadline, not a hang
                assert quote.status_code == 503
                assert quote.json()["error"] == "chain_unavailable"
                assert int(quote.headers["retry-after"]) > 0
            finally:
                os.kill(pid, signal.SIGCONT)

            buy(chain, chain.dev_accounts[2], avatar_id, 2)
            await wait_until(lambda: indexer.last_error is None)
            await indexer.sync()
            assert (await stalled_client.get("/readyz")).status_code == 200
            profile = (await stalled_client.get(f"/api/avatars/{avatar_id}")).json()
            assert profile["market"]["supply"] == 3
        finally:
            runner.cancel()
    await close_quietly(impatient)
