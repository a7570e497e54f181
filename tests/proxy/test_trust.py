"""Admission: the backend routes personas and payments only to nodes it trusts (a valid key proof, and
approved in the NodeRegistry, or a measurement on the allowlist, or its own in-process node)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from app.chain.client import Chain
from app.chain.deploy import send_transaction
from app.proxy.accounts import platform_wallet
from app.proxy.client import client as client_module
from app.proxy.client.client import NoNodeAvailable, NoTrustedNode, ProxyClient
from app.proxy.client.trust import TrustPolicy, key_proof_problem
from app.proxy.config import ProxySettings
from app.proxy.node.app import InProcessNode, in_process_node
from app.proxy.node.attestation import EnclaveIdentity
from app.proxy.registry import NodeRecord, list_nodes, registration_digest
from tests.conftest import connected_chain_of_its_own
from tests.proxy.conftest import approve_node, node_settings, registry_owner_sends
from tests.proxy.fakes import FakeProviders

MESSAGES = [{"role": "system", "content": "PRIVATE PERSONA: you are Ada."}, {"role": "user", "content": "Hi"}]
CHAIN_ID, REGISTRY = 31337, "0x" + "42" * 20
OPERATOR, OTHER = "0x" + "11" * 20, "0x" + "22" * 20
ENDPOINT = "https://node.example"


def signed_record(
    identity: EnclaveIdentity,
    *,
    owner: str = OPERATOR,
    endpoint: str = ENDPOINT,
    proof_for: tuple[int, str, str, str] | None = None,
    **fields: object,
) -> NodeRecord:
    chain_id, registry, operator, signed_endpoint = proof_for or (CHAIN_ID, REGISTRY, owner, endpoint)
    proof = identity.sign_digest(registration_digest(chain_id, registry, operator, signed_endpoint))
    record = NodeRecord(
        tee_id=identity.tee_id,
        owner=owner,
        payment_address=owner,
        enabled=True,
        registered_at=0,
        last_heartbeat=0,
        code_measurement="0x" + "ab" * 32,
        endpoint=endpoint,
        signing_public_key=identity.public_key_der,
        key_proof=proof,
    )
    return replace(record, **fields)  # type: ignore[arg-type]


class Counting(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.requests = inner, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return await self.inner.handle_async_request(request)


@pytest.fixture(scope="module")
def identity() -> EnclaveIdentity:
    return EnclaveIdentity.generate()


def test_a_key_proof_binds_owner_endpoint_registry_and_chain(identity: EnclaveIdentity) -> None:
    assert key_proof_problem(signed_record(identity), CHAIN_ID, REGISTRY) is None
    for forged in (
        signed_record(identity, owner=OTHER, proof_for=(CHAIN_ID, REGISTRY, OPERATOR, ENDPOINT)),  # squatter
        signed_record(identity, endpoint="https://evil.example", proof_for=(CHAIN_ID, REGISTRY, OPERATOR, ENDPOINT)),
        signed_record(identity, proof_for=(1, REGISTRY, OPERATOR, ENDPOINT)),
        signed_record(identity, proof_for=(CHAIN_ID, "0x" + "43" * 20, OPERATOR, ENDPOINT)),
    ):
        assert "not the node key's signature" in (key_proof_problem(forged, CHAIN_ID, REGISTRY) or "")
    other_key = EnclaveIdentity.generate()
    stolen = replace(signed_record(other_key), signing_public_key=identity.public_key_der)
    assert key_proof_problem(stolen, CHAIN_ID, REGISTRY) is not None  # teeId no longer matches
    assert (
        key_proof_problem(replace(signed_record(identity), key_proof=b""), CHAIN_ID, REGISTRY)
        == "the record carries no key proof"
    )
    assert "cannot be read" in (
        key_proof_problem(replace(signed_record(identity), signing_public_key=b"junk"), CHAIN_ID, REGISTRY) or ""
    )


def test_trust_reasons(identity: EnclaveIdentity) -> None:
    record = signed_record(identity)
    assert TrustPolicy(CHAIN_ID, REGISTRY).assess(record).reason == "untrusted"
    assert "not approved" in TrustPolicy(CHAIN_ID, REGISTRY).assess(record).detail
    assert TrustPolicy(CHAIN_ID, REGISTRY).assess(replace(record, approved=True)).reason == "approved"
    listed = TrustPolicy(CHAIN_ID, REGISTRY, trusted_measurements=["0x" + "AB" * 32])
    assert listed.assess(record).reason == "measurement"
    own = TrustPolicy(CHAIN_ID, REGISTRY, own_tee_ids=[identity.tee_id])
    assert own.assess(record).reason == "embedded"
    # No admission makes a record with a bad proof trusted.
    squatted = signed_record(identity, owner=OTHER, proof_for=(CHAIN_ID, REGISTRY, OPERATOR, ENDPOINT), approved=True)
    for policy in (own, listed, TrustPolicy(CHAIN_ID, REGISTRY)):
        trust = policy.assess(squatted)
        assert (trust.trusted, trust.reason) == (False, "untrusted")


def test_the_measurement_allowlist_setting_is_validated() -> None:
    assert ProxySettings(trusted_measurements=["0x" + "AB" * 32]).trusted_measurements == ["0x" + "ab" * 32]
    for bad in (["ab" * 32], ["0x1234"], ["0x" + "zz" * 32]):
        with pytest.raises(ValueError, match="32-byte hex"):
            ProxySettings(trusted_measurements=bad)


@pytest.fixture(scope="module")
async def own_chain(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Chain]:
    async with connected_chain_of_its_own(tmp_path_factory) as chain:
        yield chain


@pytest.fixture(scope="module")
def settings(fake_upstream: tuple[str, FakeProviders]) -> ProxySettings:
    return node_settings(fake_upstream[0])


@pytest.fixture(scope="module")
async def node(own_chain: Chain, settings: ProxySettings) -> AsyncIterator[InProcessNode]:
    async with in_process_node(settings, own_chain, name="stranger-node") as node:
        yield node


@pytest.fixture(autouse=True)
def _fresh_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "DIRECTORY_REFRESH_S", 0.0)


async def test_an_unapproved_node_gets_no_persona_until_the_registry_owner_approves_it(
    own_chain: Chain, settings: ProxySettings, node: InProcessNode
) -> None:
    counted = Counting(node.transport)
    client = ProxyClient(own_chain, platform_wallet(settings, own_chain), settings, transports={node.endpoint: counted})
    try:
        (record,) = [record for record in await client.registered_nodes() if record.tee_id == node.tee_id]
        trust = client.trust_of(record)
        assert (trust.trusted, trust.reason) == (False, "untrusted")
        assert await client.routable_nodes() == []
        with pytest.raises(NoTrustedNode, match="no trusted node") as refused:
            await client.chat(model="gpt-fake", messages=MESSAGES)
        assert isinstance(refused.value, NoNodeAvailable)  # the chat answers `unavailable`
        assert counted.requests == 0  # not even asked for its price: the persona never left

        approve_node(own_chain, node.tee_id)
        result = await client.chat(model="gpt-fake", messages=MESSAGES)
        assert result.node.tee_id == node.tee_id
        assert client.trust_of(result.node).reason == "approved"

        registry_owner_sends(own_chain, "revokeNode", bytes.fromhex(node.tee_id[2:]))
        with pytest.raises(NoTrustedNode):
            await client.chat(model="gpt-fake", messages=MESSAGES)
    finally:
        await client.aclose()


async def test_an_allowlisted_measurement_is_trusted_without_approval(
    own_chain: Chain, settings: ProxySettings, node: InProcessNode
) -> None:
    listed = settings.model_copy(update={"trusted_measurements": [node.app.state.node.identity.measurement]})
    client = ProxyClient(
        own_chain, platform_wallet(listed, own_chain), listed, transports={node.endpoint: node.transport}
    )
    try:
        result = await client.chat(model="gpt-fake", messages=MESSAGES)
        assert client.trust_of(result.node).reason == "measurement"
    finally:
        await client.aclose()


async def test_a_squatter_s_record_is_untrusted_and_the_registry_owner_frees_the_key(
    own_chain: Chain, settings: ProxySettings
) -> None:
    """The squatter copies a real node's public key and proof into a record of its own: the proof names
    the real operator, so the record is never trusted; the registry owner removes it, the operator registers."""
    assert own_chain.embedded is not None
    w3, accounts = own_chain.embedded.w3, own_chain.embedded.accounts
    operator, squatter = accounts[3], accounts[4]
    victim = EnclaveIdentity.generate()
    registry = own_chain.node_registry
    proof = victim.sign_digest(registration_digest(own_chain.chain_id, registry.address, operator.address, ENDPOINT))
    measurement = bytes.fromhex(victim.measurement[2:])

    def register(account: LocalAccount) -> None:
        data = registry.encode_abi(
            "registerNode", args=[account.address, ENDPOINT, victim.public_key_der, measurement, proof]
        )
        send_transaction(w3, account, {"to": registry.address, "data": data, "gas": 1_000_000})

    register(squatter)
    policy = TrustPolicy(own_chain.chain_id, registry.address, trusted_measurements=[victim.measurement])

    async def record() -> NodeRecord:
        return next(node for node in await list_nodes(registry) if node.tee_id == victim.tee_id)

    squatted = await record()
    assert squatted.owner == squatter.address
    registry_owner_sends(own_chain, "approveNode", bytes.fromhex(victim.tee_id[2:]))  # even if approved by mistake
    assert (
        policy.assess(await record()).trusted,
        "not the node key's signature" in policy.assess(await record()).detail,
    ) == (False, True)
    registry_owner_sends(own_chain, "revokeNode", bytes.fromhex(victim.tee_id[2:]))
    registry_owner_sends(own_chain, "removeNode", bytes.fromhex(victim.tee_id[2:]))

    register(operator)
    real = await record()
    assert real.owner == operator.address
    assert policy.assess(real).reason == "measurement"
