"""The ``twin`` command. Each domain adds its own group (``twin contracts``, ``twin proxy``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from app.config import ConfigError, Settings, load_settings


def settings_or_exit() -> Settings:
    """Load the settings; on a bad value print one line naming it and exit with status 2."""
    try:
        return load_settings()
    except ConfigError as error:
        click.echo(f"twin: invalid configuration: {error}", err=True)
        sys.exit(2)


def with_settings(func: Callable[..., Any]) -> Callable[..., Any]:
    """Validate the environment before the command runs and pass the settings in."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(settings_or_exit(), *args, **kwargs)

    wrapper.__name__, wrapper.__doc__ = func.__name__, func.__doc__
    return wrapper


@click.group()
def cli() -> None:
    """Twin market: AI avatars, keys on a bonding curve, attested and paid chat."""


@cli.command()
@click.option("--host", default=None, help="Interface to bind (default TWIN_HOST).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default TWIN_PORT).")
@with_settings
def serve(settings: Settings, host: str | None, port: int | None) -> None:
    """Run the whole service (embedded defaults need no configuration)."""
    import uvicorn

    from app.main import create_app

    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port,
                log_level=settings.log_level, ws="websockets-sansio", lifespan="on")


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


from app.chain.cli import contracts  # noqa: E402  (imports with_settings from this module)
from app.proxy.cli import proxy  # noqa: E402  (imports with_settings from this module)

cli.add_command(contracts)
cli.add_command(proxy)


def main() -> None:
    cli()
