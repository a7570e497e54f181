"""Payments while the chain's clock runs ahead of this machine's (a node whose time was moved forward,
or a chain that mines faster than its timestamps can follow): the token checks an authorization's
validity against block time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from app.chain.client import CHAIN_CLOCK_REFRESH_S, Chain, ChainClock
from app.proxy.accounts import platform_wallet
from app.proxy.client.client import ProxyClient
from app.proxy.node.app import in_process_node
from tests.conftest import connected_chain_of_its_own
from tests.proxy.conftest import PRICE_WEI, node_settings, opg_balance
from tests.proxy.fakes import FakeProviders

MESSAGES = [{"role": "user", "content": "What is an algorithm?"}]
HOUR = 3600


@pytest.fixture(scope="module")
async def chain(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Chain]:
    """A node of this module's own: its clock runs an hour ahead for the rest of its life."""
    async with connected_chain_of_its_own(tmp_path_factory) as chain:
        yield chain


async def jump_ahead(chain: Chain, seconds: int) -> None:
    assert chain.embedded is not None
    chain.embedded.time_travel(int(time.time()) + seconds)
    chain.embedded.mine_blocks(1)
    await asyncio.sleep(CHAIN_CLOCK_REFRESH_S)  # the node reads the chain's clock once a second


async def test_chain_clock_reports_its_lead_over_ours(chain: Chain) -> None:
    clock = ChainClock(chain.w3)
    await jump_ahead(chain, HOUR)

    assert HOUR - 3 <= await clock.lead() <= HOUR
    assert abs(await clock.now() - (int(time.time()) + await clock.lead())) <= 1


async def test_replies_are_paid_while_the_chain_clock_runs_an_hour_ahead(
    chain: Chain, fake_upstream: tuple[str, FakeProviders]
) -> None:
    settings = node_settings(fake_upstream[0])
    wallet = platform_wallet(settings, chain)
    before = await opg_balance(chain, wallet.address)
    async with in_process_node(settings, chain) as node:
        client = ProxyClient(
            chain, wallet, settings, transports={node.endpoint: node.transport}, own_tee_ids=[node.tee_id]
        )
        try:
            first = await client.chat(model="gpt-fake", messages=MESSAGES)  # its terms are cached now
            await jump_ahead(chain, HOUR)
            # Paid with the cached terms, this authorization would expire by block time: the node refuses
            # it before serving, with terms whose window covers the lead, and the client pays again.
            second = await client.chat(model="gpt-fake", messages=MESSAGES)
            third = await client.chat(model="gpt-fake", messages=MESSAGES)
        finally:
            await client.aclose()

    assert [reply.payment.success for reply in (first, second, third) if reply.payment] == [True, True, True]
    assert await opg_balance(chain, wallet.address) == before - 3 * PRICE_WEI


async def test_a_chain_that_stops_answering_leaves_the_last_lead(chain: Chain) -> None:
    clock = ChainClock(chain.w3)
    await jump_ahead(chain, 2 * HOUR)
    known = await clock.lead()

    async def chain_down(*_: object, **__: object) -> None:
        raise OSError("connection refused")

    chain.w3.eth.get_block = chain_down  # type: ignore[method-assign]
    await asyncio.sleep(CHAIN_CLOCK_REFRESH_S)  # due for a new reading, which fails

    assert await clock.lead() == known >= 2 * HOUR - 3
