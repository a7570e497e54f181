"""``create_proxy_app()``: a proxy node as its own Litestar app.

Standalone (``twin proxy serve``) it listens on a port; inside the backend it runs in-process
behind :class:`app.proxy.asgi.StreamingASGITransport`. Either way clients reach it over HTTP.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.openapi.config import OpenAPIConfig

from app.chain.client import Chain
from app.proxy.config import ProxySettings
from app.proxy.controllers import ChatCompletionsController, NodeInfoController
from app.proxy.errors import exception_handlers
from app.proxy.node import ProxyNode
from app.proxy.payments import PAYMENT_HEADERS
from app.proxy.service import VERIFICATION_HEADER


def create_proxy_app(settings: ProxySettings, chain: Chain, *, endpoint: str | None = None) -> Litestar:
    """A node on ``chain``; ``endpoint`` is the URL it registers (default: TWIN_PROXY_PUBLIC_URL)."""
    node = ProxyNode.build(settings, chain, endpoint=endpoint)

    def lifespan(_: Litestar) -> AbstractAsyncContextManager[None]:
        return node.running()

    return Litestar(
        route_handlers=[ChatCompletionsController, NodeInfoController],
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
        lifespan=[lifespan],
        state=State({"node": node}),
        cors_config=CORSConfig(allow_origins=settings.cors_origins, expose_headers=list(PAYMENT_HEADERS),
                               allow_headers=["*", VERIFICATION_HEADER]),
        request_max_body_size=settings.max_request_bytes,
        openapi_config=OpenAPIConfig(title="Twin proxy node", version="0.1.0", path="/schema"),
        debug=False,
    )
