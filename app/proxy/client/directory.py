"""The inference nodes as the backend sees them in the NodeRegistry, for people: the operations page and
``GET /api/nodes``."""

from __future__ import annotations

from datetime import UTC, datetime

from msgspec import Struct

from app.proxy.client.client import ProxyClient


class NodeOut(Struct):
    tee_id: str  # keccak256 of the node's signing key: the tee_id its replies carry
    endpoint: str
    owner: str
    payment_address: str
    enabled: bool
    healthy: bool  # enabled, with a recent heartbeat
    trusted: bool  # personas and payments may go to it (replies are routed to it while it is healthy)
    trust: str  # approved | measurement | embedded | untrusted
    trust_detail: str  # why
    approved: bool  # approved by the NodeRegistry's owner
    registered_at: datetime
    last_heartbeat: datetime
    code_measurement: str


async def node_directory(client: ProxyClient) -> list[NodeOut]:
    """Every registered node, in registration order, with whether the backend trusts it and why."""
    nodes = await client.registered_nodes()
    return [
        NodeOut(
            tee_id=node.tee_id,
            endpoint=node.endpoint,
            owner=node.owner,
            payment_address=node.payment_address,
            enabled=node.enabled,
            healthy=client.is_healthy(node),
            trusted=trust.trusted,
            trust=trust.reason,
            trust_detail=trust.detail,
            approved=node.approved,
            registered_at=datetime.fromtimestamp(node.registered_at, UTC),
            last_heartbeat=datetime.fromtimestamp(node.last_heartbeat, UTC),
            code_measurement=node.code_measurement,
        )
        for node in nodes
        for trust in [await client.assess(node)]
    ]
