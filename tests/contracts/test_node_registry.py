"""NodeRegistry: registration, owner-only changes, enable/disable, heartbeat, enumeration."""

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


def rsa_public_key_der() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def public_keys() -> list[bytes]:
    return [rsa_public_key_der() for _ in range(3)]


@pytest.fixture
def operator(accounts: list[LocalAccount]) -> LocalAccount:
    return accounts[1]


@pytest.fixture
def stranger(accounts: list[LocalAccount]) -> LocalAccount:
    return accounts[2]


def register(registry: Contract, operator: LocalAccount, public_key: bytes, endpoint: str = ENDPOINT) -> bytes:
    send(registry.functions.registerNode(operator.address, endpoint, public_key, MEASUREMENT), operator)
    return Web3.keccak(public_key)


def test_register_node(
    w3: Web3, node_registry: Contract, operator: LocalAccount, public_keys: list[bytes]
) -> None:
    public_key = public_keys[0]
    function = node_registry.functions.registerNode(operator.address, ENDPOINT, public_key, MEASUREMENT)
    assert function.call({"from": operator.address}) == Web3.keccak(public_key)
    receipt = send(function, operator)
    tee_id = Web3.keccak(public_key)
    timestamp = w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    assert events(node_registry, "NodeRegistered", receipt) == [{
        "teeId": tee_id, "owner": operator.address, "paymentAddress": operator.address, "endpoint": ENDPOINT,
        "signingPublicKey": public_key, "codeMeasurement": MEASUREMENT,
    }]
    node = node_registry.functions.getNode(tee_id).call()
    assert node == (tee_id, operator.address, operator.address, True, timestamp, timestamp, MEASUREMENT, ENDPOINT,
                    public_key)


@pytest.mark.parametrize(
    ("payment", "endpoint", "key_index", "error"),
    [
        (ZERO_ADDRESS, ENDPOINT, 0, "ZeroAddress"),
        (None, "", 0, "EmptyEndpoint"),
        (None, ENDPOINT, None, "EmptyPublicKey"),
    ],
)
def test_register_rejects_bad_records(
    node_registry: Contract, operator: LocalAccount, public_keys: list[bytes], payment: str | None, endpoint: str,
    key_index: int | None, error: str,
) -> None:
    public_key = b"" if key_index is None else public_keys[key_index]
    function = node_registry.functions.registerNode(payment or operator.address, endpoint, public_key, MEASUREMENT)
    reverts(function, operator, error)


def test_a_key_registers_once(
    node_registry: Contract, operator: LocalAccount, stranger: LocalAccount, public_keys: list[bytes]
) -> None:
    register(node_registry, operator, public_keys[0])
    function = node_registry.functions.registerNode(stranger.address, ENDPOINT, public_keys[0], MEASUREMENT)
    reverts(function, stranger, "NodeExists")


def test_only_the_owner_changes_a_node(
    chain: EmbeddedChain, node_registry: Contract, operator: LocalAccount, stranger: LocalAccount,
    public_keys: list[bytes],
) -> None:
    tee_id = register(node_registry, operator, public_keys[0])
    functions = node_registry.functions
    new_measurement = bytes.fromhex("cd" * 32)
    receipt = send(functions.updateNode(tee_id, stranger.address, "https://moved.example", new_measurement), operator)
    assert events(node_registry, "NodeUpdated", receipt) == [{
        "teeId": tee_id, "paymentAddress": stranger.address, "endpoint": "https://moved.example",
        "codeMeasurement": new_measurement,
    }]
    node = functions.getNode(tee_id).call()
    assert (node[2], node[6], node[7]) == (stranger.address, new_measurement, "https://moved.example")

    receipt = send(functions.setNodeEnabled(tee_id, False), operator)
    assert events(node_registry, "NodeEnabledSet", receipt) == [{"teeId": tee_id, "enabled": False}]
    assert functions.getNode(tee_id).call()[3] is False
    send(functions.setNodeEnabled(tee_id, True), operator)
    assert functions.getNode(tee_id).call()[3] is True

    later = chain.w3.eth.get_block("latest")["timestamp"] + 120
    chain.time_travel(later)
    receipt = send(functions.heartbeat(tee_id), operator)
    assert events(node_registry, "NodeHeartbeat", receipt) == [{"teeId": tee_id, "timestamp": later}]
    assert functions.getNode(tee_id).call()[5] == later

    for function in (
        functions.updateNode(tee_id, stranger.address, ENDPOINT, MEASUREMENT),
        functions.setNodeEnabled(tee_id, False),
        functions.heartbeat(tee_id),
        functions.transferNodeOwnership(tee_id, stranger.address),
    ):
        reverts(function, stranger, "NotNodeOwner")
    reverts(functions.updateNode(tee_id, ZERO_ADDRESS, ENDPOINT, MEASUREMENT), operator, "ZeroAddress")
    reverts(functions.updateNode(tee_id, operator.address, "", MEASUREMENT), operator, "EmptyEndpoint")


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
    ids = [register(node_registry, accounts[index + 1], key, f"https://node-{index}.example")
           for index, key in enumerate(public_keys)]
    functions = node_registry.functions
    assert functions.nodeCount().call() == 3
    assert [functions.nodeIdAt(index).call() for index in range(3)] == ids
    assert [node[0] for node in functions.listNodes(0, 10).call()] == ids
    assert [node[7] for node in functions.listNodes(1, 1).call()] == ["https://node-1.example"]
    assert [node[0] for node in functions.listNodes(2, 5).call()] == ids[2:]
    assert functions.listNodes(3, 5).call() == []
    assert functions.listNodes(10, 5).call() == []
