"""Regenerate docs/screenshots: `twin serve` on a fresh embedded world with its demo world, each page
in Debian's Chromium at desktop (1366×900) and phone (390×844) sizes, as a fan and as a creator.

    .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.async_api import Browser, Page, async_playwright, expect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.chain.embedded import dev_accounts
from app.config import Settings
from app.demo.cast import CAST, main_holder
from app.resources import CHECKOUT_ROOT
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.flows import remembered_dev_wallet
from tests.helpers import TWIN, env_without_twin_settings, free_port, stop, wait_until_ready

OUT = CHECKOUT_ROOT / "docs" / "screenshots"
SIZES = {"": {"width": 1366, "height": 900}, "-phone": {"width": 390, "height": 844}}
DEMO_BUILT_S = 180


def wait_for_demo(base_url: str) -> list[dict[str, object]]:
    deadline = time.monotonic() + DEMO_BUILT_S
    questions = sum(len(avatar.questions) for avatar in CAST)
    while time.monotonic() < deadline:
        ranked = httpx.get(f"{base_url}/api/avatars", params={"limit": 50}).json()["items"]
        if len(ranked) == len(CAST) and sum(row["market"]["chats_24h"] for row in ranked) == questions:
            return ranked
        time.sleep(0.5)
    raise SystemExit("the demo world was not built in time")


async def shoot(
    browser: Browser, base_url: str, path: str, name: str, *, account_index: int | None = None, then: str | None = None
) -> None:
    accounts = dev_accounts(Settings().chain_dev_mnemonic, 10)
    for suffix, viewport in SIZES.items():
        context = await browser.new_context(base_url=base_url, viewport=viewport)
        if account_index is not None:
            await context.add_init_script(remembered_dev_wallet(accounts[account_index]))
        page: Page = await context.new_page()
        await page.goto(path)
        if account_index is not None:
            await expect(page.locator("#wallet")).to_have_attribute("data-state", "connected", timeout=30_000)
        if then:
            await page.locator(then).first.click()
        await page.wait_for_timeout(800)  # charts and live figures settle
        await page.screenshot(path=str(OUT / f"{name}{suffix}.png"), full_page=suffix == "")
        await context.close()


async def shoot_all(base_url: str, ranked: dict[str, str]) -> None:
    chef = ranked[CAST[0].handle]
    holder = main_holder(CAST[0])
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        await shoot(browser, base_url, "/", "marketplace")
        await shoot(browser, base_url, f"/avatars/{chef}", "avatar", account_index=holder)
        await shoot(browser, base_url, f"/avatars/{chef}/chat", "chat", account_index=holder)
        await shoot(
            browser,
            base_url,
            f"/avatars/{chef}/chat",
            "chat-attestation",
            account_index=holder,
            then=".message.assistant button.badge",
        )
        await shoot(browser, base_url, "/portfolio", "portfolio", account_index=holder)
        await shoot(browser, base_url, "/dashboard", "dashboard", account_index=CAST[0].creator_account)
        await shoot(browser, base_url, "/operations", "operations")
        await browser.close()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="twin-screenshots-") as scratch:
        env = env_without_twin_settings() | {
            "TWIN_DATABASE_URL": f"sqlite:///{scratch}/twin.db",
            "TWIN_DEMO_WORLD": "true",
        }
        process = subprocess.Popen(  # noqa: S603 - our command
            [str(TWIN), "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            text=True,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            if wait_until_ready(base_url, process) is None:
                raise SystemExit("twin serve never answered")
            asyncio.run(shoot_all(base_url, {row["handle"]: row["id"] for row in wait_for_demo(base_url)}))
        finally:
            stop(process)
    print(f"screenshots written to {OUT}")


if __name__ == "__main__":
    main()
