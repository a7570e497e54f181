"""The ``twin`` command. Each domain adds its own group (``twin contracts``, ``twin proxy``)."""

from __future__ import annotations

import asyncio
import sys
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from app.config import ConfigError, Settings, check_backend_settings, load_settings, redact

if TYPE_CHECKING:
    import uvicorn
    from litestar import Litestar

    from app.chain.client import Chain

T = TypeVar("T")


def load_or_exit(loader: Callable[[], T]) -> T:
    """Run a settings loader; on a bad value print one line naming it and exit with status 2."""
    try:
        return loader()
    except ConfigError as error:
        click.echo(f"twin: invalid configuration: {error}", err=True)
        sys.exit(2)


def settings_or_exit() -> Settings:
    return load_or_exit(load_settings)


def with_settings(func: Callable[..., Any]) -> Callable[..., Any]:
    """Validate the environment before the command runs and pass the settings in."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(settings_or_exit(), *args, **kwargs)

    wrapper.__name__, wrapper.__doc__ = func.__name__, func.__doc__
    return wrapper


def quiet_framework_warnings() -> None:
    """Litestar 2.25 announces 3.0 changes for every handler as an app is built, and abnf warns on
    the SIWE grammar: nothing an operator can act on."""
    warnings.filterwarnings("ignore", message=r".*(inferred style|Inferred dependency|Reserved kwarg)")
    warnings.filterwarnings("ignore", message=r"rule '.*' redefines")


@click.group()
def cli() -> None:
    """Twin market: AI avatars, keys on a bonding curve, attested and paid chat."""


@cli.command()
@click.option("--host", default=None, help="Interface to bind (default TWIN_HOST).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default TWIN_PORT).")
@with_settings
def serve(settings: Settings, host: str | None, port: int | None) -> None:
    """Run the whole service (embedded defaults need no configuration)."""
    from app.demo.world import genesis_timestamp
    from app.main import create_app
    from app.proxy.config import load_proxy_settings

    load_or_exit(lambda: check_backend_settings(settings))
    proxy_settings = load_or_exit(load_proxy_settings)
    asyncio.run(serve_on_chain(settings, host or settings.host, port or settings.port,
                               lambda chain: create_app(settings, chain=chain, proxy_settings=proxy_settings),
                               genesis_timestamp=genesis_timestamp(settings)))


# The protocol's cap on a websocket message sits above the chat's own check, so that a frame a little
# too long still gets a frame_too_large error frame, while nothing near uvicorn's default (16 MiB) is
# ever buffered; beyond it the socket closes with 1009 (message too big).
WS_MAX_SIZE_FACTOR = 4


def uvicorn_config(app: Litestar, settings: Settings, host: str, port: int) -> uvicorn.Config:
    """How `twin serve` and `twin proxy serve` listen: bodies under a deadline, websocket messages capped."""
    import uvicorn

    from app.hardening import BodyReadTimeout

    return uvicorn.Config(BodyReadTimeout(app, settings.body_read_timeout_s), host=host, port=port,
                          log_level=settings.log_level, lifespan="on", ws="websockets-sansio",
                          ws_max_size=WS_MAX_SIZE_FACTOR * settings.chat_max_frame_bytes)


async def serve_on_chain(settings: Settings, host: str, port: int, build: Callable[[Chain], Litestar], *,
                         genesis_timestamp: int | None = None) -> None:
    """Connect the chain (one line and exit 1 when it fails), build the app on it, serve until stopped.
    ``genesis_timestamp``: see connect_chain."""
    import uvicorn

    from app.chain.client import ChainError, connect_chain

    try:
        chain = await connect_chain(settings, genesis_timestamp=genesis_timestamp)
    except ChainError as error:
        click.echo(f"twin: {redact(str(error))}", err=True)  # the RPC URL may carry credentials
        sys.exit(1)
    quiet_framework_warnings()
    try:
        await uvicorn.Server(uvicorn_config(build(chain), settings, host, port)).serve()
    finally:
        await chain.close()


@cli.group()
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
@click.argument("revision", default="head")
@with_settings
def db_upgrade(settings: Settings, revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from app.db import migrate

    migrate.upgrade(settings.database_url, revision)
    click.echo(f"database at {revision}")


@db.command("downgrade")
@click.argument("revision")
@with_settings
def db_downgrade(settings: Settings, revision: str) -> None:
    """Revert migrations down to REVISION (``base`` empties the schema)."""
    from app.db import migrate

    migrate.downgrade(settings.database_url, revision)
    click.echo(f"database at {revision}")


from app.chain.cli import chain, contracts  # noqa: E402  (imports with_settings from this module)
from app.proxy.cli import proxy  # noqa: E402  (imports with_settings from this module)

cli.add_command(chain)
cli.add_command(contracts)
cli.add_command(proxy)


def main() -> None:
    quiet_framework_warnings()
    cli()
