"""A fan's first visit to a fresh clone: `twin serve` on the embedded default with its demo world on.
The marketplace opens populated (pictures, 24 h change, trending, activity), moves live when someone
trades, and the demo chats answer in each persona's voice. Desktop (1366×900) and phone (390×844)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from app.chain.embedded import dev_accounts
from app.config import Settings
from app.demo.cast import CAST
from tests.e2e.conftest import People
from tests.e2e.flows import RpcChain, Server
from tests.helpers import TWIN, env_without_twin_settings, free_port, stop, wait_until_ready

DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
DEMO_BUILT_S = 120


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`twin serve` on a fresh embedded world with the demo world on, once it is built."""
    port = free_port()
    database = tmp_path_factory.mktemp("e2e-demo") / "twin.db"
    env = env_without_twin_settings() | {"TWIN_DATABASE_URL": f"sqlite:///{database}", "TWIN_DEMO_WORLD": "true"}
    process = subprocess.Popen([str(TWIN), "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
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
        if len(ranked) == len(CAST) and sum(row["market"]["chats_24h"] for row in ranked) == \
                sum(len(avatar.questions) for avatar in CAST):
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
async def test_a_first_visit_lands_on_a_populated_marketplace(people: People, viewport: dict[str, int],
                                                              screenshot: Callable[[Page, str], Awaitable[Path]]
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

    newest = fan.locator("#activity li").first
    await expect(newest).to_contain_text(f"{avatar['name']}")
    await expect(newest).to_contain_text("bought 2 keys")
    await expect(price).not_to_have_attribute("data-wei", before or "")
    assert int(await price.get_attribute("data-wei") or 0) > int(before or 0)


async def test_a_share_link_by_handle_lands_on_the_avatar(people: People) -> None:
    fan = await open_at(people, f"/avatars/@{CAST[0].handle}", DESKTOP)

    await expect(fan.get_by_role("heading", level=1)).to_have_text(f"{CAST[0].name} @{CAST[0].handle}")
    assert re.search(r"/avatars/0x[0-9a-f]{32}$", fan.url)
