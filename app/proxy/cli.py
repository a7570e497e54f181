"""``twin proxy``: run an LLM proxy node on its own."""

from __future__ import annotations

import asyncio
import sys

import click

from app.cli import load_or_exit, quiet_framework_warnings, with_settings
from app.config import ConfigError, Settings
from app.proxy.config import ProxySettings, load_proxy_settings


@click.group()
def proxy() -> None:
    """LLM proxy node: OpenAI-compatible, paid per request with x402, every reply attested."""


@proxy.command("serve")
@click.option("--host", default=None, help="Interface to bind (default TWIN_PROXY_HOST).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default TWIN_PROXY_PORT).")
@with_settings
def serve(settings: Settings, host: str | None, port: int | None) -> None:
    """Serve a node against the chain in settings, or an embedded chain of its own when none is set.

    The node registers itself in the NodeRegistry at start, heartbeats while it runs, and
    disables its record when stopped.
    """
    proxy_settings = load_or_exit(load_proxy_settings)
    host = host or proxy_settings.host
    port = port or proxy_settings.port
    asyncio.run(_serve(settings, proxy_settings, host, port))


async def _serve(settings: Settings, proxy_settings: ProxySettings, host: str, port: int) -> None:
    import uvicorn

    from app.chain.client import ChainError, connect_chain
    from app.proxy.app import create_proxy_app

    try:
        chain = await connect_chain(settings)
    except ChainError as error:
        click.echo(f"twin: {error}", err=True)
        sys.exit(1)
    quiet_framework_warnings()
    try:
        endpoint = proxy_settings.public_url or f"http://{host}:{port}"
        try:
            app = create_proxy_app(proxy_settings, chain, endpoint=endpoint)
        except ConfigError as error:
            click.echo(f"twin: invalid configuration: {error}", err=True)
            sys.exit(2)
        where = "an embedded chain of its own" if chain.is_embedded else f"chain {chain.chain_id}"
        click.echo(f"proxy node on http://{host}:{port}, registered as {endpoint} on {where}", err=True)
        config = uvicorn.Config(app, host=host, port=port, log_level=settings.log_level, lifespan="on")
        await uvicorn.Server(config).serve()
    finally:
        await chain.close()
