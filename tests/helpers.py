"""What many tests do: sign in as a wallet, send signed transactions, index, create avatars."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import siwe
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from litestar import Litestar
from litestar.testing import AsyncTestClient
from web3.contract import Contract
from web3.types import TxReceipt

from app.chain.client import Chain
from app.chain.deploy import send_transaction
from app.market import curve

TWIN = Path(sys.executable).with_name("twin")
FAR_DEADLINE = 2**63
# Where served processes keep their nodes: a node a killed process left running is stopped at the end.
CHAIN_STATE_DIRS: list[Path] = []
MAX_COST = 2**255


def env_without_twin_settings() -> dict[str, str]:
    """This environment without TWIN_* settings, but for an embedded chain of its own in a fresh
    directory (never the checkout's var/chain); pass TWIN_CHAIN_STATE_DIR to choose one. The demo
    world is off: tests start from an empty world unless they turn it on."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TWIN_")}
    state_dir = tempfile.mkdtemp(prefix="twin-test-chain-")
    CHAIN_STATE_DIRS.append(Path(state_dir))
    return env | {
        "TWIN_CHAIN_STATE_DIR": state_dir,
        "TWIN_CHAT_JOURNAL_DIR": f"{state_dir}/journal",
        "TWIN_DEMO_WORLD": "false",
    }


def run_twin(env: dict[str, str], *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the `twin` command with only the given TWIN_* settings."""
    return subprocess.run(
        [str(TWIN), *args],
        env=env_without_twin_settings() | env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_ready(base_url: str, server: subprocess.Popen[str], timeout_s: float = 60) -> httpx.Response | None:
    """Poll a starting server's /readyz until it answers 200, the process ends or time runs out; the last answer."""
    deadline = time.monotonic() + timeout_s
    ready = None
    while time.monotonic() < deadline and server.poll() is None:
        try:
            ready = httpx.get(f"{base_url}/readyz", timeout=2)
            if ready.status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    return ready


def stop(process: subprocess.Popen[str], timeout_s: float = 15) -> None:
    """Ask a server to stop (SIGTERM); kill it if it has not ended in time."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()


def siwe_message(
    account: LocalAccount,
    *,
    nonce: str,
    domain: str = "testserver.local",
    chain_id: int,
    expires_in: timedelta | None = timedelta(minutes=5),
    **overrides: Any,
) -> str:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "domain": domain,
        "address": account.address,
        "uri": f"http://{domain}",
        "version": "1",
        "chain_id": chain_id,
        "nonce": nonce,
        "issued_at": now.isoformat().replace("+00:00", "Z"),
        "statement": "Sign in to Twin market",
    }
    if expires_in is not None:
        fields["expiration_time"] = (now + expires_in).isoformat().replace("+00:00", "Z")
    return siwe.SiweMessage(**(fields | overrides)).prepare_message()


def sign(account: LocalAccount, message: str) -> str:
    return "0x" + Account.sign_message(encode_defunct(text=message), account.key).signature.hex()


async def sign_in(client: AsyncTestClient[Litestar], account: LocalAccount) -> None:
    """Become ``account`` on this client: a fresh session from a fresh nonce."""
    client.cookies.clear()
    nonce = (await client.get("/api/auth/nonce")).json()
    message = siwe_message(account, nonce=nonce["nonce"], chain_id=nonce["chain_id"], domain=nonce["domain"])
    response = await client.post("/api/auth/verify", json={"message": message, "signature": sign(account, message)})
    assert response.status_code == 201, response.text


def sync_twin_keys(chain: Chain) -> Contract:
    """TwinKeys on the session's node through a blocking Web3, as tests outside the event loop want it."""
    return chain.embedded.w3.eth.contract(address=chain.addresses.twin_keys, abi=chain.twin_keys.abi)


def transact(chain: Chain, account: LocalAccount, function_name: str, *args: Any, value: int = 0) -> TxReceipt:
    """Call a TwinKeys function from ``account`` with a locally signed transaction."""
    contract = sync_twin_keys(chain)
    data = contract.encode_abi(function_name, args=list(args))
    return send_transaction(contract.w3, account, {"to": chain.addresses.twin_keys, "data": data, "value": value})


def avatar_bytes(avatar_id: str) -> bytes:
    return bytes.fromhex(avatar_id[2:])


def buy_total(chain: Chain, avatar_id: str, amount: int) -> int:
    return sync_twin_keys(chain).functions.getBuyPriceAfterFee(avatar_bytes(avatar_id), amount).call()


def buy(chain: Chain, account: LocalAccount, avatar_id: str, amount: int) -> TxReceipt:
    total = buy_total(chain, avatar_id, amount)
    return transact(chain, account, "buyKeys", avatar_bytes(avatar_id), amount, total, FAR_DEADLINE, value=total)


def sell(chain: Chain, account: LocalAccount, avatar_id: str, amount: int) -> TxReceipt:
    return transact(chain, account, "sellKeys", avatar_bytes(avatar_id), amount, 0, FAR_DEADLINE)


def view(chain: Chain, function_name: str, *args: Any) -> Any:
    return getattr(sync_twin_keys(chain).functions, function_name)(*args).call()


async def launch(
    client: AsyncTestClient[Litestar], chain: Chain, creator: LocalAccount, handle: str, first_keys: int = 1
) -> str:
    """Launch an avatar through the API and create it on-chain from the creator's wallet; return its id."""
    await sign_in(client, creator)
    response = await client.post(
        "/api/avatars",
        json={
            "name": handle.title(),
            "handle": handle,
            "persona": f"You are {handle}, terse and kind.",
            "model": "twin-offline-demo",
            "bio": f"{handle}'s twin",
        },
    )
    assert response.status_code == 201, response.text
    launched = response.json()
    avatar_id = launched["id"]
    # The first key is free; more cost what the curve says at supply 0.
    total = 0 if first_keys == 1 else _first_buy_total(chain, first_keys)
    transact(
        chain,
        creator,
        "createAvatar",
        avatar_bytes(avatar_id),
        launched["metadata_uri"],
        first_keys,
        total,
        FAR_DEADLINE,
        value=total,
    )
    return avatar_id


def _first_buy_total(chain: Chain, amount: int) -> int:
    price = view(chain, "getPrice", 0, amount)
    protocol_fee, creator_fee = curve.fees(price, view(chain, "protocolFeePercent"), view(chain, "creatorFeePercent"))
    return price + protocol_fee + creator_fee


async def index(app: Litestar) -> int:
    return await app.state.services.indexer.sync()


async def index_differences(
    client: AsyncTestClient[Litestar] | httpx.AsyncClient,
    contract: Contract,
    avatar_ids: list[str],
    wallets: list[LocalAccount],
) -> list[str]:
    """Where the index (as the API shows it) differs from the chain (TwinKeys as ``contract`` reads it):
    supply, each wallet's balance, creator fees, and the trades (none missing, none twice)."""
    on_chain_trades = contract.events.Trade().get_logs(from_block=0)
    problems = []
    for avatar_id in avatar_ids:
        key = avatar_bytes(avatar_id)
        market = (await client.get(f"/api/avatars/{avatar_id}")).json()["market"]
        if market["supply"] != contract.functions.keysSupply(key).call():
            problems.append(f"{avatar_id} supply {market['supply']} != {contract.functions.keysSupply(key).call()}")
        if int(market["creator_fees_earned"]) != contract.functions.creatorFees(key).call():
            problems.append(f"{avatar_id} creator fees {market['creator_fees_earned']}")
        holder_rows = await all_pages(client, f"/api/avatars/{avatar_id}/holders")
        holders = {row["holder"]: row["balance"] for row in holder_rows}
        for wallet in wallets:
            expected = contract.functions.keysBalance(key, wallet.address).call()
            if holders.get(wallet.address, 0) != expected:
                problems.append(f"{avatar_id} {wallet.address} holds {expected}, index {holders.get(wallet.address)}")
        indexed = await all_pages(client, f"/api/avatars/{avatar_id}/trades")
        expected_hashes = sorted(
            "0x" + bytes(log["transactionHash"]).hex()
            for log in on_chain_trades
            if "0x" + bytes(log["args"]["id"]).hex() == avatar_id
        )
        if sorted(trade["tx_hash"] for trade in indexed) != expected_hashes:
            problems.append(f"{avatar_id} trades {len(indexed)} indexed, {len(expected_hashes)} on-chain")
    return problems


async def all_pages(client: AsyncTestClient[Litestar] | httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = (await client.get(path, params={"limit": 100, **({"cursor": cursor} if cursor else {})})).json()
        items += page["items"]
        if not (cursor := page["next_cursor"]):
            return items


def forget_cached_loggers(*loggers: Any) -> None:
    """Litestar's structlog config caches a logger on first use with the processors of that moment, and each app
    a test builds configures new ones: these module loggers look theirs up again, so that a capture sees them."""
    for logger in loggers:
        vars(logger).pop("bind", None)
