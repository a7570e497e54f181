"""The web UI in a real browser against `twin serve`: launching, buying at the quoted total, selling
(and the chat locking again), a slippage failure in words, and the pages with JavaScript off.
Each page is saved under test-artifacts/e2e/."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from eth_account import Account
from playwright.async_api import Page, Route, expect

from app.web.formatting import format_eth
from tests.e2e.conftest import People
from tests.e2e.flows import RpcChain, Server, launch_avatar, quoted, remembered_dev_wallet, use_dev_wallet

Screenshot = Callable[[Page, str], Awaitable[Path]]
Launch = Callable[[str], Awaitable[str]]


async def test_a_creator_launches_an_avatar_and_sees_it_in_the_marketplace(
    people: People, server: Server, screenshot: Screenshot
) -> None:
    creator = await people.open("/create")
    await expect(creator.get_by_role("button", name="Connect a wallet to launch")).to_be_disabled()
    creator_address = await use_dev_wallet(creator, fund=True)

    avatar_id = await launch_avatar(creator, "ada")
    await screenshot(creator, "create")

    await creator.get_by_role("link", name="Marketplace").click()
    row = creator.locator(f".rankings [data-avatar-id='{avatar_id}']")
    await expect(row.get_by_role("link", name="Ada")).to_have_attribute("href", f"/avatars/{avatar_id}")
    await screenshot(creator, "marketplace")
    await row.get_by_role("link", name="Ada").click()
    await expect(creator.get_by_role("heading", level=1)).to_have_text("Ada @ada")
    await expect(creator.locator("#avatar")).to_have_attribute("data-creator", creator_address)
    assert RpcChain(server).keys_of(avatar_id, creator_address) == 1


async def test_a_fan_funds_the_dev_wallet_and_buys_a_key_at_the_quoted_total(
    people: People, server: Server, launched_avatar: Launch, screenshot: Screenshot
) -> None:
    chain = RpcChain(server)
    avatar_id = await launched_avatar("grace")

    fan = await people.open(f"/avatars/{avatar_id}")
    await expect(fan.locator("#chat-link")).to_have_attribute("aria-disabled", "true")
    fan_address = await use_dev_wallet(fan, fund=True)
    price, protocol_fee, creator_fee, total = [
        await quoted(fan, field) for field in ("price", "protocol_fee", "creator_fee", "total")
    ]
    assert price > 0
    assert total == price + protocol_fee + creator_fee
    balance_before = chain.eth_balance(fan_address)

    await fan.get_by_role("button", name="Buy", exact=True).click()
    status = fan.locator("#trade-status")
    await expect(status).to_have_attribute("data-state", "confirmed")
    await expect(status).to_contain_text("You hold 1 key.")
    await expect(fan.locator("#chat-link")).to_have_attribute("href", f"/avatars/{avatar_id}/chat")
    await expect(fan.locator("#chat-link")).to_have_attribute("aria-disabled", "false")
    await expect(fan.locator("[data-stat=supply]")).to_have_text("2")
    await screenshot(fan, "avatar-after-buy")

    tx_hash = await status.get_attribute("data-tx-hash")
    assert tx_hash
    assert balance_before - chain.eth_balance(fan_address) == total + chain.gas_paid(tx_hash)
    assert chain.keys_of(avatar_id, fan_address) == 1
    assert chain.indexed_keys(avatar_id, fan_address) == 1


async def test_a_fan_sells_the_key_and_the_chat_locks(
    people: People, server: Server, launched_avatar: Launch, screenshot: Screenshot
) -> None:
    chain = RpcChain(server)
    avatar_id = await launched_avatar("hedy")
    fan_account = Account.create()
    chain.fund(fan_account.address)
    chain.buy(fan_account, avatar_id, 1)
    chain.wait_until_indexed(avatar_id, fan_account.address, 1)

    # The fan comes back to the browser whose dev wallet holds the key.
    fan = await people.open(f"/avatars/{avatar_id}", init_script=remembered_dev_wallet(fan_account))
    await expect(fan.locator("#wallet")).to_have_attribute("data-address", fan_account.address)
    await expect(fan.locator("#chat-link")).to_have_attribute("aria-disabled", "false")
    await fan.get_by_role("radio", name="Sell").check()
    await expect(fan.locator("#total-label")).to_have_text("You receive")
    proceeds = await quoted(fan, "total")
    balance_before = chain.eth_balance(fan_account.address)

    await fan.get_by_role("button", name="Sell", exact=True).click()
    status = fan.locator("#trade-status")
    await expect(status).to_have_attribute("data-state", "confirmed")
    await expect(status).to_contain_text("You hold 0 keys.")
    await expect(fan.locator("#chat-link")).to_have_attribute("aria-disabled", "true")
    await expect(fan.locator("#chat-link")).not_to_have_attribute("href", re.compile(".*"))
    await screenshot(fan, "avatar-after-sell")

    tx_hash = await status.get_attribute("data-tx-hash")
    assert tx_hash
    assert chain.eth_balance(fan_account.address) - balance_before == proceeds - chain.gas_paid(tx_hash)
    assert chain.keys_of(avatar_id, fan_account.address) == 0
    assert chain.indexed_keys(avatar_id, fan_account.address) == 0


async def test_a_price_move_past_the_slippage_tolerance_fails_with_a_readable_error(
    people: People, server: Server, launched_avatar: Launch, screenshot: Screenshot
) -> None:
    chain = RpcChain(server)
    avatar_id = await launched_avatar("linus")
    fan = await people.open(f"/avatars/{avatar_id}")
    fan_address = await use_dev_wallet(fan, fund=True)
    await fan.get_by_label("Slippage tolerance (%)").fill("0")
    await expect(fan.locator("[data-quote=bound]")).to_have_attribute("data-wei", str(await quoted(fan, "total")))

    # Someone else buys between the quote and the fan's click: the price on screen is gone.
    someone = Account.create()
    chain.fund(someone.address)
    chain.buy(someone, avatar_id, 3)
    await fan.get_by_role("button", name="Buy", exact=True).click()

    status = fan.locator("#trade-status")
    await expect(status).to_have_attribute("data-state", "failed")
    await expect(status).to_have_attribute("data-reason", "slippage")
    await expect(status).to_contain_text("Slippage exceeded")
    await expect(status).to_contain_text("Get a new quote or allow more slippage.")
    await screenshot(fan, "avatar-slippage-failure")
    assert chain.keys_of(avatar_id, fan_address) == 0


async def test_a_quote_whose_deadline_passed_fails_with_a_readable_error(
    people: People, server: Server, launched_avatar: Launch
) -> None:
    avatar_id = await launched_avatar("edsger")
    fan = await people.open(f"/avatars/{avatar_id}")
    fan_address = await use_dev_wallet(fan, fund=True)

    async def quoted_an_hour_ago(route: Route) -> None:
        response = await route.fetch()
        quote = await response.json()
        await route.fulfill(response=response, json=quote | {"deadline": quote["deadline"] - 3600})

    await fan.route("**/api/avatars/*/quote?*", quoted_an_hour_ago)
    await fan.reload()
    await fan.get_by_role("button", name="Buy", exact=True).click()

    status = fan.locator("#trade-status")
    await expect(status).to_have_attribute("data-reason", "deadline")
    await expect(status).to_have_text(
        "The quote's deadline passed before the transaction ran. Get a new quote and send again."
    )
    assert RpcChain(server).keys_of(avatar_id, fan_address) == 0


async def test_pages_are_readable_with_javascript_off_and_trading_says_why_it_is_disabled(
    people: People, launched_avatar: Launch, screenshot: Screenshot
) -> None:
    await launched_avatar("alan")

    reader = await people.open("/?sort=newest", javascript=False)
    # (Emulated "JavaScript off" still parses <noscript> as if scripts ran: the notices checked are the
    # server-rendered ones that the scripts remove.)
    await expect(reader.locator("#wallet")).to_have_text("The wallet needs JavaScript.")
    await reader.locator(".rankings").get_by_role("link", name="Alan").click()
    await expect(reader.get_by_role("heading", level=1)).to_have_text("Alan @alan")
    await expect(reader.get_by_text("Alan explains things slowly.")).to_be_visible()
    await expect(reader.get_by_text("Trading needs JavaScript and a wallet.")).to_be_visible()
    await expect(reader.get_by_role("button", name="Buy", exact=True)).to_be_disabled()
    await expect(reader.locator("[data-stat=supply]")).to_have_text("1")
    await screenshot(reader, "avatar-without-javascript")

    unknown_id = f"0x{'0' * 31}1"
    missing = await reader.goto(f"/avatars/{unknown_id}")
    assert missing is not None
    assert missing.status == 404
    await expect(reader.get_by_role("heading", level=1)).to_have_text("Not found")
    await expect(reader.locator(".error-detail")).to_have_text(f"no avatar with id {unknown_id}")


# A stand-in for a browser wallet extension (EIP-1193) whose network is Ethereum mainnet.
WALLET_ON_ANOTHER_CHAIN = """
window.switchRequests = [];
window.ethereum = {
  on() {},
  async request({ method, params }) {
    if (method === "wallet_switchEthereumChain") { window.switchRequests.push(params[0].chainId); return null; }
    return { eth_chainId: "0x1", net_version: "1",
             eth_accounts: ["0x00000000000000000000000000000000000000aa"],
             eth_requestAccounts: ["0x00000000000000000000000000000000000000aa"] }[method];
  },
};
"""


async def test_a_browser_wallet_on_another_chain_is_asked_to_switch(people: People, server: Server) -> None:
    page = await people.open("/", init_script=WALLET_ON_ANOTHER_CHAIN)
    chain_id = RpcChain(server).w3.eth.chain_id

    await page.get_by_role("button", name="Connect wallet").click()
    wallet = page.locator("#wallet")
    await expect(wallet).to_have_attribute("data-state", "wrong_chain")
    await expect(wallet).to_contain_text(f"Wrong network: Twin market runs on chain {chain_id}.")
    await page.get_by_role("button", name="Switch network").click()

    await page.wait_for_function("window.switchRequests.length > 0")
    assert await page.evaluate("window.switchRequests") == [hex(chain_id)]


async def test_the_browser_writes_amounts_as_the_server_does(people: People) -> None:
    amounts = [
        0,
        1,
        625_000_000_000,
        999_999_999_999_999_999,
        10**18,
        1_234_567_890_123_456_789,
        10**24 + 5,
        -3 * 10**15,
    ]
    page = await people.open("/")

    written = await page.evaluate(
        "async (amounts) => { const { formatEth } = await import('/static/js/format.js');"
        " return amounts.map((amount) => formatEth(amount)); }",
        [str(amount) for amount in amounts],
    )

    assert written == [format_eth(amount) for amount in amounts]
