"""A proxy node assembled: identity, upstreams, payments, registry record, and their lifecycle.

:meth:`ProxyNode.running` is the node's lifespan: it registers the node in the NodeRegistry,
heartbeats in a background task, and on shutdown stops the heartbeat, disables the record
and closes the upstream connections.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from app.chain.client import Chain, ChainClock
from app.chain.transactions import sender_for
from app.proxy.accounts import node_payment_account
from app.proxy.config import ProxySettings
from app.proxy.node.attestation import EnclaveIdentity
from app.proxy.node.completions import CompletionService
from app.proxy.node.facilitator import OpgFacilitator
from app.proxy.node.payments import PaymentGate, TokenTerms
from app.proxy.node.registration import NodeRegistration
from app.proxy.node.router import UpstreamRouter
from app.proxy.node.upstreams import build_upstream

# OPG's EIP-712 domain, which payment signatures are made over.
OPG_DOMAIN_NAME = "OPG"
OPG_DOMAIN_VERSION = "1"


@dataclass
class ProxyNode:
    settings: ProxySettings
    endpoint: str
    identity: EnclaveIdentity
    payments: PaymentGate
    completions: CompletionService
    registration: NodeRegistration
    http_client: httpx.AsyncClient

    @classmethod
    def build(cls, settings: ProxySettings, chain: Chain, *, endpoint: str | None = None) -> ProxyNode:
        """Wire a node to ``chain``; its signing key is generated here and stays in this object."""
        endpoint = endpoint or settings.endpoint_url
        identity = EnclaveIdentity.generate()
        sender = sender_for(chain.w3, chain.chain_id, node_payment_account(settings, chain))
        clock = ChainClock(chain.w3)
        facilitator = OpgFacilitator(
            chain.w3, chain.chain_id, sender, clock, settle_timeout=settings.settle_timeout_seconds
        )
        terms = TokenTerms(
            network=f"eip155:{chain.chain_id}",
            asset=chain.addresses.opg,
            name=OPG_DOMAIN_NAME,
            version=OPG_DOMAIN_VERSION,
            pay_to=sender.account.address,
        )
        payments = PaymentGate(
            facilitator,
            terms,
            {model: route.price_wei for model, route in settings.models.items()},
            max_timeout_seconds=settings.payment_timeout_seconds,
            clock=clock,
        )
        http_client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                settings.connect_timeout_seconds,
                read=max(settings.first_token_timeout_seconds, settings.idle_timeout_seconds),
            ),
            limits=httpx.Limits(max_connections=2 * settings.capacity, max_keepalive_connections=settings.capacity),
        )
        used = {target.upstream for targets in settings.routes.values() for target in targets}
        upstreams = {name: build_upstream(name, settings.upstreams[name], settings, http_client) for name in used}
        router = UpstreamRouter(
            upstreams,
            settings.routes,
            first_token_timeout=settings.first_token_timeout_seconds,
            idle_timeout=settings.idle_timeout_seconds,
        )
        registration = NodeRegistration(
            chain.node_registry,
            sender,
            identity,
            endpoint=endpoint,
            heartbeat_s=settings.heartbeat_seconds,
            wait_s=settings.settle_timeout_seconds,
            chain_id=chain.chain_id,
        )
        return cls(
            settings,
            endpoint,
            identity,
            payments,
            CompletionService(settings, identity, router, payments),
            registration,
            http_client,
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        await self.registration.register_when_answering()
        heartbeats = asyncio.create_task(self.registration.heartbeat_forever(), name="proxy-node-heartbeat")
        try:
            yield
        finally:
            heartbeats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeats
            await self.registration.disable()
            await self.http_client.aclose()

    def model_cards(self) -> list[dict[str, Any]]:
        """``/v1/models`` entries, each with its x402 price."""
        return [
            {
                "id": model,
                "object": "model",
                "created": 0,
                "owned_by": "twin-proxy",
                "upstreams": [target.upstream for target in self.settings.routes[model]],
                "price": {
                    "amount": str(route.price_wei),
                    "asset": self.payments.terms.asset,
                    "network": self.payments.terms.network,
                },
            }
            for model, route in self.settings.models.items()
        ]

    def attestation_document(self) -> dict[str, Any]:
        terms = self.payments.terms
        return self.identity.document() | {
            "endpoint": self.endpoint,
            "payment_address": terms.pay_to,
            "network": terms.network,
            "asset": terms.asset,
        }
