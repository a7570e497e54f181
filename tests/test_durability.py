"""Nothing lost: a real `twin serve` on the embedded default, with an avatar, trades and a chat,
stopped and started again, killed with SIGKILL mid-traffic, and its chain node killed with
SIGKILL: every avatar, key, fee, trade and chat message is as the chain (and the fan) left it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from websockets.sync.client import connect

from app.chain.artifacts import load_artifact
from app.chain.embedded import dev_accounts
from app.config import Settings
from tests.helpers import (
    FAR_DEADLINE,
    TWIN,
    env_without_twin_settings,
    free_port,
    index_differences,
    sign,
    siwe_message,
    stop,
    wait_until_ready,
)

ACCOUNTS = dev_accounts(Settings().chain_dev_mnemonic, 6)


@dataclass
class Served:
    """`twin serve` on files of its own (database, chain state), restartable on the same port."""

    tmp: Path
    port: int
    process: subprocess.Popen[str] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = env_without_twin_settings() | {
            "TWIN_DATABASE_URL": f"sqlite:///{self.tmp / 'twin.db'}",
            "TWIN_CHAIN_STATE_DIR": str(self.tmp / "chain"),
            "TWIN_CHAIN_STATE_INTERVAL_S": "1",
            "TWIN_INDEXER_POLL_S": "0.2",
        }
        log = (self.tmp / "server.log").open("a")
        self.process = subprocess.Popen(
            [str(TWIN), "serve", "--port", str(self.port)], env=env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
        ready = wait_until_ready(self.base, self.process)
        assert ready is not None, (self.tmp / "server.log").read_text()[-3000:]
        assert ready.status_code == 200, ready.text

    def node_pid(self) -> int:
        return int(json.loads((self.tmp / "chain" / "node.json").read_text())["pid"])

    def contract(self) -> Contract:
        w3 = Web3(Web3.HTTPProvider(f"{self.base}/rpc"))
        facts = httpx.get(f"{self.base}/api/chain").json()
        return w3.eth.contract(address=facts["contracts"]["twin_keys"], abi=load_artifact("TwinKeys").abi)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path, free_port())
    try:
        server.start()
        yield server
    finally:  # a server that never got ready is stopped too
        if server.process is not None:
            stop(server.process)
        with contextlib.suppress(OSError, ValueError):
            os.kill(server.node_pid(), signal.SIGKILL)  # a node a killed server left behind


def signed_in(base: str, account: LocalAccount) -> httpx.Client:
    http = httpx.Client(base_url=base, timeout=30)
    nonce = http.get("/api/auth/nonce").json()
    message = siwe_message(account, nonce=nonce["nonce"], chain_id=nonce["chain_id"], domain=nonce["domain"])
    response = http.post("/api/auth/verify", json={"message": message, "signature": sign(account, message)})
    assert response.status_code == 201, response.text
    return http


def transact(contract: Contract, account: LocalAccount, function: str, *args: object, value: int = 0) -> None:
    w3 = contract.w3
    # Fees against the node's next base fee (its gas price), not twice the latest block's: the server's
    # upkeep may raise the next base fee at any moment (hold_base_fee), e.g. right after a node restart.
    transaction = getattr(contract.functions, function)(*args).build_transaction(
        {
            "from": account.address,
            "value": value,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "maxPriorityFeePerGas": 0,
            "maxFeePerGas": 2 * w3.eth.gas_price,
        }
    )
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(transaction).raw_transaction)
    assert w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)["status"] == 1


def buy(contract: Contract, account: LocalAccount, avatar_id: str, amount: int) -> None:
    key = bytes.fromhex(avatar_id[2:])
    total = contract.functions.getBuyPriceAfterFee(key, amount).call()
    transact(contract, account, "buyKeys", key, amount, total, FAR_DEADLINE, value=total)


def launch(served: Served, creator: LocalAccount, handle: str) -> str:
    http = signed_in(served.base, creator)
    launched = http.post(
        "/api/avatars",
        json={"name": handle.title(), "handle": handle, "model": "twin-offline-demo", "persona": f"You are {handle}."},
    ).json()
    transact(
        served.contract(),
        creator,
        "createAvatar",
        bytes.fromhex(launched["id"][2:]),
        launched["metadata_uri"],
        1,
        0,
        FAR_DEADLINE,
    )
    return str(launched["id"])


def wait_until_indexed(served: Served, avatar_id: str, supply: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while httpx.get(f"{served.base}/api/avatars/{avatar_id}").json()["market"]["supply"] != supply:
        assert time.monotonic() < deadline, f"the index never reached supply {supply}"
        time.sleep(0.2)


def chat_once(served: Served, http: httpx.Client, avatar_id: str, text: str) -> dict:
    cookie = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
    with connect(
        f"ws://127.0.0.1:{served.port}/ws/avatars/{avatar_id}/chat",
        additional_headers={"Cookie": cookie},
        open_timeout=10,
    ) as ws:
        ws.send(json.dumps({"type": "message", "client_msg_id": text, "content": text}))
        while True:
            frame = json.loads(ws.recv(timeout=30))
            if frame["type"] in ("done", "error"):
                return frame


async def differences(served: Served, avatar_ids: list[str]) -> list[str]:
    async with httpx.AsyncClient(base_url=served.base, timeout=30) as api:
        return await index_differences(api, served.contract(), avatar_ids, ACCOUNTS)


def wait_until_agreeing(served: Served, avatar_ids: list[str], timeout_s: float = 30) -> list[str]:
    import asyncio

    deadline = time.monotonic() + timeout_s
    while problems := asyncio.run(differences(served, avatar_ids)):
        if time.monotonic() > deadline:
            return problems
        time.sleep(0.3)
    return []


def test_a_stop_and_start_keeps_avatars_keys_fees_trades_and_chats(served: Served) -> None:
    creator, fan = ACCOUNTS[1], ACCOUNTS[2]
    avatar_id = launch(served, creator, "durable")
    buy(served.contract(), fan, avatar_id, 3)
    wait_until_indexed(served, avatar_id, 4)
    fan_http = signed_in(served.base, fan)
    done = chat_once(served, fan_http, avatar_id, "Still there after a restart?")
    assert done["type"] == "done", done
    before = httpx.get(f"{served.base}/api/avatars/{avatar_id}").json()

    assert served.process is not None
    stop(served.process)
    served.start()

    after = httpx.get(f"{served.base}/api/avatars/{avatar_id}").json()
    assert after["listed"] is True
    assert after["market"] == before["market"]
    assert [row["id"] for row in httpx.get(f"{served.base}/api/avatars").json()["items"]] == [avatar_id]
    fan_http = signed_in(served.base, fan)
    thread = fan_http.get(f"/api/avatars/{avatar_id}/messages").json()["items"]
    assert [m["role"] for m in thread][-2:] == ["user", "assistant"] or [m["role"] for m in thread][:2] == [
        "assistant",
        "user",
    ]
    assert any(m["content"] == "Still there after a restart?" for m in thread)
    assert wait_until_agreeing(served, [avatar_id]) == []
    assert chat_once(served, fan_http, avatar_id, "And again?")["type"] == "done"


def test_sigkill_of_the_server_mid_traffic_loses_nothing(served: Served) -> None:
    avatar_id = launch(served, ACCOUNTS[1], "survivor")
    contract = served.contract()
    trading = threading.Event()

    def trade() -> None:
        while not trading.is_set():
            for fan in ACCOUNTS[2:5]:
                try:
                    buy(contract, fan, avatar_id, 1)
                except Exception:  # noqa: BLE001 - the server (its /rpc) is down for a moment
                    time.sleep(0.2)

    # Trades go straight to the node while the server is killed and comes back.
    node_port = json.loads((served.tmp / "chain" / "node.json").read_text())["port"]
    contract = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{node_port}")).eth.contract(
        address=contract.address, abi=contract.abi
    )
    trader = threading.Thread(target=trade)
    trader.start()
    try:
        time.sleep(2)
        assert served.process is not None
        served.process.kill()
        served.process.wait(timeout=10)
        time.sleep(1)
        served.start()
        time.sleep(2)
    finally:
        trading.set()
        trader.join(timeout=60)
    assert wait_until_agreeing(served, [avatar_id]) == []
    assert httpx.get(f"{served.base}/api/avatars/{avatar_id}").json()["market"]["trade_count"] > 3


def test_sigkill_of_the_chain_node_is_survived_and_the_index_follows_the_chain(served: Served) -> None:
    avatar_id = launch(served, ACCOUNTS[1], "phoenix")
    buy(served.contract(), ACCOUNTS[2], avatar_id, 2)
    wait_until_indexed(served, avatar_id, 3)
    time.sleep(1.5)  # the node has saved its state since
    pid = served.node_pid()
    os.kill(pid, signal.SIGKILL)

    deadline = time.monotonic() + 30
    while True:  # the server starts the node again from its saved state
        try:
            if served.node_pid() != pid and httpx.get(f"{served.base}/readyz", timeout=5).status_code == 200:
                break
        except (httpx.HTTPError, OSError, ValueError):
            pass
        assert time.monotonic() < deadline, (served.tmp / "server.log").read_text()[-3000:]
        time.sleep(0.3)

    buy(served.contract(), ACCOUNTS[3], avatar_id, 1)
    assert wait_until_agreeing(served, [avatar_id]) == []
    assert httpx.get(f"{served.base}/api/avatars/{avatar_id}").json()["market"]["supply"] == 4
