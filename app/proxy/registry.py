"""Nodes in the on-chain NodeRegistry as clients (and the operations page) read them; a node announces itself
and heartbeats through :mod:`app.proxy.node.registration`.

A node's id is ``teeId = keccak256(DER signing key)``, the same ``tee_id`` its replies carry,
so a registry record pins the key that must have signed them. The node's payment account owns
its record and sends its transactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi import encode
from eth_utils import keccak, to_checksum_address
from web3.contract import AsyncContract

PAGE_SIZE = 100


REGISTRATION_TYPEHASH = keccak(
    b"TwinNodeRegistration(uint256 chainId,address registry,address operator,string endpoint)"
)


def registration_digest(chain_id: int, registry: str, operator: str, endpoint: str) -> bytes:
    """What a node key signs to prove its record (``NodeRegistry.registrationDigest``)."""
    return keccak(
        encode(
            ["bytes32", "uint256", "address", "address", "bytes32"],
            [
                REGISTRATION_TYPEHASH,
                chain_id,
                to_checksum_address(registry),
                to_checksum_address(operator),
                keccak(endpoint.encode()),
            ],
        )
    )


@dataclass(frozen=True)
class NodeRecord:
    """One registry entry, as the client uses it."""

    tee_id: str
    owner: str
    payment_address: str
    enabled: bool
    registered_at: int
    last_heartbeat: int
    code_measurement: str
    endpoint: str
    signing_public_key: bytes
    approved: bool = False  # admitted by the registry's owner
    key_proof: bytes = b""  # the node key's signature over registrationDigest(owner, endpoint)

    @classmethod
    def from_chain(cls, node: Any) -> NodeRecord:
        tee_id, owner, payment, enabled, approved, registered, heartbeat, measurement, endpoint, key, proof = node
        return cls(
            "0x" + bytes(tee_id).hex(),
            owner,
            payment,
            enabled,
            registered,
            heartbeat,
            "0x" + bytes(measurement).hex(),
            endpoint,
            bytes(key),
            approved,
            bytes(proof),
        )


async def list_nodes(registry: AsyncContract) -> list[NodeRecord]:
    """Every registered node, in registration order."""
    nodes: list[NodeRecord] = []
    offset = 0
    while page := await registry.functions.listNodes(offset, PAGE_SIZE).call():
        nodes.extend(NodeRecord.from_chain(node) for node in page)
        offset += len(page)
        if len(page) < PAGE_SIZE:
            break
    return nodes
