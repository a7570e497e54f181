"""The backend served by a real uvicorn on 127.0.0.1 in the test's event loop, and real clients:
httpx to sign in over HTTP, the ``websockets`` client (carrying the session cookie) to chat."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from eth_account.signers.local import LocalAccount
from litestar import Litestar
from websockets.asyncio.client import ClientConnection, connect

from app.chain.client import Chain
from app.config import Settings
from app.main import create_app
from app.proxy.accounts import node_payment_account
from app.proxy.config import ProxySettings
from tests.helpers import buy, sign, siwe_message

RECEIVE_TIMEOUT_S = 20


@dataclass
class Served:
    app: Litestar
    chain: Chain
    proxy_settings: ProxySettings
    base_url: str
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    @property
    def ws_base(self) -> str:
        return self.base_url.replace("http://", "ws://", 1)

    async def index(self) -> int:
        return await self.app.state.services.indexer.sync()

    async def signed_in(self, account: LocalAccount) -> httpx.AsyncClient:
        """An HTTP client holding ``account``'s session cookie."""
        client = httpx.AsyncClient(base_url=self.base_url, timeout=30)
        self.clients.append(client)
        nonce = (await client.get("/api/auth/nonce")).json()
        message = siwe_message(account, nonce=nonce["nonce"], chain_id=nonce["chain_id"], domain=nonce["domain"])
        response = await client.post("/api/auth/verify", json={"message": message, "signature": sign(account, message)})
        assert response.status_code == 201, response.text
        return client

    def chat(self, avatar_id: str, http: httpx.AsyncClient | None = None, **headers: str) -> Any:
        """A websocket to the avatar's chat, carrying ``http``'s session cookie."""
        if http is not None:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
        return connect(
            f"{self.ws_base}/ws/avatars/{avatar_id}/chat", additional_headers=headers, open_timeout=10, close_timeout=5
        )

    @property
    def node_address(self) -> str:
        return node_payment_account(self.proxy_settings, self.chain).address

    @property
    def price_wei(self) -> int:
        return self.proxy_settings.models["twin-offline-demo"].price_wei

    async def node_opg_balance(self) -> int:
        return await self.chain.opg.functions.balanceOf(self.node_address).call()

    def node_completions(self) -> Any:
        """The in-process node's completion service (to make it misbehave)."""
        transports = self.app.state.services.proxy_client._transports
        (transport,) = transports.values()
        return transport._app.state.node.completions


def free_port() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serving(
    settings: Settings,
    chain: Chain,
    *,
    tokens_per_second: float = 0.0,
    prepare: Callable[[Litestar], None] | None = None,
) -> AsyncIterator[Served]:
    """``create_app`` under uvicorn in this event loop, until the block exits."""
    proxy_settings = ProxySettings(offline_tokens_per_second=tokens_per_second)
    app = create_app(settings, chain=chain, proxy_settings=proxy_settings)
    if prepare is not None:
        prepare(app)
    sock = free_port()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", ws="websockets"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.02)
        served = Served(app, chain, proxy_settings, f"http://127.0.0.1:{sock.getsockname()[1]}")
        try:
            yield served
        finally:
            for client in served.clients:
                await client.aclose()
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Memory off: its extraction is a paid call of its own, in the background, that would race these tests'
    counts of what the node is paid per reply. tests/memory chats with memory on."""
    return settings.model_copy(update={"memory_token_budget": 0})


@pytest.fixture
def creator(chain: Chain) -> LocalAccount:
    return chain.dev_accounts[1]


@pytest.fixture
def fan(chain: Chain) -> LocalAccount:
    return chain.dev_accounts[2]


@pytest.fixture
async def served(settings: Settings, chain: Chain) -> AsyncIterator[Served]:
    async with serving(settings, chain) as running:
        yield running


async def holding_fan(served: Served, fan: LocalAccount, avatar_id: str, keys: int = 1) -> httpx.AsyncClient:
    buy(served.chain, fan, avatar_id, keys)
    await served.index()
    return await served.signed_in(fan)


async def receive(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(RECEIVE_TIMEOUT_S):
        return json.loads(await ws.recv())


async def send_message(ws: ClientConnection, client_msg_id: str, content: str) -> None:
    await ws.send(json.dumps({"type": "message", "client_msg_id": client_msg_id, "content": content}))


async def reply_frames(ws: ClientConnection) -> list[dict[str, Any]]:
    """Frames up to and including the first ``done`` or ``error``."""
    frames = []
    while True:
        frame = await receive(ws)
        frames.append(frame)
        if frame["type"] in ("done", "error"):
            return frames


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():  # noqa: ASYNC110 - polls the database; no event to wait on
            await asyncio.sleep(0.05)
