"""The end-to-end setting: `twin serve` started for real on the embedded default (its own chain and
a temporary SQLite file), Debian's Chromium driven by Playwright, and one browser context per
person so that each keeps their own dev wallet (localStorage) and session cookie.

Nothing is downloaded: the browser is /usr/bin/chromium (`./dev.sh test` installs it when missing).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from app.resources import CHECKOUT_ROOT
from tests.e2e.flows import Server, launch_avatar, use_dev_wallet
from tests.helpers import TWIN, env_without_twin_settings, free_port, stop, wait_until_ready

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = CHECKOUT_ROOT / "test-artifacts" / "e2e"
TIMEOUT_MS = 30_000
expect.set_options(timeout=TIMEOUT_MS)


def serve_logging_to(env: dict[str, str], port: int, log_file: Path) -> subprocess.Popen[str]:
    """`twin serve` with its log in a file: a pipe nobody reads fills up (64 KiB) and then blocks the
    server on its next log line, which looks like a hung server halfway through a session."""
    with log_file.open("w") as log:
        return subprocess.Popen(
            [str(TWIN), "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT, text=True
        )


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    scratch = tmp_path_factory.mktemp("e2e")
    env = env_without_twin_settings() | {"TWIN_DATABASE_URL": f"sqlite:///{scratch / 'twin.db'}"}
    process = serve_logging_to(env, port, scratch / "twin.log")
    base_url = f"http://127.0.0.1:{port}"
    try:
        ready = wait_until_ready(base_url, process)
        assert ready is not None, "twin serve never answered"
        assert ready.status_code == 200, ready.text
        page_config = re.search(r'"twin_keys_address": "(0x[0-9a-fA-F]{40})"', httpx.get(base_url).text)
        assert page_config, "the pages do not name the TwinKeys address"
        yield Server(base_url=base_url, twin_keys_address=page_config.group(1))
    finally:
        stop(process)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@dataclass
class People:
    """Opens a browser for each person in a test; every script error they hit fails the test."""

    browser: Browser
    server: Server
    contexts: list[BrowserContext] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)

    async def open(self, path: str = "/", *, javascript: bool = True, init_script: str | None = None) -> Page:
        context = await self.browser.new_context(
            base_url=self.server.base_url, java_script_enabled=javascript, viewport={"width": 1280, "height": 900}
        )
        context.set_default_timeout(TIMEOUT_MS)
        if init_script:
            await context.add_init_script(init_script)
        self.contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda error: self.script_errors.append(str(error)))
        await page.goto(path)
        return page


@pytest.fixture
async def people(browser: Browser, server: Server) -> AsyncIterator[People]:
    crowd = People(browser, server)
    yield crowd
    for context in crowd.contexts:
        await context.close()
    assert crowd.script_errors == []


@pytest.fixture
def launched_avatar(people: People) -> Callable[[str], Awaitable[str]]:
    """Has a creator (in a browser of their own) launch an avatar with this handle; its id."""

    async def launch(handle: str) -> str:
        creator = await people.open("/create")
        await use_dev_wallet(creator, fund=True)
        return await launch_avatar(creator, handle)

    return launch


@pytest.fixture
def screenshot() -> Callable[[Page, str], Awaitable[Path]]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    async def take(page: Page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    return take
