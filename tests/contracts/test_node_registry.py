"""NodeRegistry: registration with a key proof, owner-only changes, enable/disable, heartbeat,
enumeration; admission (approve, revoke, remove) by the registry's owner only."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError

from app.chain.embedded import EmbeddedChain
from tests.contracts.conftest import error_name, events, reverts, send

ZERO_ADDRESS = "0x" + "00" * 20
MEASUREMENT = bytes.fromhex("ab" * 32)
ENDPOINT = "https://node-1.example:8443"


def der_of(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def private_keys() -> list[rsa.RSAPrivateKey]:
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]


@pytest.fixture(scope="module")
def public_keys(private_keys: list[rsa.RSAPrivateKey]) -> list[bytes]:
    return [der_of(key) for key in private_keys]


PROOF = b"\x01" * 256  # the contract requires a proof but cannot check RSA: clients do (tests/proxy/test_trust.py)


@pytest.fixture
def operator(accounts: list[LocalAccount]) -> LocalAccount:
    return accounts[1]


@pytest.fixture
def stranger(accounts: list[LocalAccount]) -> LocalAccount:
    return accounts[2]


def register(registry: Contract, operator: LocalAccount, public_key: bytes, endpoint: str = ENDPOINT) -> bytes:
    send(registry.functions.registerNode(operator.address, endpoint, public_key, MEASUREMENT, PROOF), operator)
    return Web3.keccak(public_key)


def test_register_node(w3: Web3, node_registry: Contract, operator: LocalAccount, public_keys: list[bytes]) -> None:
    public_key = public_keys[0]
    function = node_registry.functions.registerNode(operator.address, ENDPOINT, public_key, MEASUREMENT, PROOF)
    assert function.call({"from": operator.address}) == Web3.keccak(public_key)
    receipt = send(function, operator)
    tee_id = Web3.keccak(public_key)
    timestamp = w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    assert events(node_registry, "NodeRegistered", receipt) == [
        {
            "teeId": tee_id,
            "owner": operator.address,
            "paymentAddress": operator.address,
            "endpoint": ENDPOINT,
            "signingPublicKey": public_key,
            "codeMeasurement": MEASUREMENT,
        }
    ]
    node = node_registry.functions.getNode(tee_id).call()
    assert node == (
        tee_id,
        operator.address,
        operator.address,
        True,
        False,
        timestamp,
        timestamp,
        MEASUREMENT,
        ENDPOINT,
        public_key,
        PROOF,
    )


@pytest.mark.parametrize(
    ("payment", "endpoint", "key_index", "proof", "error"),
    [
        (ZERO_ADDRESS, ENDPOINT, 0, PROOF, "ZeroAddress"),
        (None, "", 0, PROOF, "EmptyEndpoint"),
        (None, ENDPOINT, None, PROOF, "EmptyPublicKey"),
        (None, ENDPOINT, 0, b"", "EmptyKeyProof"),
    ],
)
def test_register_rejects_bad_records(
    node_registry: Contract,
    operator: LocalAccount,
    public_keys: list[bytes],
    payment: str | None,
    endpoint: str,
    key_index: int | None,
    proof: bytes,
    error: str,
) -> None:
    public_key = b"" if key_index is None else public_keys[key_index]
    function = node_registry.functions.registerNode(
        payment or operator.address, endpoint, public_key, MEASUREMENT, proof
    )
    reverts(function, operator, error)


def test_a_key_registers_once(
    node_registry: Contract, operator: LocalAccount, stranger: LocalAccount, public_keys: list[bytes]
) -> None:
    register(node_registry, operator, public_keys[0])
    function = node_registry.functions.registerNode(stranger.address, ENDPOINT, public_keys[0], MEASUREMENT, PROOF)
    reverts(function, stranger, "NodeExists")


def test_only_the_owner_changes_a_node(
    chain: EmbeddedChain,
    node_registry: Contract,
    operator: LocalAccount,
    stranger: LocalAccount,
    public_keys: list[bytes],
) -> None:
    tee_id = register(node_registry, operator, public_keys[0])
    functions = node_registry.functions
    new_measurement = bytes.fromhex("cd" * 32)
    new_proof = b"\x02" * 256
    receipt = send(
        functions.updateNode(tee_id, stranger.address, "https://moved.example", new_measurement, new_proof), operator
    )
    assert events(node_registry, "NodeUpdated", receipt) == [
        {
            "teeId": tee_id,
            "paymentAddress": stranger.address,
            "endpoint": "https://moved.example",
            "codeMeasurement": new_measurement,
        }
    ]
    node = functions.getNode(tee_id).call()
    assert (node[2], node[7], node[8], node[10]) == (
        stranger.address,
        new_measurement,
        "https://moved.example",
        new_proof,
    )

    receipt = send(functions.setNodeEnabled(tee_id, False), operator)
    assert events(node_registry, "NodeEnabledSet", receipt) == [{"teeId": tee_id, "enabled": False}]
    assert functions.getNode(tee_id).call()[3] is False
    send(functions.setNodeEnabled(tee_id, True), operator)
    assert functions.getNode(tee_id).call()[3] is True

    later = chain.w3.eth.get_block("latest")["timestamp"] + 120
    chain.time_travel(later)
    receipt = send(functions.heartbeat(tee_id), operator)
    assert events(node_registry, "NodeHeartbeat", receipt) == [{"teeId": tee_id, "timestamp": later}]
    assert functions.getNode(tee_id).call()[6] == later

    for function in (
        functions.updateNode(tee_id, stranger.address, ENDPOINT, MEASUREMENT, PROOF),
        functions.setNodeEnabled(tee_id, False),
        functions.heartbeat(tee_id),
        functions.transferNodeOwnership(tee_id, stranger.address),
    ):
        reverts(function, stranger, "NotNodeOwner")
    reverts(functions.updateNode(tee_id, ZERO_ADDRESS, ENDPOINT, MEASUREMENT, PROOF), operator, "ZeroAddress")
    reverts(functions.updateNode(tee_id, operator.address, "", MEASUREMENT, PROOF), operator, "EmptyEndpoint")
    reverts(functions.updateNode(tee_id, operator.address, ENDPOINT, MEASUREMENT, b""), operator, "EmptyKeyProof")


def test_node_ownership_transfer(
    node_registry: Contract, operator: LocalAccount, stranger: LocalAccount, public_keys: list[bytes]
) -> None:
    tee_id = register(node_registry, operator, public_keys[0])
    functions = node_registry.functions
    reverts(functions.transferNodeOwnership(tee_id, ZERO_ADDRESS), operator, "ZeroAddress")
    receipt = send(functions.transferNodeOwnership(tee_id, stranger.address), operator)
    assert events(node_registry, "NodeOwnershipTransferred", receipt) == [
        {"teeId": tee_id, "previousOwner": operator.address, "newOwner": stranger.address}
    ]
    send(functions.heartbeat(tee_id), stranger)
    reverts(functions.heartbeat(tee_id), operator, "NotNodeOwner")


def test_unknown_nodes(node_registry: Contract, operator: LocalAccount) -> None:
    unknown = bytes(32)
    reverts(node_registry.functions.heartbeat(unknown), operator, "NodeNotFound")
    with pytest.raises(ContractLogicError) as failure:
        node_registry.functions.getNode(unknown).call()
    assert error_name(failure.value) == "NodeNotFound"


def test_enumeration(node_registry: Contract, accounts: list[LocalAccount], public_keys: list[bytes]) -> None:
    ids = [
        register(node_registry, accounts[index + 1], key, f"https://node-{index}.example")
        for index, key in enumerate(public_keys)
    ]
    functions = node_registry.functions
    assert functions.nodeCount().call() == 3
    assert [functions.nodeIdAt(index).call() for index in range(3)] == ids
    assert [node[0] for node in functions.listNodes(0, 10).call()] == ids
    assert [node[8] for node in functions.listNodes(1, 1).call()] == ["https://node-1.example"]
    assert [node[0] for node in functions.listNodes(2, 5).call()] == ids[2:]
    assert functions.listNodes(3, 5).call() == []
    assert functions.listNodes(10, 5).call() == []


def test_the_deployer_owns_the_registry_in_two_steps(
    node_registry: Contract, owner: LocalAccount, stranger: LocalAccount
) -> None:
    functions = node_registry.functions
    assert functions.owner().call() == owner.address
    reverts(functions.renounceOwnership(), owner, "RenounceDisabled")
    reverts(functions.transferOwnership(stranger.address), stranger, "OwnableUnauthorizedAccount")
    send(functions.transferOwnership(stranger.address), owner)
    assert functions.owner().call() == owner.address  # until the new owner accepts
    send(functions.acceptOwnership(), stranger)
    assert functions.owner().call() == stranger.address


def test_only_the_registry_owner_approves_and_revokes(
    node_registry: Contract,
    owner: LocalAccount,
    operator: LocalAccount,
    stranger: LocalAccount,
    public_keys: list[bytes],
) -> None:
    tee_id = register(node_registry, operator, public_keys[0])
    functions = node_registry.functions
    assert functions.getNode(tee_id).call()[4] is False  # registration alone admits nothing
    for caller in (operator, stranger):
        reverts(functions.approveNode(tee_id), caller, "OwnableUnauthorizedAccount")
    reverts(functions.approveNode(bytes(32)), owner, "NodeNotFound")
    reverts(functions.revokeNode(tee_id), owner, "ApprovalUnchanged")

    receipt = send(functions.approveNode(tee_id), owner)
    assert events(node_registry, "NodeApproved", receipt) == [{"teeId": tee_id, "nodeOwner": operator.address}]
    assert functions.getNode(tee_id).call()[4] is True
    reverts(functions.approveNode(tee_id), owner, "ApprovalUnchanged")
    reverts(functions.revokeNode(tee_id), operator, "OwnableUnauthorizedAccount")
    # The node's own updates keep the approval; the registry's owner withdraws it.
    send(functions.updateNode(tee_id, operator.address, ENDPOINT, MEASUREMENT, PROOF), operator)
    assert functions.getNode(tee_id).call()[4] is True
    receipt = send(functions.revokeNode(tee_id), owner)
    assert events(node_registry, "NodeRevoked", receipt) == [{"teeId": tee_id, "nodeOwner": operator.address}]
    assert functions.getNode(tee_id).call()[4] is False


def test_handing_a_record_over_clears_its_approval(
    node_registry: Contract,
    owner: LocalAccount,
    operator: LocalAccount,
    stranger: LocalAccount,
    public_keys: list[bytes],
) -> None:
    tee_id = register(node_registry, operator, public_keys[0])
    send(node_registry.functions.approveNode(tee_id), owner)
    receipt = send(node_registry.functions.transferNodeOwnership(tee_id, stranger.address), operator)
    assert events(node_registry, "NodeRevoked", receipt) == [{"teeId": tee_id, "nodeOwner": stranger.address}]
    assert node_registry.functions.getNode(tee_id).call()[4] is False


def test_a_squatted_key_is_removed_and_its_operator_registers(
    node_registry: Contract,
    owner: LocalAccount,
    operator: LocalAccount,
    stranger: LocalAccount,
    public_keys: list[bytes],
) -> None:
    """A squatter registers the operator's public key first (the contract cannot check the RSA proof):
    the operator's registration reverts until the registry's owner removes the squatter's record."""
    functions = node_registry.functions
    other = register(node_registry, operator, public_keys[1], "https://other.example")
    squatted = register(node_registry, stranger, public_keys[0], "https://evil.example")
    last = register(node_registry, operator, public_keys[2], "https://last.example")
    real = functions.registerNode(operator.address, ENDPOINT, public_keys[0], MEASUREMENT, PROOF)
    reverts(real, operator, "NodeExists")

    reverts(functions.removeNode(squatted), stranger, "OwnableUnauthorizedAccount")
    reverts(functions.removeNode(squatted), operator, "OwnableUnauthorizedAccount")
    send(functions.approveNode(other), owner)
    reverts(functions.removeNode(other), owner, "NodeIsApproved")  # revoke first
    receipt = send(functions.removeNode(squatted), owner)
    assert events(node_registry, "NodeRemoved", receipt) == [{"teeId": squatted, "nodeOwner": stranger.address}]
    reverts(functions.removeNode(squatted), owner, "NodeNotFound")
    assert functions.nodeCount().call() == 2
    assert [node[0] for node in functions.listNodes(0, 10).call()] == [other, last]  # the last took its place

    send(real, operator)
    node = functions.getNode(squatted).call()
    assert (node[1], node[4], node[8]) == (operator.address, False, ENDPOINT)
    assert [node[0] for node in functions.listNodes(0, 10).call()] == [other, last, squatted]
    send(functions.removeNode(squatted), owner)  # the last one removes cleanly too
    assert [functions.nodeIdAt(index).call() for index in range(2)] == [other, last]


def test_registration_digest_is_the_one_nodes_sign(
    chain: EmbeddedChain, node_registry: Contract, operator: LocalAccount
) -> None:
    from app.proxy.registry import registration_digest

    on_chain = node_registry.functions.registrationDigest(operator.address, ENDPOINT).call()
    assert on_chain == registration_digest(chain.w3.eth.chain_id, node_registry.address, operator.address, ENDPOINT)
    assert on_chain != registration_digest(
        chain.w3.eth.chain_id, node_registry.address, operator.address, ENDPOINT + "/"
    )
