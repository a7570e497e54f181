"""The backend on a remote JSON-RPC chain: a running `twin serve` exposes its embedded chain at
`/rpc`; a second backend connects to it as to any node, verifies the contracts' code, and
indexes trades sent as raw signed transactions."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from litestar.testing import AsyncTestClient

from app.avatars.service import avatar_id_for
from app.chain.client import connect_chain
from app.chain.embedded import dev_accounts
from app.config import Settings
from app.main import create_app
from app.proxy.config import ProxySettings
from tests.helpers import FAR_DEADLINE, TWIN, env_without_twin_settings
from tests.test_serve import free_port

EMBEDDED = Settings()


@pytest.fixture(scope="module")
def remote_rpc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    database = tmp_path_factory.mktemp("remote") / "twin.db"
    server = subprocess.Popen(
        [str(TWIN), "serve", "--port", str(port)],
        env=env_without_twin_settings() | {"TWIN_DATABASE_URL": f"sqlite:///{database}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        yield f"{base}/rpc"
    finally:
        server.terminate()
        server.wait(timeout=15)


def send_raw(rpc_url: str, account: LocalAccount, to: str, data: str, value: int = 0) -> dict:
    def call(method: str, *params: object) -> object:
        answer = httpx.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).json()
        assert "error" not in answer, answer
        return answer["result"]

    base_fee = int(call("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
    signed = account.sign_transaction(
        {
            "to": to,
            "data": data,
            "value": value,
            "gas": 500_000,
            "chainId": int(call("eth_chainId"), 16),
            "nonce": int(call("eth_getTransactionCount", account.address, "pending"), 16),
            "maxPriorityFeePerGas": 10**9,
            "maxFeePerGas": 2 * base_fee + 10**9,
        }
    )
    tx_hash = call("eth_sendRawTransaction", "0x" + signed.raw_transaction.hex())
    return call("eth_getTransactionReceipt", tx_hash)


async def test_backend_indexes_a_remote_chain_over_json_rpc(remote_rpc: str, database_url: str) -> None:
    embedded_addresses = {
        "twin_keys_address": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "opg_address": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
        "node_registry_address": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
    }
    settings = Settings(
        database_url=database_url,
        auto_migrate=False,
        indexer_poll_s=0,
        database_pool_size=0,
        chain_rpc_url=remote_rpc,
        **embedded_addresses,
    )
    chain = await connect_chain(settings)  # checks each address holds the committed code
    assert not chain.is_embedded
    creator, fan = dev_accounts(EMBEDDED.chain_dev_mnemonic, 3)[1:3]
    avatar = bytes.fromhex(avatar_id_for(creator.address, 0x11)[2:])  # ids are bound to their creator
    keys = chain.twin_keys
    send_raw(
        remote_rpc,
        creator,
        keys.address,
        keys.encode_abi("createAvatar", args=[avatar, "ipfs://x", 1, 0, FAR_DEADLINE]),
    )
    total = await keys.functions.getBuyPriceAfterFee(avatar, 4).call()
    receipt = send_raw(
        remote_rpc, fan, keys.address, keys.encode_abi("buyKeys", args=[avatar, 4, total, FAR_DEADLINE]), value=total
    )
    assert receipt["status"] == "0x1"

    # On a chain without dev accounts the platform wallet that pays proxy nodes must be configured.
    proxy_settings = ProxySettings(platform_wallet_key=dev_accounts(EMBEDDED.chain_dev_mnemonic, 9)[8].key.hex())
    app = create_app(settings, chain=chain, proxy_settings=proxy_settings)
    try:
        async with AsyncTestClient(app=app) as client:
            await app.state.services.indexer.sync()
            holdings = (await client.get(f"/api/wallets/{fan.address}/holdings")).json()
            trades = (await client.get(f"/api/wallets/{fan.address}/trades")).json()["items"]
            assert (await client.get("/readyz")).json()["dependencies"]["chain"] == "ok"
    finally:
        await chain.close()

    assert holdings[0]["avatar_id"] == "0x" + avatar.hex()
    assert holdings[0]["balance"] == 4
    assert [(t["side"], t["amount"]) for t in trades] == [("buy", 4)]
    assert int(trades[0]["price"]) + int(trades[0]["protocol_fee"]) + int(trades[0]["creator_fee"]) == total
