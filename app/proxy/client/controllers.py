"""``GET /api/nodes``: the registry's inference nodes; the logic is in :mod:`app.proxy.client.directory`."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency

from app.errors import error_responses
from app.proxy.client.client import ProxyClient
from app.proxy.client.directory import NodeOut, node_directory


class NodeDirectoryController(Controller):
    tags = ["nodes"]

    @get(
        "/api/nodes",
        summary="Inference nodes in the NodeRegistry, in registration order, each with whether "
        "chat replies are routed to it",
        responses=error_responses(503),
    )
    async def nodes(self, proxy_client: NamedDependency[ProxyClient]) -> list[NodeOut]:
        return await node_directory(proxy_client)
