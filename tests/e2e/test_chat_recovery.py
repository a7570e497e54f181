"""The chat recovers by itself: a server restart in the middle of a reply (the session gone with the
process) leaves the reply marked cut off, offers "Sign in again", and Send works again without a
manual reload; a fan who sold their last key can still read their own conversation."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from playwright.async_api import Page, Route, expect

from tests.e2e.conftest import People
from tests.e2e.flows import FAR_DEADLINE, RpcChain, Server, launch_avatar, remembered_dev_wallet, use_dev_wallet
from tests.helpers import TWIN, env_without_twin_settings, free_port, stop, wait_until_ready

RESTART_TIMEOUT_MS = 90_000
Screenshot = Callable[[Page, str], Awaitable[Path]]


@dataclass
class RestartableServer:
    """`twin serve` that a test can stop and start again on the same port, database and chain (read
    like :class:`Server` by the fixtures and helpers)."""

    base_url: str
    twin_keys_address: str
    env: dict[str, str]
    port: int
    process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(TWIN), "serve", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = wait_until_ready(self.base_url, self.process)
        assert ready is not None, "twin serve never answered"
        assert ready.status_code == 200, ready.text

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestartableServer]:
    database: Path = tmp_path_factory.mktemp("e2e-recovery") / "twin.db"
    port = free_port()
    # A slow model: a reply takes a few seconds, long enough to restart the server in its middle.
    env = env_without_twin_settings() | {
        "TWIN_DATABASE_URL": f"sqlite:///{database}",
        "TWIN_PROXY_OFFLINE_TOKENS_PER_SECOND": "4",
    }
    running = RestartableServer(base_url=f"http://127.0.0.1:{port}", twin_keys_address="", env=env, port=port)
    running.start()
    found = re.search(r'"twin_keys_address": "(0x[0-9a-fA-F]{40})"', httpx.get(running.base_url).text)
    assert found
    running.twin_keys_address = found.group(1)
    try:
        yield running
    finally:
        running.stop()


async def send(page: Page, text: str) -> None:
    await expect(page.get_by_role("button", name="Send")).to_be_enabled()
    await page.get_by_label("Message", exact=True).fill(text)
    await page.get_by_label("Message", exact=True).press("Enter")


async def test_a_restart_mid_reply_recovers_without_a_reload(
    people: People, server: RestartableServer, screenshot: Screenshot
) -> None:
    creator = await people.open("/create")
    await use_dev_wallet(creator, fund=True)
    avatar_id = await launch_avatar(creator, "lamarr")
    await creator.goto(f"/avatars/{avatar_id}/chat")
    await expect(creator.locator("#chat")).to_have_attribute("data-access", "creator")
    await send(creator, "Tell me about frequency hopping.")
    reply = creator.locator(".message.assistant:not(.greeting)").last
    await expect(reply).to_have_attribute("data-state", "streaming")
    await expect(reply.locator(".message-text")).not_to_be_empty()

    server.stop()
    server.start()

    await expect(reply).to_have_attribute("data-state", "incomplete", timeout=RESTART_TIMEOUT_MS)
    await expect(reply.locator(".badge")).to_have_text("Cut off")
    status = creator.locator("#chat-status")
    await expect(status).to_have_attribute("data-reason", "signed_out", timeout=RESTART_TIMEOUT_MS)
    await screenshot(creator, "chat-after-restart")
    await status.get_by_role("button", name="Sign in again").click()

    await expect(creator.get_by_label("Message", exact=True)).to_have_value("Tell me about frequency hopping.")
    await send(creator, "Are you back?")
    answer = creator.locator(".message.assistant:not(.greeting)").last
    await expect(answer).to_have_attribute("data-state", "verified", timeout=RESTART_TIMEOUT_MS)
    assert creator.url.endswith(f"/avatars/{avatar_id}/chat")  # never reloaded


async def test_after_selling_the_last_key_the_fan_still_reads_their_conversation(
    people: People, server: RestartableServer, launched_avatar: Callable[[str], Awaitable[str]]
) -> None:
    chain = RpcChain(Server(server.base_url, server.twin_keys_address))
    avatar_id = await launched_avatar("meitner")
    fan_account = Account.create()
    chain.fund(fan_account.address)
    chain.buy(fan_account, avatar_id, 1)
    chain.wait_until_indexed(avatar_id, fan_account.address, 1)
    fan = await people.open("/", init_script=remembered_dev_wallet(fan_account))
    await expect(fan.locator("#wallet")).to_have_attribute("data-state", "connected")
    await fan.goto(f"/avatars/{avatar_id}/chat")
    await send(fan, "What did you discover?")
    await expect(fan.locator(".message.assistant:not(.greeting)").last).to_have_attribute("data-state", "verified")

    sell = chain.twin_keys.functions.sellKeys(bytes.fromhex(avatar_id[2:]), 1, 0, FAR_DEADLINE).build_transaction(
        {"from": fan_account.address, "nonce": chain.w3.eth.get_transaction_count(fan_account.address)}
    )
    chain.w3.eth.wait_for_transaction_receipt(
        chain.w3.eth.send_raw_transaction(fan_account.sign_transaction(sell).raw_transaction)
    )
    chain.wait_until_indexed(avatar_id, fan_account.address, 0)
    await fan.reload()

    await expect(fan.locator("#chat")).to_have_attribute("data-access", "no_key")
    await expect(fan.locator("#no-key")).to_contain_text("Your earlier conversation stays readable below.")
    await expect(fan.locator(".message.user")).to_have_text(["What did you discover?"])
    await expect(fan.locator(".message.assistant:not(.greeting)")).to_have_attribute("data-state", "verified")
    await expect(fan.get_by_label("Message", exact=True)).to_have_count(0)


async def test_a_launch_that_failed_on_chain_is_finished_from_the_avatar_page(people: People) -> None:
    creator = await people.open("/create")
    await use_dev_wallet(creator, fund=True)
    await expect(creator.locator("#launch-cost")).to_contain_text(re.compile(r"costs .* ETH in all\."))

    async def refuse_sends(route: Route) -> None:
        if "eth_sendRawTransaction" in (route.request.post_data or ""):
            await route.abort("connectionfailed")
        else:
            await route.continue_()

    await creator.route("**/rpc", refuse_sends)
    await creator.get_by_label("Name", exact=True).fill("Franklin")
    await creator.get_by_label("Handle", exact=True).fill("franklin")
    await creator.get_by_label("Persona", exact=True).fill("You are Franklin, a crystallographer.")
    await creator.get_by_role("button", name="Launch", exact=True).click()
    status = creator.locator("#launch-status")
    await expect(status).to_have_attribute("data-state", "failed")
    await expect(status).to_contain_text("The network could not be reached; nothing was sent.")
    await expect(status).to_contain_text("It is saved, not on-chain yet")
    await creator.unroute("**/rpc")
    later = await creator.get_by_role("link", name="Finish launch later").get_attribute("href")

    # The dashboard offers to finish it too, on the same page.
    await creator.goto("/dashboard")
    await creator.get_by_role("link", name="Finish launch").click()
    assert creator.url.endswith(later or "-")
    await expect(creator.locator("#avatar")).to_have_attribute("data-listed", "false")
    await creator.get_by_role("button", name="Finish launch").click()

    await expect(creator.locator("#avatar")).to_have_attribute("data-listed", "true")
    await expect(creator.locator("[data-stat=supply]")).to_have_text("1")
