"""What every ``twin`` command shares: settings loaded (or one line and exit 2), and an app served on a
connected chain. ``app/cli.py`` and the domains' command groups (``app/chain/cli.py``, ``app/proxy/cli.py``)
import it; it imports none of them."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from app.config import ConfigError, Settings, load_settings, redact

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

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


def quiet_framework_warnings() -> None:
    """Litestar 2.25 announces 3.0 changes for every handler as an app is built, and abnf warns on
    the SIWE grammar: nothing an operator can act on."""
    warnings.filterwarnings("ignore", message=r".*(inferred style|Inferred dependency|Reserved kwarg)")
    warnings.filterwarnings("ignore", message=r"rule '.*' redefines")


# The protocol's cap on a websocket message sits above the chat's own check, so that a frame a little
# too long still gets a frame_too_large error frame, while nothing near uvicorn's default (16 MiB) is
# ever buffered; beyond it the socket closes with 1009 (message too big).
WS_MAX_SIZE_FACTOR = 4


def uvicorn_config(app: Litestar, settings: Settings, host: str, port: int) -> uvicorn.Config:
    """How `twin serve` and `twin proxy serve` listen: bodies under a deadline, websocket messages capped."""
    import uvicorn

    from app.hardening import BodyReadTimeout

    return uvicorn.Config(
        BodyReadTimeout(app, settings.body_read_timeout_s),
        host=host,
        port=port,
        log_level=settings.log_level,
        lifespan="on",
        ws="websockets-sansio",
        ws_max_size=WS_MAX_SIZE_FACTOR * settings.chat_max_frame_bytes,
    )


async def serve_on_chain(
    settings: Settings,
    host: str,
    port: int,
    build: Callable[[Chain], Litestar],
    *,
    genesis_timestamp: int | None = None,
) -> None:
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
