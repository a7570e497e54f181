"""The embedded chain's faucet and JSON-RPC endpoint, used by the browser's dev wallet."""

from __future__ import annotations

import pytest
from eth_account import Account
from litestar import Litestar
from litestar.testing import AsyncTestClient
from web3 import Web3

from app.chain.client import Chain
from app.chain.jsonrpc import MAX_LOG_BLOCKS


async def rpc(client: AsyncTestClient[Litestar], method: str, *params: object) -> dict:
    response = await client.post("/rpc", json={"jsonrpc": "2.0", "id": 7, "method": method, "params": list(params)})
    assert response.status_code == 200
    return response.json()


async def test_faucet_funds_a_fresh_wallet_that_then_transacts_over_rpc(
    client: AsyncTestClient[Litestar], chain: Chain
) -> None:
    wallet = Account.create()
    funded = await client.post("/api/dev/faucet", json={"address": wallet.address})
    assert funded.status_code == 200
    assert int(funded.json()["eth_balance"]) == 100 * 10**18
    assert int(funded.json()["opg_balance"]) == 10_000 * 10**18

    chain_id = int((await rpc(client, "eth_chainId"))["result"], 16)
    assert chain_id == chain.chain_id
    nonce = int((await rpc(client, "eth_getTransactionCount", wallet.address, "pending"))["result"], 16)
    block = (await rpc(client, "eth_getBlockByNumber", "latest", False))["result"]
    assert len(block["logsBloom"]) == 2 + 512
    recipient = Account.create().address
    signed = wallet.sign_transaction(
        {
            "to": recipient,
            "value": 12345,
            "gas": 21_000,
            "nonce": nonce,
            "chainId": chain_id,
            "maxPriorityFeePerGas": 10**9,
            "maxFeePerGas": 2 * int(block["baseFeePerGas"], 16) + 10**9,
        }
    )
    sent = await rpc(client, "eth_sendRawTransaction", "0x" + signed.raw_transaction.hex())
    receipt = (await rpc(client, "eth_getTransactionReceipt", sent["result"]))["result"]

    assert receipt["status"] == "0x1"
    assert (await rpc(client, "eth_getBalance", recipient, "latest"))["result"] == hex(12345)


@pytest.mark.parametrize("method", ["eth_call", "eth_estimateGas"])  # wallets estimate before they send
async def test_rpc_reports_reverts_with_their_data(
    client: AsyncTestClient[Litestar], chain: Chain, method: str
) -> None:
    # sellKeys on an avatar that does not exist reverts with AvatarNotFound(id)
    data = chain.twin_keys.encode_abi("sellKeys", args=[b"\x01" * 16, 1, 0, 2**63])
    answer = await rpc(client, method, {"to": chain.addresses.twin_keys, "data": data}, "latest")

    assert answer["error"]["code"] == 3
    selector = Web3.keccak(text="AvatarNotFound(bytes16)")[:4].hex()
    assert answer["error"]["data"].startswith("0x" + selector)


async def test_rpc_refuses_what_it_does_not_offer(client: AsyncTestClient[Litestar]) -> None:
    unsigned = await rpc(client, "eth_sendTransaction", {"to": "0x" + "00" * 20})
    assert unsigned["error"]["code"] == -32601
    assert (await rpc(client, "eth_accounts"))["result"] == []

    not_json = await client.post("/rpc", content=b"{oops", headers={"content-type": "application/json"})
    assert not_json.json()["error"]["code"] == -32700
    wrong_shape = await client.post("/rpc", json={"method": "eth_chainId"})
    assert wrong_shape.json()["error"]["code"] == -32600
    empty_batch = await client.post("/rpc", json=[])
    assert empty_batch.json()["error"]["code"] == -32600
    batch = await client.post(
        "/rpc",
        json=[{"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}, {"jsonrpc": "2.0", "id": 2, "method": "nope"}],
    )
    assert [("result" in item, "error" in item) for item in batch.json()] == [(True, False), (False, True)]


async def test_faucet_refuses_a_malformed_address(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post("/api/dev/faucet", json={"address": "0x123"})

    assert response.status_code == 400
    assert "address" in response.json()["detail"]


@pytest.mark.parametrize(
    "method",
    [
        "anvil_setBalance",
        "anvil_mine",
        "anvil_reorg",
        "anvil_impersonateAccount",
        "evm_snapshot",
        "evm_revert",
        "evm_setNextBlockTimestamp",
        "hardhat_setBalance",
        "debug_traceTransaction",
        "personal_sign",
        "personal_unlockAccount",
        "eth_sendTransaction",
        "eth_sign",
        "txpool_content",
        "admin_nodeInfo",
    ],
)
async def test_rpc_keeps_the_nodes_dev_and_admin_methods_from_the_public(
    client: AsyncTestClient[Litestar], chain: Chain, method: str
) -> None:
    head = chain.embedded.w3.eth.block_number
    answer = await rpc(client, method, chain.dev_accounts[1].address, "0x1")

    assert answer["error"]["code"] == -32601
    assert chain.embedded.w3.eth.block_number == head  # nothing happened on the node


async def test_rpc_bounds_log_queries(client: AsyncTestClient[Litestar], chain: Chain) -> None:
    everything = await rpc(client, "eth_getLogs", {"fromBlock": "earliest", "toBlock": hex(MAX_LOG_BLOCKS)})
    assert everything["error"]["code"] == -32005
    assert str(MAX_LOG_BLOCKS) in everything["error"]["message"]

    recent = await rpc(client, "eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest"})
    assert isinstance(recent["result"], list)
    bad = await rpc(client, "eth_getLogs", {"fromBlock": "yesterday"})
    assert bad["error"]["code"] == -32602


async def test_chain_facts_let_a_wallet_or_node_join(client: AsyncTestClient[Litestar], chain: Chain) -> None:
    facts = (await client.get("/api/chain")).json()

    assert facts["chain_id"] == chain.chain_id == 31337
    assert facts["embedded"] is True
    assert facts["rpc_url"].endswith("/rpc")
    assert facts["contracts"] == {
        "twin_keys": chain.addresses.twin_keys,
        "opg": chain.addresses.opg,
        "node_registry": chain.addresses.node_registry,
    }
    assert facts["deployment_block"] == chain.embedded.deployment.block > 0
    assert facts["state_lost"] is False


async def test_wallets_are_told_the_tip_recent_blocks_paid_not_anvils_fixed_gwei(
    client: AsyncTestClient[Litestar], chain: Chain
) -> None:
    tip = int((await rpc(client, "eth_maxPriorityFeePerGas"))["result"], 16)

    assert chain.embedded.call("eth_maxPriorityFeePerGas") == hex(10**9)  # what the node itself says
    assert tip < chain.embedded.node.options.base_fee_wei
