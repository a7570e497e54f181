"""A node starting while its chain does not answer (a busy machine, a node restarting) waits for it: registration
is tried again until the chain answers, within the node's patience, and fails only past it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from app.chain.client import Chain, ChainUnavailable, KeepAliveHTTPProvider
from app.proxy.node.node import ProxyNode
from app.proxy.registry import NodeRecord
from tests.proxy.conftest import eventually, node_settings
from tests.proxy.fakes import FakeProviders


@asynccontextmanager
async def chain_not_answering(chain: Chain) -> AsyncIterator[asyncio.Event]:
    """The chain's stall probe finds no answer until the event yielded is set."""
    provider = chain.w3.provider
    assert isinstance(provider, KeepAliveHTTPProvider)
    watch = provider.watch
    answering = asyncio.Event()

    async def probe() -> None:
        if not answering.is_set():
            raise TimeoutError("no answer")

    probing = asyncio.create_task(watch.run(probe, interval_s=0.05, timeout_s=1.0))
    try:
        await eventually(lambda: watch.stalled)
        yield answering
    finally:
        answering.set()
        await eventually(lambda: not watch.stalled)  # the session's other tests find the chain answering
        probing.cancel()


async def test_a_starting_node_waits_for_its_chain_to_answer_then_registers(
    chain: Chain, fake_upstream: tuple[str, FakeProviders]
) -> None:
    node = ProxyNode.build(node_settings(fake_upstream[0]), chain, endpoint="http://patient-node.invalid")
    try:
        async with chain_not_answering(chain) as answering:
            registering = asyncio.create_task(node.registration.register_when_answering(patience_s=60))
            await asyncio.sleep(1.5)  # a few tries refused meanwhile
            assert not registering.done()
            answering.set()
            await asyncio.wait_for(registering, 60)
    finally:
        await node.http_client.aclose()
    record = NodeRecord.from_chain(await chain.node_registry.functions.getNode(node.registration.tee_id).call())
    assert (record.endpoint, record.enabled) == ("http://patient-node.invalid", True)


async def test_a_chain_silent_past_the_patience_fails_the_start(
    chain: Chain, fake_upstream: tuple[str, FakeProviders]
) -> None:
    node = ProxyNode.build(node_settings(fake_upstream[0]), chain, endpoint="http://impatient-node.invalid")
    try:
        async with chain_not_answering(chain):
            with pytest.raises(ChainUnavailable):
                await node.registration.register_when_answering(patience_s=1.0)
    finally:
        await node.http_client.aclose()
