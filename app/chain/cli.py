"""``twin contracts``: compile the Solidity sources and deploy them to any chain."""

from __future__ import annotations

import os
import sys

import click

from app.config import Settings, redact
from app.serving import with_settings


@click.group()
def chain() -> None:
    """The embedded chain: the anvil node this checkout's processes share."""


@chain.command("stop")
@with_settings
def chain_stop(settings: Settings) -> None:
    """Stop the embedded node if no twin process uses it (e.g. one left running by a killed server)."""
    from app.chain.anvil import AnvilNode, NodeError

    try:
        stopped = AnvilNode.stop_unused(settings.chain_state_dir)
    except NodeError as error:
        click.echo(f"twin: {error}", err=True)
        sys.exit(1)
    click.echo("stopped the embedded node" if stopped else "no embedded node was running")


@chain.command("reset")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_settings
def chain_reset(settings: Settings, yes: bool) -> None:
    """Forget the embedded chain: stop its node and delete its state (TWIN_CHAIN_STATE_DIR).

    Every key, balance and trade goes with it. The next start deploys the contracts again, and a
    backend's index follows the new chain (avatars can be launched again on it). To start the whole
    embedded world over, also delete the SQLite database (var/twin.db by default).
    """
    import shutil

    from app.chain.anvil import AnvilNode, NodeError

    if not yes:
        click.confirm(f"Delete the embedded chain in {settings.chain_state_dir}?", abort=True)
    try:
        AnvilNode.stop_unused(settings.chain_state_dir)
    except NodeError as error:
        click.echo(f"twin: {error}", err=True)
        sys.exit(1)
    shutil.rmtree(settings.chain_state_dir, ignore_errors=True)
    click.echo(f"deleted {settings.chain_state_dir}")


@click.group()
def contracts() -> None:
    """Solidity contracts: build artifacts, deploy."""


@contracts.command("build")
@click.option("--check", is_flag=True, help="Only verify contracts/build/ matches a fresh compile.")
def build(check: bool) -> None:
    """Compile contracts/*.sol with the pinned solc into contracts/build/<Name>.json."""
    from app.chain.build import BuildError, build_contracts, solc_binary, stale_artifacts

    try:
        binary = solc_binary()
        if check:
            stale = stale_artifacts(binary)
            for path in stale:
                click.echo(f"stale: {path}", err=True)
            sys.exit(1 if stale else 0)
        for path in build_contracts(binary):
            click.echo(f"wrote {path}")
    except BuildError as error:
        click.echo(f"twin: {error}", err=True)
        sys.exit(1)


@contracts.command("deploy")
@click.option("--rpc-url", required=True, help="JSON-RPC URL of the chain to deploy to.")
@click.option(
    "--private-key-env",
    required=True,
    metavar="VAR",
    help="Name of the environment variable holding the deployer's private key (never the key itself).",
)
@click.option(
    "--owner",
    metavar="ADDR",
    help="Offer ownership of all three contracts to ADDR (it must then call acceptOwnership on each).",
)
@click.option("--treasury", metavar="ADDR", help="Make ADDR TwinKeys' treasury (receiver of protocol fees).")
@click.option(
    "--opg-cap",
    type=click.IntRange(min=1),
    default=10**9,
    show_default=True,
    help="OPG's supply cap in whole tokens, fixed for ever.",
)
@with_settings
def deploy(
    settings: Settings, rpc_url: str, private_key_env: str, owner: str | None, treasury: str | None, opg_cap: int
) -> None:
    """Deploy TwinKeys, OPG and NodeRegistry; print TWIN_*_ADDRESS lines to paste into the environment.

    TwinKeys takes TWIN_CHAIN_CURVE_DIVISOR and the TWIN_CHAIN_*_FEE_PERCENT settings. The deployer
    owns all three and is TwinKeys' treasury, unless --treasury and --owner hand them over (ownership in
    two steps: what remains for the new owner to do is printed on stderr).
    """
    from eth_account import Account
    from eth_utils import is_address
    from web3 import HTTPProvider, Web3

    from app.chain.deploy import DeploymentError, DeploymentParameters, deploy_contracts, hand_over

    for option, value in (("--owner", owner), ("--treasury", treasury)):
        if value is not None and (not is_address(value) or int(value, 16) == 0):
            click.echo(f"twin: {option} must be a non-zero address (got {value[:60]!r})", err=True)
            sys.exit(2)

    private_key = os.environ.get(private_key_env)
    if not private_key:
        click.echo(f"twin: environment variable {private_key_env} is not set", err=True)
        sys.exit(2)
    try:
        deployer = Account.from_key(private_key)
    except ValueError:
        click.echo(f"twin: {private_key_env} does not hold a valid private key", err=True)
        sys.exit(2)
    w3 = Web3(HTTPProvider(rpc_url))
    if not w3.is_connected():
        click.echo(redact(f"twin: cannot reach {rpc_url}"), err=True)
        sys.exit(1)
    click.echo(f"deploying from {deployer.address} to chain {w3.eth.chain_id}", err=True)
    before = w3.eth.block_number  # nothing of the contracts can happen at or before this block
    try:
        addresses = deploy_contracts(
            w3, deployer, DeploymentParameters.from_settings(settings, opg_cap=opg_cap * 10**18)
        )
    except DeploymentError as error:
        click.echo(f"twin: {error}", err=True)
        sys.exit(1)
    click.echo(addresses.as_env())
    click.echo(f"TWIN_CHAIN_DEPLOYMENT_BLOCK={before}")
    try:
        remaining = hand_over(w3, deployer, addresses, owner=owner, treasury=treasury)
    except DeploymentError as error:
        click.echo(f"twin: the contracts are deployed, but handing them over failed: {error}", err=True)
        sys.exit(1)
    if treasury is not None:
        click.echo(f"TwinKeys' treasury is now {treasury}", err=True)
    if remaining:
        click.echo("ownership is offered, not yet transferred; to finish the hand-off:", err=True)
        for step in remaining:
            click.echo(f"  - {step}", err=True)
        click.echo(f"until then the deployer {deployer.address} remains owner of all three", err=True)
