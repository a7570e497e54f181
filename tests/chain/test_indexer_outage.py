"""An RPC outage pauses the indexer and turns readiness red naming the chain; it catches up after."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from web3 import AsyncWeb3
from web3.providers.eth_tester import AsyncEthereumTesterProvider

from app.chain.client import Chain, contracts_at
from app.config import Settings
from app.main import create_app
from tests.helpers import buy, launch


class FlakyProvider(AsyncEthereumTesterProvider):
    """The embedded chain behind a switch that makes every request fail like a dead RPC."""

    down = False

    async def make_request(self, method: Any, params: Any) -> Any:
        if self.down:
            raise ConnectionError("RPC unreachable")
        return await super().make_request(method, params)


def flaky_chain(chain: Chain) -> tuple[Chain, FlakyProvider]:
    provider = FlakyProvider()
    provider.ethereum_tester = chain.tester
    w3 = AsyncWeb3(provider)
    return dataclasses.replace(chain, w3=w3, **contracts_at(w3, chain.addresses)), provider


async def wait_until(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_outage_pauses_indexing_and_readiness_then_catches_up(
        settings: Settings, chain: Chain, client: AsyncTestClient[Litestar]) -> None:
    avatar_id = await launch(client, chain, chain.dev_accounts[1], "outage")
    flaky, provider = flaky_chain(chain)
    app = create_app(settings, chain=flaky)
    async with AsyncTestClient(app=app) as flaky_client:
        indexer = app.state.indexer
        indexer._poll_interval_s = 0.05
        runner = asyncio.create_task(indexer.run())
        try:
            await wait_until(lambda: indexer.last_error is None and runner.done() is False)
            await indexer.sync()
            provider.down = True
            buy(chain, chain.dev_accounts[2], avatar_id, 2)  # happens on-chain while the RPC is unreachable
            await wait_until(lambda: indexer.last_error is not None)

            ready = await flaky_client.get("/readyz")
            assert ready.status_code == 503
            assert "chain" in ready.json()["detail"]
            assert ready.json()["dependencies"]["database"] == "ok"
            assert (await flaky_client.get("/healthz")).status_code == 200

            provider.down = False
            await wait_until(lambda: indexer.last_error is None)
            assert (await flaky_client.get("/readyz")).status_code == 200
            assert "twin_indexer_lag_blocks 0.0" in (await flaky_client.get("/metrics")).text
            profile = (await flaky_client.get(f"/api/avatars/{avatar_id}")).json()
            assert profile["market"]["supply"] == 3
        finally:
            runner.cancel()
