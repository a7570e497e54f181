"""``create_proxy_app()``: a proxy node as its own Litestar app.

Standalone (``twin proxy serve``) it listens on a port; inside the backend it runs in-process
(:func:`in_process_node`) behind a streaming ASGI transport. Either way clients reach it over
HTTP, with the same :class:`app.proxy.client.client.ProxyClient`::

    async with in_process_node(proxy_settings, chain) as node:
        client = ProxyClient(chain, platform_wallet(proxy_settings, chain), proxy_settings,
                             transports={node.endpoint: node.transport}, own_tee_ids=[node.tee_id])
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi.config import OpenAPIConfig

from app.chain.client import Chain
from app.hardening import keep_recursion_limit_sane
from app.proxy.config import ProxySettings
from app.proxy.node.asgi import StreamingASGITransport, running_lifespan
from app.proxy.node.errors import exception_handlers
from app.proxy.node.node import ProxyNode
from app.proxy.node.payments import PAYMENT_HEADERS
from app.proxy.node.routes import ChatCompletionsController, NodeInfoController


def create_proxy_app(settings: ProxySettings, chain: Chain, *, endpoint: str | None = None) -> Litestar:
    """A node on ``chain``; ``endpoint`` is the URL it registers (default: TWIN_PROXY_PUBLIC_URL)."""
    keep_recursion_limit_sane()
    node = ProxyNode.build(settings, chain, endpoint=endpoint)

    def lifespan(_: Litestar) -> AbstractAsyncContextManager[None]:
        return node.running()

    return Litestar(
        route_handlers=[ChatCompletionsController, NodeInfoController],
        exception_handlers=exception_handlers,
        lifespan=[lifespan],
        state=State({"node": node}),  # for tests and tools that look inside; handlers get ``node`` injected
        dependencies={"node": Provide(lambda: node, sync_to_thread=False)},
        cors_config=CORSConfig(allow_origins=settings.cors_origins, expose_headers=list(PAYMENT_HEADERS)),
        request_max_body_size=settings.max_request_bytes,
        openapi_config=OpenAPIConfig(title="Twin proxy node", version="0.1.0", path="/schema"),
        debug=False,
    )


@dataclass(frozen=True)
class InProcessNode:
    endpoint: str  # the URL it registered; map it to ``transport`` in the client
    transport: StreamingASGITransport
    app: Litestar
    tee_id: str  # its signing key's id: the client trusts it as its own (``own_tee_ids``)


@asynccontextmanager
async def in_process_node(
    settings: ProxySettings, chain: Chain, *, name: str = "node-0"
) -> AsyncIterator[InProcessNode]:
    """A node running inside this process (registered, heartbeating) until the block exits."""
    # The .invalid top-level domain never resolves (RFC 2606): the endpoint is reachable only
    # through this process's transport, never by accident over the network.
    endpoint = f"http://{name}.in-process.invalid"
    app = create_proxy_app(settings, chain, endpoint=endpoint)
    async with running_lifespan(app):
        yield InProcessNode(endpoint, StreamingASGITransport(app), app, app.state.node.identity.tee_id)
