"""What people do in the browser, step by step, and what tests read from the chain over /rpc
(as any wallet would) and from the API."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from playwright.async_api import Page, expect
from web3 import Web3
from web3.types import TxReceipt

from app.chain.artifacts import load_artifact

# Where the dev wallet keeps itself (frontend/static/js/wallet.js).
DEV_KEY_STORAGE = "twin.devWallet.privateKey"
WALLET_KIND_STORAGE = "twin.wallet.kind"
FAR_DEADLINE = 2**40


@dataclass(frozen=True)
class Server:
    """A running `twin serve` on the embedded default."""

    base_url: str
    twin_keys_address: str


def remembered_dev_wallet(account: LocalAccount) -> str:
    """An init script that makes ``account`` the browser's dev wallet, as if it had been used before."""
    return (
        f"localStorage.setItem({json.dumps(DEV_KEY_STORAGE)}, {json.dumps('0x' + account.key.hex())});"
        f"localStorage.setItem({json.dumps(WALLET_KIND_STORAGE)}, 'dev');"
    )


async def use_dev_wallet(page: Page, *, fund: bool) -> str:
    """Connect the built-in dev wallet (and fund it from the faucet); its address."""
    await page.get_by_role("button", name="Use dev wallet").click()
    wallet = page.locator("#wallet[data-state=connected]")
    await expect(wallet).to_be_visible()
    if fund:
        await page.get_by_role("button", name="Fund").click()
        await expect(wallet.locator("[data-balance]")).to_have_attribute("data-balance", re.compile(r"^[1-9]\d*$"))
    address = await wallet.get_attribute("data-address")
    assert address
    return address


async def launch_avatar(page: Page, handle: str) -> str:
    """Fill in the launch form as a connected, funded creator and wait until it is listed; its id."""
    await page.goto("/create")
    await page.get_by_label("Name", exact=True).fill(handle.title())
    await page.get_by_label("Handle", exact=True).fill(handle)
    await page.get_by_label("Bio", exact=True).fill(f"{handle.title()} explains things slowly.")
    await page.get_by_label("Persona", exact=True).fill(f"You are {handle.title()}, patient and precise.")
    await page.get_by_role("button", name="Launch", exact=True).click()
    await expect(page.locator("#launch-status")).to_have_text(f"{handle.title()} is live in the marketplace.")
    href = await page.locator("#launch-result a").get_attribute("href")
    assert href
    return href.rsplit("/", 1)[1]


async def quoted(page: Page, field: str) -> int:
    """A wei amount of the quote on screen (price, protocol_fee, creator_fee, total, bound)."""
    cell = page.locator(f"[data-quote={field}]")
    await expect(cell).to_have_attribute("data-wei", re.compile(r"^\d+$"))
    return int(await cell.get_attribute("data-wei") or "")


class RpcChain:
    """The embedded chain seen through the server's /rpc, plus its faucet and holdings API."""

    def __init__(self, server: Server) -> None:
        self.base_url = server.base_url
        self.w3 = Web3(Web3.HTTPProvider(f"{server.base_url}/rpc"))
        self.twin_keys = self.w3.eth.contract(address=server.twin_keys_address, abi=load_artifact("TwinKeys").abi)

    def fund(self, address: str) -> None:
        httpx.post(f"{self.base_url}/api/dev/faucet", json={"address": address}).raise_for_status()

    def eth_balance(self, address: str) -> int:
        return self.w3.eth.get_balance(address)

    def keys_of(self, avatar_id: str, address: str) -> int:
        return self.twin_keys.functions.keysBalance(bytes.fromhex(avatar_id[2:]), address).call()

    def gas_paid(self, tx_hash: str) -> int:
        receipt = self.w3.eth.get_transaction_receipt(tx_hash)
        return receipt["gasUsed"] * receipt["effectiveGasPrice"]

    def buy(self, account: LocalAccount, avatar_id: str, amount: int) -> TxReceipt:
        """Buy at the current price from ``account``, a wallet other than the browser's."""
        avatar = bytes.fromhex(avatar_id[2:])
        total = self.twin_keys.functions.getBuyPriceAfterFee(avatar, amount).call()
        transaction = self.twin_keys.functions.buyKeys(avatar, amount, total, FAR_DEADLINE).build_transaction(
            {"from": account.address, "value": total, "nonce": self.w3.eth.get_transaction_count(account.address)}
        )
        tx_hash = self.w3.eth.send_raw_transaction(account.sign_transaction(transaction).raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        assert receipt["status"] == 1
        return receipt

    def new_holder(self, avatar_id: str, keys: int = 1) -> LocalAccount:
        """A funded wallet that bought ``keys`` of the avatar, once the index shows them."""
        account: LocalAccount = Account.create()
        self.fund(account.address)
        self.buy(account, avatar_id, keys)
        self.wait_until_indexed(avatar_id, account.address, keys)
        return account

    def indexed_keys(self, avatar_id: str, address: str) -> int:
        holdings: list[dict[str, Any]] = httpx.get(f"{self.base_url}/api/wallets/{address}/holdings").json()
        return next((row["balance"] for row in holdings if row["avatar_id"] == avatar_id), 0)

    def wait_until_indexed(self, avatar_id: str, address: str, keys: int, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while self.indexed_keys(avatar_id, address) != keys:
            assert time.monotonic() < deadline, f"the index never showed {keys} keys for {address}"
            time.sleep(0.3)
