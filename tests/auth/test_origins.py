"""CORS and the websockets' Origin check (app/auth/origins.py): by default only the service's own
origin may use a session; listed origins get CORS with credentials; ``"*"`` never gets credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from eth_account.signers.local import LocalAccount
from litestar import Litestar
from litestar.testing import AsyncTestClient
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.chain.client import Chain
from app.config import Settings
from app.main import create_app
from tests.chat.conftest import Served, receive, serving
from tests.helpers import sign_in

EVIL = "https://evil.example"
LISTED = "https://twin.example"
POLICY_VIOLATION = 1008


@pytest.fixture
def fan(chain: Chain) -> LocalAccount:
    return chain.dev_accounts[3]


@pytest.fixture
async def served(settings: Settings, chain: Chain) -> AsyncIterator[Served]:
    async with serving(settings, chain) as running:
        yield running


async def me(client: AsyncTestClient[Litestar], fan: LocalAccount, origin: str) -> dict[str, str]:
    await sign_in(client, fan)
    response = await client.get("/api/auth/me", headers={"Origin": origin})
    assert response.status_code == 200
    return dict(response.headers)


async def test_a_foreign_origin_gets_no_cors_by_default(client: AsyncTestClient[Litestar], fan: LocalAccount) -> None:
    headers = await me(client, fan, EVIL)

    assert "access-control-allow-origin" not in headers
    assert "access-control-allow-credentials" not in headers


async def test_a_listed_origin_gets_cors_with_credentials(settings: Settings, chain: Chain, fan: LocalAccount) -> None:
    listed = create_app(settings.model_copy(update={"cors_origins": [LISTED]}), chain=chain)
    async with AsyncTestClient(app=listed) as client:
        allowed, foreign = await me(client, fan, LISTED), await me(client, fan, EVIL)

    assert allowed["access-control-allow-origin"] == LISTED
    assert allowed["access-control-allow-credentials"] == "true"
    assert "access-control-allow-origin" not in foreign


async def test_a_wildcard_never_comes_with_credentials(settings: Settings, chain: Chain, fan: LocalAccount) -> None:
    anyone = create_app(settings.model_copy(update={"cors_origins": ["*"]}), chain=chain)
    async with AsyncTestClient(app=anyone) as client:
        headers = await me(client, fan, EVIL)

    assert headers["access-control-allow-origin"] in {"*", EVIL}  # Litestar reflects it: the same, uncredentialed
    assert "access-control-allow-credentials" not in headers


async def closed(served: Served, path: str, headers: dict[str, str]) -> tuple[int, str]:
    async with connect(f"{served.ws_base}{path}", additional_headers=headers, open_timeout=10) as ws:
        with pytest.raises(ConnectionClosed) as refused:
            await receive(ws)
    assert refused.value.rcvd is not None
    return refused.value.rcvd.code, refused.value.rcvd.reason


async def test_chat_websocket_refuses_a_foreign_origin_with_a_valid_cookie(served: Served, fan: LocalAccount) -> None:
    http = await served.signed_in(fan)
    cookie = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
    path = f"/ws/avatars/0x{'ab' * 16}/chat"  # no such avatar: the origin is checked first

    evil = await closed(served, path, {"Cookie": cookie, "Origin": EVIL})
    own = await closed(served, path, {"Cookie": cookie, "Origin": served.base_url})

    assert evil == (POLICY_VIOLATION, "origin not allowed")
    assert own[0] == POLICY_VIOLATION
    assert "no avatar" in own[1]  # past the origin check


async def test_operators_websocket_refuses_a_foreign_origin(served: Served) -> None:
    evil = await closed(served, "/ws/autoscale", {"Origin": EVIL})
    async with connect(f"{served.ws_base}/ws/autoscale", additional_headers={"Origin": served.base_url}) as ws:
        first = await receive(ws)

    assert evil == (POLICY_VIOLATION, "origin not allowed")
    assert first["type"] == "decision"
