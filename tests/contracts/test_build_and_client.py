"""The build reproduces the committed artifacts through solc-js; the Chain client connects, verifies
deployed code, and fails with one clear line when misconfigured; `twin contracts deploy` works on RPC."""

from __future__ import annotations

from typing import Any

import pytest
import solcx
from click.testing import CliRunner
from packaging.version import Version
from web3.contract import Contract

from app.chain import build
from app.chain.artifacts import CONTRACT_NAMES, load_artifact
from app.chain.client import ChainError, chain_from_embedded, connect_chain, rpc_web3, verify_code
from app.chain.deploy import ContractAddresses
from app.chain.embedded import EmbeddedChain
from app.cli import cli
from app.config import Settings
from tests.contracts.conftest import DIVISOR, deploy, send


@pytest.fixture
def no_native_solc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(solcx, "get_installed_solc_versions", lambda: [])


def test_solcjs_shim_answers_like_native_solc() -> None:
    assert solcx.wrapper.get_solc_version(build.SOLCJS_SHIM, with_commit_hash=True) == Version("0.8.28+commit.7893614a")


def test_native_solc_is_preferred_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(solcx, "get_installed_solc_versions", lambda: [build.SOLC_VERSION])
    monkeypatch.setattr(solcx.install, "get_executable", lambda version: f"/opt/solc-{version}")
    assert str(build.solc_binary()) == "/opt/solc-0.8.28"
    monkeypatch.setattr(solcx, "get_installed_solc_versions", lambda: [Version("0.8.20")])
    assert build.solc_binary() == build.SOLCJS_SHIM


def test_committed_artifacts_are_what_a_fresh_solcjs_compile_gives(no_native_solc: None) -> None:
    result = CliRunner().invoke(cli, ["contracts", "build", "--check"])
    assert result.exit_code == 0, result.output
    assert {path.stem for path in build.ARTIFACTS_DIR.glob("*.json")} == set(CONTRACT_NAMES)


def test_build_reports_compiler_errors(no_native_solc: None) -> None:
    broken = build.CONTRACTS_DIR / "build" / "Broken.sol.tmp"
    broken.write_text("pragma solidity 0.8.28; contract Broken { function f() public { undefined(); } }")
    try:
        with pytest.raises(build.BuildError, match="Undeclared identifier"):
            build.compile_sources([broken])
    finally:
        broken.unlink()


def test_runtime_code_check_ignores_immutables(w3: Any, owner: Any, twin_keys: Contract) -> None:
    artifact = load_artifact("TwinKeys")
    other = deploy(w3, {"abi": artifact.abi, "bytecode": artifact.bytecode}, owner, 16_000, 0, 0, owner.address)
    assert artifact.runtime_code_matches(bytes(w3.eth.get_code(other.address)))
    assert artifact.runtime_code_matches(bytes(w3.eth.get_code(twin_keys.address)))
    assert not load_artifact("OPG").runtime_code_matches(bytes(w3.eth.get_code(twin_keys.address)))


async def test_async_and_sync_web3_share_the_embedded_node(
    chain: EmbeddedChain, twin_keys: Contract, owner: Any
) -> None:
    client = chain_from_embedded(chain)
    try:
        assert client.is_embedded
        assert client.embedded is chain
        assert client.rpc_url == chain.url
        assert not client.owns_node
        assert client.dev_accounts == chain.accounts
        assert client.chain_id == await client.w3.eth.chain_id
        assert await client.twin_keys.functions.curveDivisor().call() == DIVISOR
        send(twin_keys.functions.setCreatorFeePercent(123), owner)
        assert await client.twin_keys.functions.creatorFeePercent().call() == 123
        assert await client.opg.functions.symbol().call() == "OPG"
        assert await client.node_registry.functions.nodeCount().call() == 0
    finally:
        await client.close()
    assert chain.w3.eth.chain_id == client.chain_id  # closing a chain that does not own the node leaves it up


async def test_verify_code_names_the_wrong_address(chain: EmbeddedChain) -> None:
    addresses = chain.addresses
    w3 = rpc_web3(chain.url, timeout_s=5.0)
    try:
        await verify_code(w3, addresses)
        swapped = ContractAddresses(twin_keys=addresses.opg, opg=addresses.opg, node_registry=addresses.node_registry)
        with pytest.raises(ChainError, match=r"TWIN_TWIN_KEYS_ADDRESS: 0x\w+ holds a different contract"):
            await verify_code(w3, swapped)
        empty = ContractAddresses(
            twin_keys=addresses.twin_keys, opg=chain.accounts[5].address, node_registry=addresses.node_registry
        )
        with pytest.raises(ChainError, match=r"TWIN_OPG_ADDRESS: 0x\w+ holds no contract"):
            await verify_code(w3, empty)
    finally:
        await w3.provider.disconnect()


async def test_connect_chain_joins_the_embedded_node_by_default(chain: EmbeddedChain) -> None:
    """Without TWIN_CHAIN_RPC_URL it joins the node of its state directory (here the session's)
    and its deployment, rather than starting another."""
    settings = Settings(chain_rpc_url=None, chain_dev_accounts=3, chain_state_dir=chain.node.options.state_dir)
    client = await connect_chain(settings)
    try:
        assert client.is_embedded
        assert client.owns_node
        assert client.embedded is not None
        assert (client.embedded.node.pid, client.rpc_url) == (chain.node.pid, chain.url)
        assert client.addresses == chain.addresses
        assert len(client.dev_accounts) == 3
        assert await client.twin_keys.functions.owner().call() == client.dev_accounts[0].address
    finally:
        await client.close()
    # It leaves the node, which the session still uses: the node keeps running.
    assert chain.w3.eth.get_code(chain.addresses.twin_keys)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"opg_address": None}, "TWIN_OPG_ADDRESS: required with TWIN_CHAIN_RPC_URL"),
        ({"node_registry_address": "0x1234"}, "TWIN_NODE_REGISTRY_ADDRESS: not an address"),
        ({"chain_rpc_url": "ws://127.0.0.1:1"}, "TWIN_CHAIN_RPC_URL: must be an http"),
        ({"chain_rpc_url": "http://127.0.0.1:9"}, "TWIN_CHAIN_RPC_URL: cannot reach http://127.0.0.1:9"),
    ],
)
async def test_connect_chain_fails_with_one_line(overrides: dict[str, Any], message: str) -> None:
    fields = {
        "chain_rpc_url": "http://127.0.0.1:9",
        "twin_keys_address": "0x" + "11" * 20,
        "opg_address": "0x" + "22" * 20,
        "node_registry_address": "0x" + "33" * 20,
        **overrides,
    }
    with pytest.raises(ChainError) as failure:
        await connect_chain(Settings(**fields))
    assert str(failure.value).startswith(message)
    assert "\n" not in str(failure.value)


def remote_settings(url: str, addresses: ContractAddresses) -> Settings:
    return Settings(
        chain_rpc_url=url,
        twin_keys_address=addresses.twin_keys,
        opg_address=addresses.opg,
        node_registry_address=addresses.node_registry,
    )


async def test_connect_chain_over_rpc_verifies_the_code_at_each_address(chain: EmbeddedChain) -> None:
    """The session's node, reached by its URL like any remote node."""
    client = await connect_chain(remote_settings(chain.url, chain.addresses))
    try:
        assert not client.is_embedded
        assert not client.owns_node
        assert client.dev_accounts == []
        assert client.chain_id == chain.deployment.chain_id
        assert await client.twin_keys.functions.curveDivisor().call() == DIVISOR
    finally:
        await client.close()

    addresses = chain.addresses
    wrong = [
        (
            ContractAddresses(
                twin_keys=addresses.twin_keys, opg=addresses.node_registry, node_registry=addresses.node_registry
            ),
            r"TWIN_OPG_ADDRESS: 0x\w+ holds a different contract, not contracts/build/OPG.json",
        ),
        (
            ContractAddresses(
                twin_keys=addresses.twin_keys, opg=addresses.opg, node_registry=chain.accounts[5].address
            ),
            r"TWIN_NODE_REGISTRY_ADDRESS: 0x\w+ holds no contract, not contracts/build/NodeRegistry.json",
        ),
    ]
    for wrong_addresses, message in wrong:
        with pytest.raises(ChainError, match=message) as failure:
            await connect_chain(remote_settings(chain.url, wrong_addresses))
        assert "\n" not in str(failure.value)


async def test_deploy_command_then_connect_over_rpc(chain: EmbeddedChain, monkeypatch: pytest.MonkeyPatch) -> None:
    deployer = chain.accounts[4]
    monkeypatch.setenv("DEPLOYER_KEY", deployer.key.hex())
    result = CliRunner().invoke(
        cli, ["contracts", "deploy", "--rpc-url", chain.url, "--private-key-env", "DEPLOYER_KEY"]
    )
    assert result.exit_code == 0, result.output
    lines = dict(line.split("=", 1) for line in result.stdout.strip().splitlines())
    assert set(lines) == {
        "TWIN_TWIN_KEYS_ADDRESS",
        "TWIN_OPG_ADDRESS",
        "TWIN_NODE_REGISTRY_ADDRESS",
        "TWIN_CHAIN_DEPLOYMENT_BLOCK",
    }
    assert lines["TWIN_TWIN_KEYS_ADDRESS"] != chain.addresses.twin_keys
    # The block printed precedes the deployment: none of the contracts is there yet, all are at the head.
    before = int(lines["TWIN_CHAIN_DEPLOYMENT_BLOCK"])
    for name in ("TWIN_TWIN_KEYS_ADDRESS", "TWIN_OPG_ADDRESS", "TWIN_NODE_REGISTRY_ADDRESS"):
        assert chain.w3.eth.get_code(lines[name], block_identifier=before) == b""
        assert chain.w3.eth.get_code(lines[name]) != b""

    settings = Settings(
        chain_rpc_url=chain.url, **{name.removeprefix("TWIN_").lower(): value for name, value in lines.items()}
    )
    client = await connect_chain(settings)
    try:
        assert not client.is_embedded
        assert client.dev_accounts == []
        assert client.embedded is None
        assert client.deployment_block == before
        assert await client.twin_keys.functions.owner().call() == deployer.address
        assert await client.opg.functions.owner().call() == deployer.address
    finally:
        await client.close()


def test_deploy_command_hands_everything_over(chain: EmbeddedChain, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.chain.artifacts import load_artifact
    from app.chain.deploy import send_transaction

    deployer, new_owner, treasury = chain.accounts[4], chain.accounts[5], chain.accounts[6]
    monkeypatch.setenv("DEPLOYER_KEY", deployer.key.hex())
    result = CliRunner().invoke(
        cli,
        [
            "contracts",
            "deploy",
            "--rpc-url",
            chain.url,
            "--private-key-env",
            "DEPLOYER_KEY",
            "--owner",
            new_owner.address,
            "--treasury",
            treasury.address,
            "--opg-cap",
            "5000000",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = dict(line.split("=", 1) for line in result.stdout.strip().splitlines())
    assert result.stderr.count("must call acceptOwnership() on") == 3
    contracts = {
        name: chain.w3.eth.contract(address=lines[f"TWIN_{variable}_ADDRESS"], abi=load_artifact(name).abi)
        for name, variable in (("TwinKeys", "TWIN_KEYS"), ("OPG", "OPG"), ("NodeRegistry", "NODE_REGISTRY"))
    }
    assert contracts["TwinKeys"].functions.treasury().call() == treasury.address
    assert contracts["OPG"].functions.cap().call() == 5_000_000 * 10**18
    for name, contract in contracts.items():
        assert contract.functions.owner().call() == deployer.address  # until the new owner accepts
        assert contract.functions.pendingOwner().call() == new_owner.address
        assert f"on {name} at {contract.address}" in result.stderr
        send_transaction(
            chain.w3, new_owner, {"to": contract.address, "data": contract.encode_abi("acceptOwnership", args=[])}
        )
        assert contract.functions.owner().call() == new_owner.address


def test_deploy_command_refuses_a_bad_owner(chain: EmbeddedChain, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOYER_KEY", chain.accounts[4].key.hex())
    result = CliRunner().invoke(
        cli,
        [
            "contracts",
            "deploy",
            "--rpc-url",
            chain.url,
            "--private-key-env",
            "DEPLOYER_KEY",
            "--owner",
            "0x" + "00" * 20,
        ],
    )
    assert result.exit_code == 2
    assert "--owner must be a non-zero address" in result.output


def test_deploy_command_needs_the_key_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    result = CliRunner().invoke(
        cli, ["contracts", "deploy", "--rpc-url", "http://127.0.0.1:9", "--private-key-env", "NO_SUCH_KEY"]
    )
    assert result.exit_code == 2
    assert "NO_SUCH_KEY is not set" in result.output
