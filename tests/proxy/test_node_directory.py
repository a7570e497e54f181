"""``GET /api/nodes``: the registry's nodes as the backend routes to them, healthy or not."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import datetime

from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.chain.client import Chain
from app.proxy.accounts import node_payment_account, platform_wallet
from app.proxy.client.client import ProxyClient
from app.proxy.config import ProxySettings
from app.proxy.registry import NodeRecord


async def test_the_backend_s_in_process_node_is_listed_enabled_and_healthy(
    client: AsyncTestClient[Litestar], chain: Chain
) -> None:
    response = await client.get("/api/nodes")

    assert response.status_code == 200
    # The chain is shared by the session: other tests' nodes may be listed beside the backend's.
    node = {node["endpoint"]: node for node in response.json()}["http://node-0.in-process.invalid"]
    assert re.fullmatch(r"0x[0-9a-f]{64}", node["tee_id"])
    assert node["payment_address"] == node_payment_account(ProxySettings(), chain).address
    assert (node["enabled"], node["healthy"]) == (True, True)
    # Trusted as the backend's own node, not because anyone approved it in the registry.
    assert (node["trusted"], node["trust"], node["approved"]) == (True, "embedded", False)
    assert node["trust_detail"] == "the backend's own in-process node"
    assert datetime.fromisoformat(node["registered_at"]) <= datetime.fromisoformat(node["last_heartbeat"])


def test_a_node_is_healthy_only_while_enabled_and_heartbeating(chain: Chain) -> None:
    settings = ProxySettings(node_stale_after_seconds=60)
    client = ProxyClient(chain, platform_wallet(settings, chain), settings)
    now = int(time.time())
    beating = NodeRecord(
        tee_id="0x" + "ab" * 32,
        owner="0x" + "11" * 20,
        payment_address="0x" + "11" * 20,
        enabled=True,
        registered_at=now - 3600,
        last_heartbeat=now - 30,
        code_measurement="0x" + "00" * 32,
        endpoint="http://node.invalid",
        signing_public_key=b"",
    )

    assert client.is_healthy(beating)
    assert not client.is_healthy(replace(beating, enabled=False))
    assert not client.is_healthy(replace(beating, last_heartbeat=now - 90))
