"""A fan's first visit to a fresh clone: `twin serve` on the embedded default with its demo world on.
The marketplace opens populated (pictures, 24 h change, trending, activity), moves live when someone
trades, and the demo chats answer in each persona's voice. Desktop (1366×900) and phone (390×844)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from playwright.async_api import Page, Route, expect

from app.catalog.movement import MARKET_CAP_MILESTONES
from app.chain.embedded import dev_accounts
from app.config import Settings
from app.demo.cast import CAST, holdings, main_holder
from app.market import curve
from tests.e2e.conftest import People, serve_logging_to
from tests.e2e.flows import RpcChain, Server, quoted, remembered_dev_wallet
from tests.helpers import env_without_twin_settings, free_port, stop, wait_until_ready

DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
DEMO_BUILT_S = 120
Screenshot = Callable[[Page, str], Awaitable[Path]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`twin serve` on a fresh embedded world with the demo world on, once it is built."""
    port = free_port()
    scratch = tmp_path_factory.mktemp("e2e-demo")
    env = env_without_twin_settings() | {
        "TWIN_DATABASE_URL": f"sqlite:///{scratch / 'twin.db'}",
        "TWIN_DEMO_WORLD": "true",
    }
    process = serve_logging_to(env, port, scratch / "twin.log")
    base_url = f"http://127.0.0.1:{port}"
    try:
        ready = wait_until_ready(base_url, process)
        assert ready is not None, "twin serve never answered"
        assert ready.status_code == 200, ready.text
        address = re.search(r'"twin_keys_address": "(0x[0-9a-fA-F]{40})"', httpx.get(base_url).text)
        assert address
        wait_for_demo_chats(base_url)
        yield Server(base_url=base_url, twin_keys_address=address.group(1))
    finally:
        stop(process)


def wait_for_demo_chats(base_url: str) -> None:
    """The world is built in the background; its last step is the chats (counted in the rankings)."""
    import time

    deadline = time.monotonic() + DEMO_BUILT_S
    while time.monotonic() < deadline:
        ranked = httpx.get(f"{base_url}/api/avatars", params={"limit": 50}).json()["items"]
        if len(ranked) == len(CAST) and sum(row["market"]["chats_24h"] for row in ranked) == sum(
            len(avatar.questions) for avatar in CAST
        ):
            return
        time.sleep(0.5)
    raise AssertionError("the demo world was not built in time")


async def api_json(page: Page, path: str) -> Any:
    response = await page.request.get(path)
    assert response.ok, await response.text()
    return await response.json()


async def open_at(people: People, path: str, viewport: dict[str, int]) -> Page:
    page = await people.open(path)
    await page.set_viewport_size(viewport)
    return page


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_a_first_visit_lands_on_a_populated_marketplace(
    people: People, viewport: dict[str, int], screenshot: Screenshot
) -> None:
    fan = await open_at(people, "/", viewport)

    await expect(fan.get_by_role("heading", level=1)).to_have_text("Own a key, talk to the twin")
    cards = fan.locator(".rankings .card")
    await expect(cards).to_have_count(len(CAST))
    for avatar in CAST:
        await expect(fan.locator(".rankings").get_by_role("link", name=avatar.name)).to_be_visible()
    # Every card has its drawn portrait, loaded from this server.
    portraits = fan.locator(".rankings .card img.portrait")
    await expect(portraits.first).to_have_attribute("src", re.compile(r"^/avatars/0x[0-9a-f]{32}/portrait\.svg$"))
    assert await portraits.evaluate_all("images => images.every(image => image.complete && image.naturalWidth > 0)")
    # The history spans days: some avatars moved in the last 24 h, and something trends.
    changes = await fan.locator(".rankings [data-stat=change]").all_inner_texts()
    assert any(re.search(r"[+-]\d+\.\d %", change) for change in changes), changes
    await expect(fan.locator(".trending .card").first).to_be_visible()
    await expect(fan.locator("#activity li[data-kind]")).to_have_count(12)
    # Nothing wider than the screen.
    assert await fan.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    await screenshot(fan, f"marketplace-demo-{viewport['width']}")


async def test_the_marketplace_moves_live_when_someone_trades(people: People, server: Server) -> None:
    chain = RpcChain(server)
    fan = await open_at(people, "/", DESKTOP)
    await expect(fan.locator("#activity-live")).to_have_attribute("data-state", "on")
    avatar = (await api_json(fan, "/api/avatars?sort=newest"))["items"][0]
    price = fan.locator(f".rankings [data-avatar-id='{avatar['id']}'] [data-stat=next_key_price]")
    before = await price.get_attribute("data-wei")

    trader = dev_accounts(Settings().chain_dev_mnemonic, 8)[7]
    chain.buy(trader, avatar["id"], 2)

    newest = fan.locator("#activity li[data-kind=buy]").first
    await expect(newest).to_contain_text(f"{avatar['name']}")
    await expect(newest).to_contain_text("bought 2 keys")
    await expect(price).not_to_have_attribute("data-wei", before or "")
    assert int(await price.get_attribute("data-wei") or 0) > int(before or 0)


async def test_a_share_link_by_handle_lands_on_the_avatar(people: People) -> None:
    fan = await open_at(people, f"/avatars/@{CAST[0].handle}", DESKTOP)

    await expect(fan.get_by_role("heading", level=1)).to_have_text(f"{CAST[0].name} @{CAST[0].handle}")
    assert re.search(r"/avatars/0x[0-9a-f]{32}$", fan.url)


# ---------------------------------------------------------------- a demo holder's chat, checked in the browser

AXE = Settings().node_modules_dir / "axe-core" / "axe.min.js"
CHEF = CAST[0]
# The dev account that chatted with the chef in the demo history, and the keys it holds.
CHEF_HOLDER = main_holder(CHEF)
CHEF_HOLDER_KEYS = holdings(CHEF.handle)[CHEF_HOLDER]


def dev_account(index: int) -> LocalAccount:
    return dev_accounts(Settings().chain_dev_mnemonic, index + 1)[index]


async def avatar_id_of(page: Page, handle: str) -> str:
    ranked = (await api_json(page, "/api/avatars?limit=50"))["items"]
    return next(row["id"] for row in ranked if row["handle"] == handle)


async def as_holder(people: People, path: str, viewport: dict[str, int] = DESKTOP) -> Page:
    fan = await people.open("/", init_script=remembered_dev_wallet(dev_account(CHEF_HOLDER)))
    await fan.set_viewport_size(viewport)
    await expect(fan.locator("#wallet")).to_have_attribute("data-state", "connected")
    await fan.goto(path.format(chef=await avatar_id_of(fan, CHEF.handle)))
    await expect(fan.locator("#wallet")).to_have_attribute("data-state", "connected")
    return fan


async def test_the_browser_checks_a_reply_itself_and_says_who_paid(people: People, screenshot: Screenshot) -> None:
    fan = await as_holder(people, "/avatars/{chef}/chat")
    await expect(fan.locator(".greeting")).to_contain_text(f"Hi, I'm {CHEF.name}.")
    await expect(fan.locator(".message.user").first).to_have_text(CHEF.questions[0])
    reply = fan.locator(".message.assistant[data-state=verified]").first
    await expect(reply).to_contain_text("never crowd the pan")  # the persona's own line, not an echo
    assert CHEF.questions[0] not in (await reply.inner_text())

    await reply.get_by_role("button", name="✓ Verified").click()
    verdict = fan.locator("#attestation-verdict")
    await expect(verdict).to_have_attribute("data-state", "confirmed")
    await expect(verdict).to_contain_text("your browser checked it again just now")
    await expect(verdict).to_contain_text(re.compile(r"registered on-chain since \d{4}-\d\d-\d\d"))
    await expect(verdict).to_contain_text(re.compile(r"The platform paid [\d.]+ OPG to the node"))
    await screenshot(fan, "chat-verified-in-browser")


async def test_the_browser_refuses_a_tampered_reply(people: People) -> None:
    fan = await as_holder(people, "/avatars/{chef}/chat")

    async def tamper(route: Route) -> None:
        response = await route.fetch()
        attestation = await response.json()
        attestation["output"] = attestation["output"].replace("never", "always")
        await route.fulfill(response=response, json=attestation)

    await fan.route(re.compile(r"/api/messages/\d+/attestation$"), tamper)
    await fan.locator(".message.assistant[data-state=verified]").first.get_by_role("button", name="✓ Verified").click()
    verdict = fan.locator("#attestation-verdict")
    await expect(verdict).to_have_attribute("data-state", "failed")
    await expect(verdict).to_contain_text("Do not trust this reply: the text shown is not the text the node signed")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_the_trade_panel_knows_the_holding_and_counts_the_network_fee(
    people: People, viewport: dict[str, int], screenshot: Screenshot
) -> None:
    fan = await as_holder(people, "/avatars/{chef}", viewport)
    await expect(fan.locator("#holding")).to_have_text(f"You hold {CHEF_HOLDER_KEYS} keys.")
    await expect(fan.locator("#quote[data-side=buy][data-amount='1']")).to_be_attached()
    total, network_fee, all_in = [await quoted(fan, field) for field in ("total", "network_fee", "all_in")]
    assert network_fee > 0
    assert all_in == total + network_fee

    await fan.get_by_role("radio", name="Sell").check()
    await fan.get_by_role("button", name="Max").click()
    await expect(fan.get_by_label("Keys", exact=True)).to_have_value(str(CHEF_HOLDER_KEYS))
    await expect(fan.locator(f"#quote[data-side=sell][data-amount='{CHEF_HOLDER_KEYS}']")).to_be_attached()
    total, network_fee, net = [await quoted(fan, field) for field in ("total", "network_fee", "all_in")]
    assert net == total - network_fee

    await fan.get_by_label("Keys", exact=True).fill(str(CHEF_HOLDER_KEYS + 3))
    await expect(fan.locator("#quote-problem")).to_have_text(
        f"You hold {CHEF_HOLDER_KEYS} keys: you can sell at most {CHEF_HOLDER_KEYS}."
    )
    await expect(fan.get_by_role("button", name="Sell", exact=True)).to_be_disabled()
    await screenshot(fan, f"trade-panel-{viewport['width']}")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_a_signed_out_visitor_s_trade_button_connects_the_wallet(
    people: People, viewport: dict[str, int]
) -> None:
    visitor = await open_at(people, "/", viewport)
    # The node is busy for the first balance read after signing in: once, this left the wallet disconnected.
    failed_reads: list[str] = []

    async def busy_once(route: Route) -> None:
        if "eth_getBalance" in (route.request.post_data or "") and not failed_reads:
            failed_reads.append(route.request.url)
            await route.fulfill(status=503, json={"error": "busy", "detail": "try again"})
        else:
            await route.fallback()

    await visitor.route(re.compile(r"/rpc$"), busy_once)
    await visitor.goto(f"/avatars/{await avatar_id_of(visitor, CHEF.handle)}")
    await visitor.get_by_role("button", name="Connect a wallet to trade").click()

    await expect(visitor.locator("#wallet")).to_have_attribute("data-state", "connected")
    await expect(visitor.get_by_role("button", name="Buy", exact=True)).to_be_enabled()
    assert len(failed_reads) == 1


# ---------------------------------------------------------------- figures that follow others' trades


def stranger_buys(server: Server, avatar_id: str, keys: int) -> LocalAccount:
    """A new wallet, funded by the faucet, buys ``keys`` keys of the avatar from outside the browser."""
    chain = RpcChain(server)
    stranger: LocalAccount = Account.create()
    chain.fund(stranger.address)
    chain.buy(stranger, avatar_id, keys)
    return stranger


async def fits_without_scrolling_sideways(page: Page) -> bool:
    """Neither the page nor any of its tables is wider than the screen (on phones, tables become cards)."""
    return bool(
        await page.evaluate(
            "document.documentElement.scrollWidth <= innerWidth && "
            "[...document.querySelectorAll('.table-scroll')].every((box) => box.scrollWidth <= box.clientWidth)"
        )
    )


async def wei_of(page: Page, selector: str) -> int:
    cell = page.locator(selector)
    await expect(cell).to_have_attribute("data-wei", re.compile(r"^-?\d+$"))
    return int(await cell.get_attribute("data-wei") or "")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_the_portfolio_counts_network_fees_and_follows_others_trades_live(
    people: People, server: Server, viewport: dict[str, int], screenshot: Screenshot
) -> None:
    fan = await as_holder(people, "/portfolio", viewport)
    chef = await avatar_id_of(fan, CHEF.handle)
    row = f"#holdings tr[data-avatar-id='{chef}']"
    value, spent, gas = [await wei_of(fan, f"[data-total={total}]") for total in ("value", "cost_basis", "gas")]
    assert gas > 0  # the demo history's trades paid gas, recorded by the indexer
    assert await wei_of(fan, "[data-total=pnl]") == value - spent - gas
    await expect(fan.locator(f"{row} [data-field=gas_paid]")).to_have_attribute("data-wei", re.compile(r"^[1-9]\d*$"))
    await expect(fan.locator("#trades [data-field=gas_paid]").first).to_contain_text("ETH")
    await expect(fan.locator("#live-status")).to_have_attribute("data-state", "on")
    before = await wei_of(fan, f"{row} [data-field=sell_value]")

    stranger_buys(server, chef, 2)

    sell_value = fan.locator(f"{row} [data-field=sell_value]")
    await expect(sell_value).not_to_have_attribute("data-wei", str(before))
    assert int(await sell_value.get_attribute("data-wei") or "") > before  # two more keys: each sells for more
    assert await fits_without_scrolling_sideways(fan)
    await screenshot(fan, f"portfolio-{viewport['width']}")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_the_creator_dashboard_follows_trades_live(
    people: People, server: Server, viewport: dict[str, int]
) -> None:
    creator = await people.open("/", init_script=remembered_dev_wallet(dev_account(CHEF.creator_account)))
    await creator.set_viewport_size(viewport)
    chef = await avatar_id_of(creator, CHEF.handle)
    await creator.goto(f"/dashboard?avatar={chef}")
    await expect(creator.locator("#wallet")).to_have_attribute("data-state", "connected")
    await expect(creator.locator("#live-status")).to_have_attribute("data-state", "on")
    supply = creator.locator("#shown-stats [data-stat=supply]")
    holders = creator.locator("#shown-stats [data-stat=holders]")
    keys_before, holders_before = int(await supply.inner_text()), int(await holders.inner_text())

    stranger_buys(server, chef, 1)

    await expect(supply).to_have_text(str(keys_before + 1))
    await expect(holders).to_have_text(str(holders_before + 1))
    assert await fits_without_scrolling_sideways(creator)
    await expect(creator.locator(f"#creator-avatars tr[data-avatar-id='{chef}'] td").nth(1)).to_have_text(
        str(keys_before + 1)
    )


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_the_activity_feed_announces_a_milestone_live(
    people: People, server: Server, viewport: dict[str, int]
) -> None:
    fan = await open_at(people, "/", viewport)
    await expect(fan.locator("#activity-live")).to_have_attribute("data-state", "on")
    avatar = (await api_json(fan, "/api/avatars?sort=newest"))["items"][-1]
    keys = RpcChain(server).twin_keys.functions
    supply = avatar["market"]["supply"]
    divisor = keys.curveDivisor().call()
    # A round figure the avatar's market cap never reached (it is announced only the first time).
    trades = (await api_json(fan, f"/api/avatars/{avatar['id']}/trades?limit=100"))["items"]
    peak = curve.market_cap(max(trade["supply_after"] for trade in trades), divisor)
    threshold = next(round_figure for round_figure in MARKET_CAP_MILESTONES if round_figure > peak)
    needed = next(more for more in range(1, 10_000) if curve.market_cap(supply + more, divisor) >= threshold)

    stranger_buys(server, avatar["id"], needed)

    milestone = fan.locator(f"#activity li[data-kind=milestone][data-key$='-market_cap-{threshold}']").first
    await expect(milestone).to_contain_text(avatar["name"])
    ether = Decimal(threshold) / 10**18
    await expect(milestone).to_contain_text(f"market cap passed {ether:,f} ETH")


async def test_on_a_phone_the_chat_input_stays_on_screen(people: People) -> None:
    fan = await as_holder(people, "/avatars/{chef}/chat", PHONE)
    await expect(fan.get_by_role("button", name="Send")).to_be_enabled()
    await fan.evaluate("window.scrollTo(0, 0)")
    box = await fan.locator("#chat-form").bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= PHONE["height"]


PAGES = ["/", "/avatars/{chef}", "/avatars/{chef}/chat", "/portfolio", "/dashboard", "/create", "/operations"]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_every_page_has_no_accessibility_violations_and_asks_no_other_host(
    people: People, viewport: dict[str, int]
) -> None:
    fan = await as_holder(people, "/", viewport)
    outside: list[str] = []
    console_errors: list[str] = []
    fan.on(
        "request",
        lambda request: (
            outside.append(request.url)
            if not request.url.startswith((people.server.base_url, "ws://127.0.0.1", "data:"))
            else None
        ),
    )
    fan.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    chef = await avatar_id_of(fan, CHEF.handle)
    for path in PAGES:
        await fan.goto(path.format(chef=chef))
        await expect(fan.locator("#wallet")).to_have_attribute("data-state", "connected")
        await fan.add_script_tag(path=str(AXE))
        results = await fan.evaluate("axe.run(document, {resultTypes: ['violations']})")
        violations = [(rule["id"], [node["target"] for node in rule["nodes"]][:3]) for rule in results["violations"]]
        assert violations == [], f"{path}: {violations}"
    assert outside == []
    assert console_errors == []
