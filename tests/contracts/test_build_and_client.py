"""The build reproduces the committed artifacts through solc-js; the Chain client connects, verifies
deployed code, and fails with one clear line when misconfigured; `twin contracts deploy` works on RPC."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
import solcx
from click.testing import CliRunner
from packaging.version import Version
from web3._utils.encoding import Web3JsonEncoder
from web3.contract import Contract

from app.chain import build
from app.chain.artifacts import CONTRACT_NAMES, load_artifact
from app.chain.client import ChainError, chain_from_embedded, connect_chain, verify_code
from app.chain.deploy import ContractAddresses
from app.chain.embedded import EmbeddedChain
from app.cli import cli
from app.config import Settings
from tests.contracts.conftest import DIVISOR, deploy, send


@pytest.fixture
def no_native_solc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(solcx, "get_installed_solc_versions", lambda: [])


def test_solcjs_shim_answers_like_native_solc() -> None:
    assert solcx.wrapper.get_solc_version(build.SOLCJS_SHIM, with_commit_hash=True) == Version(
        "0.8.28+commit.7893614a"
    )


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


async def test_async_and_sync_web3_share_the_embedded_chain(
    chain: EmbeddedChain, twin_keys: Contract, owner: Any
) -> None:
    client = chain_from_embedded(chain)
    assert client.is_embedded
    assert client.tester is chain.tester
    assert client.dev_accounts == chain.accounts
    assert client.chain_id == await client.w3.eth.chain_id
    assert await client.twin_keys.functions.curveDivisor().call() == DIVISOR
    send(twin_keys.functions.setCreatorFeePercent(123), owner)
    assert await client.twin_keys.functions.creatorFeePercent().call() == 123
    assert await client.opg.functions.symbol().call() == "OPG"
    assert await client.node_registry.functions.nodeCount().call() == 0


async def test_verify_code_names_the_wrong_address(chain: EmbeddedChain) -> None:
    addresses = chain.addresses
    await verify_code(chain.async_w3, addresses)
    swapped = ContractAddresses(twin_keys=addresses.opg, opg=addresses.opg, node_registry=addresses.node_registry)
    with pytest.raises(ChainError, match=r"TWIN_TWIN_KEYS_ADDRESS: 0x\w+ holds a different contract"):
        await verify_code(chain.async_w3, swapped)
    empty = ContractAddresses(twin_keys=addresses.twin_keys, opg=chain.accounts[5].address,
                              node_registry=addresses.node_registry)
    with pytest.raises(ChainError, match=r"TWIN_OPG_ADDRESS: 0x\w+ holds no contract"):
        await verify_code(chain.async_w3, empty)


async def test_connect_chain_starts_the_embedded_chain_by_default() -> None:
    client = await connect_chain(Settings(chain_rpc_url=None, chain_dev_accounts=3))
    assert client.is_embedded
    assert len(client.dev_accounts) == 3
    assert await client.twin_keys.functions.owner().call() == client.dev_accounts[0].address
    await client.close()


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
    fields = {"chain_rpc_url": "http://127.0.0.1:9", "twin_keys_address": "0x" + "11" * 20,
              "opg_address": "0x" + "22" * 20, "node_registry_address": "0x" + "33" * 20, **overrides}
    with pytest.raises(ChainError) as failure:
        await connect_chain(Settings(**fields))
    assert str(failure.value).startswith(message)
    assert "\n" not in str(failure.value)


@pytest.fixture
def rpc_url(chain: EmbeddedChain) -> Iterator[str]:
    """The embedded chain behind a minimal HTTP JSON-RPC server, like any remote node."""
    manager = chain.w3.manager  # its middleware turns JSON-RPC hex values into what eth-tester takes

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            try:
                response: dict[str, Any] = {"result": manager.request_blocking(request["method"], request["params"])}
            except Exception as error:  # noqa: BLE001 - every failure is a JSON-RPC error, as on a node
                response = {"error": {"code": -32000, "message": str(error)}}
            body = json.dumps({**response, "id": request["id"], "jsonrpc": "2.0"}, cls=Web3JsonEncoder).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


async def test_deploy_command_then_connect_over_rpc(
    rpc_url: str, chain: EmbeddedChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployer = chain.accounts[4]
    monkeypatch.setenv("DEPLOYER_KEY", deployer.key.hex())
    result = CliRunner().invoke(cli, ["contracts", "deploy", "--rpc-url", rpc_url, "--private-key-env", "DEPLOYER_KEY"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split("=", 1) for line in result.stdout.strip().splitlines())
    assert set(lines) == {"TWIN_TWIN_KEYS_ADDRESS", "TWIN_OPG_ADDRESS", "TWIN_NODE_REGISTRY_ADDRESS"}
    assert lines["TWIN_TWIN_KEYS_ADDRESS"] != chain.addresses.twin_keys

    settings = Settings(chain_rpc_url=rpc_url, **{name.removeprefix("TWIN_").lower(): value
                                                  for name, value in lines.items()})
    client = await connect_chain(settings)
    try:
        assert not client.is_embedded
        assert client.dev_accounts == []
        assert client.tester is None
        assert await client.twin_keys.functions.owner().call() == deployer.address
        assert await client.opg.functions.owner().call() == deployer.address
    finally:
        await client.close()


def test_deploy_command_needs_the_key_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    result = CliRunner().invoke(cli, ["contracts", "deploy", "--rpc-url", "http://127.0.0.1:9",
                                      "--private-key-env", "NO_SUCH_KEY"])
    assert result.exit_code == 2
    assert "NO_SUCH_KEY is not set" in result.output
