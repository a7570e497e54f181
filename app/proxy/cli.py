"""``twin proxy``: run an LLM proxy node on its own."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

import click

from app.config import ConfigError, Settings
from app.proxy.config import ProxySettings, load_proxy_settings
from app.serving import load_or_exit, serve_on_chain, with_settings

if TYPE_CHECKING:
    from litestar import Litestar

    from app.chain.client import Chain


@click.group()
def proxy() -> None:
    """LLM proxy node: OpenAI-compatible, paid per request with x402, every reply attested."""


@proxy.command("serve")
@click.option("--host", default=None, help="Interface to bind (default TWIN_PROXY_HOST).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default TWIN_PROXY_PORT).")
@click.option(
    "--backend",
    default=None,
    metavar="URL",
    help="A Twin market backend whose chain to join: its RPC and contract addresses come from URL/api/chain.",
)
@with_settings
def serve(settings: Settings, host: str | None, port: int | None, backend: str | None) -> None:
    """Serve a node against the chain in settings (or the backend's, with --backend), else the
    embedded chain this checkout's processes share.

    The node registers itself in the NodeRegistry at start, heartbeats while it runs, and
    disables its record when stopped.
    """
    if backend:
        from app.chain.service import ChainFactsError, settings_joining

        try:
            settings = settings_joining(settings, backend)
        except ChainFactsError as error:
            click.echo(f"twin: {error}", err=True)
            sys.exit(1)
    proxy_settings = load_or_exit(load_proxy_settings)
    host = host or proxy_settings.host
    port = port or proxy_settings.port
    asyncio.run(serve_on_chain(settings, host, port, lambda chain: _node_app(proxy_settings, chain, host, port)))


def _node_app(proxy_settings: ProxySettings, chain: Chain, host: str, port: int) -> Litestar:
    from app.proxy.node.app import create_proxy_app

    endpoint = proxy_settings.public_url or f"http://{host}:{port}"
    try:
        app = create_proxy_app(proxy_settings, chain, endpoint=endpoint)
    except ConfigError as error:
        click.echo(f"twin: invalid configuration: {error}", err=True)
        sys.exit(2)
    where = "the embedded chain" if chain.is_embedded else f"chain {chain.chain_id}"
    click.echo(f"proxy node on http://{host}:{port}, registered as {endpoint} on {where}", err=True)
    return app
