"""Everything a client can get wrong answers a 4xx with a JSON body naming the problem; never a 500."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.chain.client import Chain
from tests.helpers import launch, sign_in

UNKNOWN_ID = "0x" + "ab" * 16


@pytest.fixture
async def avatar_id(client: AsyncTestClient[Litestar], chain: Chain) -> str:
    return await launch(client, chain, chain.dev_accounts[1], "zed")


@pytest.mark.parametrize(
    ("path", "params", "status", "field"),
    [
        ("/api/avatars/{id}/quote", {"side": "buy", "amount": 0}, 400, "amount"),
        ("/api/avatars/{id}/quote", {"side": "buy", "amount": -3}, 400, "amount"),
        ("/api/avatars/{id}/quote", {"side": "buy", "amount": 10**40}, 400, "amount"),
        ("/api/avatars/{id}/quote", {"side": "buy", "amount": "many"}, 400, "amount"),
        ("/api/avatars/{id}/quote", {"side": "hold", "amount": 1}, 400, "side"),
        ("/api/avatars/{id}/quote", {"side": "buy", "amount": 1, "slippage_bps": 9_999_999}, 400, "slippage_bps"),
        ("/api/avatars/{id}/quote", {"side": "sell", "amount": 1}, 400, "amount"),  # only the last key exists
        ("/api/avatars", {"sort": "vibes"}, 400, "sort"),
        ("/api/avatars", {"limit": 0}, 400, "limit"),
        ("/api/avatars", {"limit": 10_000}, 400, "limit"),
        ("/api/avatars", {"cursor": "not-a-cursor!"}, 400, "cursor"),
        ("/api/avatars/{id}/trades", {"cursor": "WyJ4Il0"}, 400, "cursor"),
        ("/api/avatars/{id}/candles", {"interval": "7m"}, 400, "interval"),
        ("/api/avatars/0x1234/trades", {}, 400, "id"),
        ("/api/avatars/not-an-id", {}, 400, "id"),
        ("/api/wallets/0xnothex/holdings", {}, 400, "address"),
        ("/api/wallets/12/trades", {}, 400, "address"),
    ],
)
async def test_bad_queries_name_the_field(
    client: AsyncTestClient[Litestar], avatar_id: str, path: str, params: dict, status: int, field: str
) -> None:
    response = await client.get(path.format(id=avatar_id), params=params)

    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]
    assert field in body["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/avatars/{id}",
        "/api/avatars/{id}/quote?side=buy&amount=1",
        "/api/avatars/{id}/trades",
        "/api/avatars/{id}/holders",
        "/api/avatars/{id}/metadata",
    ],
)
async def test_unknown_avatar_is_404(client: AsyncTestClient[Litestar], path: str) -> None:
    response = await client.get(path.format(id=UNKNOWN_ID))

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_writes_need_a_session(client: AsyncTestClient[Litestar], avatar_id: str) -> None:
    client.cookies.clear()
    launch_body = {"name": "N", "handle": "nnn", "persona": "p", "model": "m"}

    assert (await client.post("/api/avatars", json=launch_body)).status_code == 401
    assert (await client.patch(f"/api/avatars/{avatar_id}", json={"bio": "x"})).status_code == 401
    assert (await client.get("/api/creators/me/stats")).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "A", "handle": "Bad Handle", "persona": "p", "model": "m"}, "handle"),
        ({"name": "A", "handle": "ok_handle", "persona": "", "model": "m"}, "persona"),
        ({"name": "A" * 65, "handle": "ok_handle", "persona": "p", "model": "m"}, "name"),
        ({"name": "A", "handle": "ok_handle", "persona": "p" * 8001, "model": "m"}, "persona"),
        (
            {"name": "A", "handle": "ok_handle", "persona": "p", "model": "m", "verification_level": "magic"},
            "verification_level",
        ),
        (
            {"name": "A", "handle": "ok_handle", "persona": "p", "model": "m", "image_url": "javascript:alert(1)"},
            "image_url",
        ),
        ({"name": "A", "handle": "ok_handle", "persona": "p", "model": "m", "creator": "0x" + "11" * 20}, "creator"),
        ({"name": 7, "handle": "ok_handle", "persona": "p", "model": "m"}, "name"),
        ({"handle": "ok_handle", "persona": "p", "model": "m"}, "name"),
    ],
)
async def test_launch_validates_every_field(
    client: AsyncTestClient[Litestar], chain: Chain, body: dict, field: str
) -> None:
    await sign_in(client, chain.dev_accounts[2])
    response = await client.post("/api/avatars", json=body)

    assert response.status_code == 400, response.text
    assert field in response.json()["detail"]


async def test_duplicate_handle_is_409(client: AsyncTestClient[Litestar], chain: Chain, avatar_id: str) -> None:
    await sign_in(client, chain.dev_accounts[2])
    response = await client.post("/api/avatars", json={"name": "Z", "handle": "zed", "persona": "p", "model": "m"})

    assert response.status_code == 409
    assert response.json()["field"] == "handle"
