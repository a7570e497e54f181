"""Which registered nodes the backend trusts with personas, memories and money.

Registration in the NodeRegistry is open and self-declared, so a record proves nothing by itself.
A node is trusted only when both hold:

1. its **key proof** verifies: the record carries an RSA-PSS signature by the node's signing key
   (the key whose hash is the record's ``teeId``) over :func:`registration_digest` of the record's
   owner and endpoint, on this chain and this registry. Someone who registers another operator's
   key cannot produce it for their own account, and a proof cannot be replayed to another
   endpoint, registry or chain;
2. it is **admitted**: approved by the registry's owner (``approved``), or running code whose
   measurement is on ``TWIN_PROXY_TRUSTED_MEASUREMENTS`` (``measurement``), or it is the backend's
   own in-process node on the embedded chain (``embedded``).

Anything else is ``untrusted``, with the reason in :attr:`Trust.detail`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from eth_hash.auto import keccak

from app.proxy.registry import NodeRecord, registration_digest
from app.proxy.verify import PSS_PADDING, AttestationError, load_public_key

TrustReason = Literal["approved", "measurement", "embedded", "untrusted"]


def key_proof_problem(node: NodeRecord, chain_id: int, registry: str) -> str | None:
    """Why the record's key proof does not verify, or None when it does."""
    if not node.key_proof:
        return "the record carries no key proof"
    try:
        key = load_public_key(node.signing_public_key)
    except AttestationError as error:
        return str(error)
    if "0x" + keccak(node.signing_public_key).hex() != node.tee_id.lower():
        return "the record's teeId is not the hash of its signing key"
    digest = registration_digest(chain_id, registry, node.owner, node.endpoint)
    try:
        key.verify(node.key_proof, digest, PSS_PADDING, hashes.SHA256())
    except InvalidSignature:
        return "the key proof is not the node key's signature over this owner, endpoint, registry and chain"
    return None


@dataclass(frozen=True)
class Trust:
    trusted: bool
    reason: TrustReason
    detail: str


class TrustPolicy:
    """Decides :class:`Trust` for records of one registry; proof checks are cached per record."""

    def __init__(
        self,
        chain_id: int,
        registry: str,
        *,
        trusted_measurements: Collection[str] = (),
        own_tee_ids: Collection[str] = (),
    ) -> None:
        self._chain_id = chain_id
        self._registry = registry
        self._measurements = frozenset(m.lower() for m in trusted_measurements)
        self.own_tee_ids = {tee_id.lower() for tee_id in own_tee_ids}
        self._proofs: dict[tuple[str, str, str, bytes], str | None] = {}

    def assess(self, node: NodeRecord) -> Trust:
        key = (node.tee_id, node.owner, node.endpoint, node.key_proof)
        if key not in self._proofs:
            if len(self._proofs) > 10_000:
                self._proofs.clear()
            self._proofs[key] = key_proof_problem(node, self._chain_id, self._registry)
        if (problem := self._proofs[key]) is not None:
            return Trust(False, "untrusted", problem)
        if node.tee_id.lower() in self.own_tee_ids:
            return Trust(True, "embedded", "the backend's own in-process node")
        if node.approved:
            return Trust(True, "approved", "approved by the NodeRegistry's owner")
        if node.code_measurement.lower() in self._measurements:
            return Trust(True, "measurement", "its code measurement is on TWIN_PROXY_TRUSTED_MEASUREMENTS")
        return Trust(
            False,
            "untrusted",
            "not approved in the NodeRegistry and its code measurement is not on TWIN_PROXY_TRUSTED_MEASUREMENTS",
        )
