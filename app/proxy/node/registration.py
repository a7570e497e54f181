"""This node in the on-chain NodeRegistry: registered at start, heartbeating while it runs, disabled at shutdown
(reading the registry, for nodes and clients alike, is :mod:`app.proxy.registry`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog
from web3.contract import AsyncContract

from app.chain.client import ChainUnavailable
from app.chain.transactions import GAS_LIMITS, REVERTED, TransactionSender
from app.proxy.node.attestation import EnclaveIdentity
from app.proxy.registry import NodeRecord

log = structlog.get_logger()

REGISTRATION_PATIENCE_S = 60.0  # how long a starting node waits for a chain that is briefly not answering
REGISTRATION_RETRY_S = (0.5, 5.0)  # first wait between tries, doubling up to the second


class NodeRegistration:
    """This node's record: registered at start, heartbeats while running, disabled at shutdown."""

    def __init__(
        self,
        registry: AsyncContract,
        sender: TransactionSender,
        identity: EnclaveIdentity,
        *,
        endpoint: str,
        heartbeat_s: float,
        wait_s: float,
        chain_id: int,
    ) -> None:
        self._registry = registry
        self._chain_id = chain_id
        self._sender = sender
        self._identity = identity
        self._endpoint = endpoint
        self._heartbeat_s = heartbeat_s
        self._wait_s = wait_s
        self.tee_id = bytes.fromhex(identity.tee_id.removeprefix("0x"))

    async def register_when_answering(self, patience_s: float = REGISTRATION_PATIENCE_S) -> None:
        """:meth:`register`, tried again while the chain is unavailable (a busy machine, a node restarting) for
        up to ``patience_s``: a node starting beside a slow chain waits for it rather than failing its start.
        Trying again is safe: a record the last try left is updated, not registered twice."""
        deadline = time.monotonic() + patience_s
        wait_s, most_s = REGISTRATION_RETRY_S
        while True:
            try:
                return await self.register()
            except ChainUnavailable as error:
                if time.monotonic() + wait_s > deadline:
                    raise
                log.warning("proxy_node_registration_waiting", error=str(error), retry_in_s=wait_s)
            await asyncio.sleep(wait_s)
            wait_s = min(2 * wait_s, most_s)

    async def register(self) -> None:
        """Register, or bring an existing record of this key up to date and enable it."""
        measurement = bytes.fromhex(self._identity.measurement.removeprefix("0x"))
        payment_address = self._sender.account.address
        proof = self.key_proof()
        existing = await self._record()
        if existing is None:
            await self._send(
                "registerNode", [payment_address, self._endpoint, self._identity.public_key_der, measurement, proof]
            )
        else:
            await self._send("updateNode", [self.tee_id, payment_address, self._endpoint, measurement, proof])
            if not existing.enabled:
                await self._send("setNodeEnabled", [self.tee_id, True])
        log.info("proxy_node_registered", tee_id=self._identity.tee_id, endpoint=self._endpoint)

    def key_proof(self) -> bytes:
        """The node key's signature over this record's owner and endpoint, on this registry and chain:
        what lets clients tell this record from one that merely copies the public key."""
        from app.proxy.registry import registration_digest

        digest = registration_digest(
            self._chain_id, self._registry.address, self._sender.account.address, self._endpoint
        )
        return self._identity.sign_digest(digest)

    async def heartbeat_forever(self) -> None:
        """Heartbeat every interval until cancelled; a failed beat is logged and retried next time."""
        while True:
            await asyncio.sleep(self._heartbeat_s)
            try:
                await self._send("heartbeat", [self.tee_id])
            except Exception as error:  # noqa: BLE001  (the chain may be briefly unreachable: keep beating)
                log.warning("proxy_node_heartbeat_failed", tee_id=self._identity.tee_id, error=repr(error))

    async def disable(self) -> None:
        """Tell clients to stop routing here (best effort: shutdown must not hang on the chain)."""
        with contextlib.suppress(Exception):
            await self._send("setNodeEnabled", [self.tee_id, False])

    async def _record(self) -> NodeRecord | None:
        try:
            return NodeRecord.from_chain(await self._registry.functions.getNode(self.tee_id).call())
        except REVERTED:  # NodeNotFound: the key is new
            return None

    async def _send(self, function: str, args: list[Any]) -> None:
        data = self._registry.encode_abi(function, args=args)
        await self._sender.send(self._registry.address, data, gas=GAS_LIMITS[function], wait_s=self._wait_s)
