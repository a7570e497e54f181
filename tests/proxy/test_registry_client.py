"""NodeRegistry records and heartbeats; the backend's ProxyClient over in-process nodes: payment,
verification, load balancing, failover and key pinning. A chain of its own keeps other nodes out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from eth_account import Account

from app.chain.client import Chain
from app.proxy.accounts import platform_wallet
from app.proxy.client.client import (
    NoNodeAvailable,
    PaymentRefused,
    ProxyClient,
    ReplyFailed,
    ReplyRejected,
    RequestRejected,
)
from app.proxy.config import ProxySettings
from app.proxy.node.app import InProcessNode, in_process_node
from app.proxy.node.attestation import EnclaveIdentity, code_measurement
from app.proxy.node.upstreams.offline import compose_reply
from app.proxy.registry import NodeRecord, list_nodes
from tests.conftest import connected_chain_of_its_own
from tests.proxy.conftest import PRICE_WEI, approve_node, node_settings, opg_balance
from tests.proxy.fakes import REPLY_TEXT, FakeProviders

MESSAGES = [
    {"role": "system", "content": "You are Ada Lovelace, a mathematician."},
    {"role": "user", "content": "What is an algorithm?"},
]


class Unreachable(httpx.AsyncBaseTransport):
    """A node that stopped answering."""

    def __init__(self) -> None:
        self.attempts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        raise httpx.ConnectError("connection refused", request=request)


@pytest.fixture(scope="module")
async def own_chain(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Chain]:
    async with connected_chain_of_its_own(tmp_path_factory) as chain:
        yield chain


@pytest.fixture(scope="module")
def settings(fake_upstream: tuple[str, FakeProviders]) -> ProxySettings:
    return node_settings(fake_upstream[0], heartbeat_seconds=0.2, node_cooldown_seconds=30)


@pytest.fixture(scope="module")
async def nodes(own_chain: Chain, settings: ProxySettings) -> AsyncIterator[tuple[InProcessNode, InProcessNode]]:
    async with (
        in_process_node(settings, own_chain, name="node-a") as a,
        in_process_node(settings, own_chain, name="node-b") as b,
    ):
        for node in (a, b):  # admitted by the registry's owner: the client routes only to trusted nodes
            approve_node(own_chain, node.tee_id)
        yield a, b


def client_for(chain: Chain, settings: ProxySettings, **transports: httpx.AsyncBaseTransport) -> ProxyClient:
    return ProxyClient(chain, platform_wallet(settings, chain), settings, transports=transports)


@pytest.fixture
async def client(
    own_chain: Chain, settings: ProxySettings, nodes: tuple[InProcessNode, InProcessNode]
) -> AsyncIterator[ProxyClient]:
    proxy = client_for(own_chain, settings, **{node.endpoint: node.transport for node in nodes})
    yield proxy
    await proxy.aclose()


def record_of(records: list[NodeRecord], node: InProcessNode) -> NodeRecord:
    return next(record for record in records if record.endpoint == node.endpoint)


async def test_nodes_register_their_key_measurement_and_payment_address(
    own_chain: Chain, nodes: tuple[InProcessNode, InProcessNode]
) -> None:
    records = await list_nodes(own_chain.node_registry)
    identity = nodes[0].app.state.node.identity
    record = record_of(records, nodes[0])

    assert record.tee_id == identity.tee_id
    assert record.signing_public_key == identity.public_key_der
    assert record.code_measurement == code_measurement()
    assert record.payment_address == own_chain.dev_accounts[-1].address
    assert record.enabled is True


async def test_nodes_heartbeat_while_running(own_chain: Chain, nodes: tuple[InProcessNode, InProcessNode]) -> None:
    tee_id = bytes.fromhex(nodes[1].app.state.node.identity.tee_id[2:])
    event = own_chain.node_registry.events.NodeHeartbeat

    async def beats() -> int:
        return len(await event.get_logs(from_block=0, argument_filters={"teeId": tee_id}))

    before = await beats()
    await asyncio.sleep(0.7)

    assert await beats() >= before + 2


async def test_a_stopped_node_disables_its_record(own_chain: Chain, settings: ProxySettings) -> None:
    async with in_process_node(settings, own_chain, name="short-lived") as node:
        assert record_of(await list_nodes(own_chain.node_registry), node).enabled is True

    assert record_of(await list_nodes(own_chain.node_registry), node).enabled is False


async def test_client_pays_streams_and_verifies(client: ProxyClient, own_chain: Chain, settings: ProxySettings) -> None:
    wallet = platform_wallet(settings, own_chain).address
    before = await opg_balance(own_chain, wallet)
    async with client.stream_chat(model="twin-offline-demo", messages=MESSAGES, max_tokens=200) as reply:
        deltas = [delta async for delta in reply]
    result = reply.result

    assert "".join(deltas) == result.text == compose_reply(MESSAGES[0]["content"], MESSAGES[1]["content"])
    assert len(deltas) > 5
    assert result.attestation is not None
    assert result.attestation.tee_id == result.node.tee_id
    assert result.payment is not None
    assert result.payment.success is True
    assert result.usage is not None
    assert result.usage["completion_tokens"] == len(deltas)
    assert await opg_balance(own_chain, wallet) == before - PRICE_WEI


async def test_client_balances_load_across_healthy_nodes(
    client: ProxyClient, nodes: tuple[InProcessNode, InProcessNode]
) -> None:
    served = [(await client.chat(model="gpt-fake", messages=MESSAGES)).node.endpoint for _ in range(4)]

    assert set(served) == {nodes[0].endpoint, nodes[1].endpoint}
    assert served[0] != served[1]


async def test_concurrent_replies_spread_over_nodes(
    client: ProxyClient, nodes: tuple[InProcessNode, InProcessNode]
) -> None:
    results = await asyncio.gather(*(client.chat(model="gpt-fake", messages=MESSAGES) for _ in range(6)))

    assert {result.text for result in results} == {REPLY_TEXT}
    assert {result.node.endpoint for result in results} == {nodes[0].endpoint, nodes[1].endpoint}


async def test_client_fails_over_when_a_node_stops_answering(
    own_chain: Chain, settings: ProxySettings, nodes: tuple[InProcessNode, InProcessNode]
) -> None:
    dead = Unreachable()
    proxy = client_for(own_chain, settings, **{nodes[0].endpoint: dead, nodes[1].endpoint: nodes[1].transport})
    try:
        results = [await proxy.chat(model="gpt-fake", messages=MESSAGES) for _ in range(3)]
    finally:
        await proxy.aclose()

    assert {result.node.endpoint for result in results} == {nodes[1].endpoint}
    assert dead.attempts == 1  # then cooled down, not retried on every reply


async def test_no_node_answering_is_reported_with_each_failure(
    own_chain: Chain, settings: ProxySettings, nodes: tuple[InProcessNode, InProcessNode]
) -> None:
    proxy = client_for(own_chain, settings, **{node.endpoint: Unreachable() for node in nodes})
    with pytest.raises(NoNodeAvailable, match=r"node-a\.in-process\.invalid.*node-b\.in-process\.invalid"):
        await proxy.chat(model="gpt-fake", messages=MESSAGES)
    await proxy.aclose()


async def test_reply_signed_by_another_key_is_rejected(
    client: ProxyClient, nodes: tuple[InProcessNode, InProcessNode]
) -> None:
    impostor = nodes[1].app.state.node.completions
    genuine = impostor._identity
    impostor._identity = EnclaveIdentity.generate()  # the node now signs with a key the registry never saw
    try:
        outcomes = await asyncio.gather(
            *(client.chat(model="gpt-fake", messages=MESSAGES) for _ in range(4)), return_exceptions=True
        )
    finally:
        impostor._identity = genuine

    rejected = [outcome for outcome in outcomes if isinstance(outcome, ReplyRejected)]
    assert rejected
    assert all("signed by another key" in str(outcome) for outcome in rejected)
    assert all(
        outcome.node.endpoint == nodes[0].endpoint for outcome in outcomes if not isinstance(outcome, BaseException)
    )


async def test_bad_request_is_not_retried_elsewhere(client: ProxyClient) -> None:
    with pytest.raises(RequestRejected) as raised:
        await client.chat(model="no-such-model", messages=MESSAGES)

    assert raised.value.param == "model"


async def test_mid_stream_failure_is_reported_not_shown_as_complete(client: ProxyClient) -> None:
    with pytest.raises(ReplyFailed, match="mid-reply"):
        await client.chat(model="claude-midstream", messages=MESSAGES)


async def test_tee_level_is_refused_while_only_dev_evidence_exists(client: ProxyClient) -> None:
    with pytest.raises(NoNodeAvailable, match="hardware TEE evidence"):
        await client.chat(model="gpt-fake", messages=MESSAGES, verification="tee")


async def test_stale_cached_terms_are_replaced_and_paid_once_more(
    client: ProxyClient, nodes: tuple[InProcessNode, InProcessNode]
) -> None:
    first = await client.chat(model="gpt-fake", messages=MESSAGES)  # caches this node's terms
    key = (first.node.tee_id, "gpt-fake")
    stale = client._prices[key]
    offer = stale.accepts[0]
    client._prices[key] = stale.model_copy(update={"accepts": [offer.model_copy(update={"amount": "1"})]})
    for _ in range(2):  # one of the two nodes is the one whose terms went stale
        assert (await client.chat(model="gpt-fake", messages=MESSAGES)).payment.success is True

    assert client._prices[key].accepts[0].amount == str(PRICE_WEI)


async def test_a_wallet_without_opg_gets_payment_refused(
    own_chain: Chain, settings: ProxySettings, nodes: tuple[InProcessNode, InProcessNode]
) -> None:
    broke = ProxyClient(
        own_chain, Account.create(), settings, transports={node.endpoint: node.transport for node in nodes}
    )
    with pytest.raises(PaymentRefused, match="insufficient_balance"):
        await broke.chat(model="gpt-fake", messages=MESSAGES)
    await broke.aclose()
