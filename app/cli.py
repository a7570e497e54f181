"""The ``twin`` command. Each domain adds its own group (``twin contracts``, ``twin proxy``); what they share
is in :mod:`app.serving`."""

from __future__ import annotations

import asyncio

import click

from app.chain.cli import chain, contracts
from app.config import Settings, check_backend_settings
from app.proxy.cli import proxy
from app.serving import load_or_exit, quiet_framework_warnings, serve_on_chain, with_settings


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
    asyncio.run(
        serve_on_chain(
            settings,
            host or settings.host,
            port or settings.port,
            lambda chain: create_app(settings, chain=chain, proxy_settings=proxy_settings),
            genesis_timestamp=genesis_timestamp(settings),
        )
    )


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


cli.add_command(chain)
cli.add_command(contracts)
cli.add_command(proxy)


def main() -> None:
    quiet_framework_warnings()
    cli()


if __name__ == "__main__":  # python -m app.cli
    main()
