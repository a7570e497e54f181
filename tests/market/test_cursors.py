"""Crafted cursors (app/lib/pagination.py decode_cursor and its callers): each a 400 naming the cursor."""

from __future__ import annotations

import base64
import json

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.chain.client import Chain
from tests.helpers import buy, index, launch, sign_in


def crafted(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


CURSORS = [
    crafted(["a"]),
    crafted([10**30]),
    crafted([-(10**30)]),
    crafted([[1], [2]]),
    crafted([{"a": 1}]),
    crafted([True]),
    crafted([None, None]),
    crafted([1, 2]),
    crafted(["x", 1]),
    crafted([1, "x", 3]),
    crafted([[["deep"]]]),
    crafted([1.5, "0x"]),
    crafted([2**63]),
    "junk!",
    crafted({"a": 1}),
    crafted([2**31]),
]  # past a 32-bit row id: a 500 on PostgreSQL once
ROUTES = [
    "/api/avatars/{id}/trades",
    "/api/avatars/{id}/holders",
    "/api/avatars/{id}/messages",
    "/api/avatars",
    "/api/avatars?sort=newest",
    "/api/avatars?sort=holders",
    "/api/avatars?sort=market_cap",
    "/api/avatars?sort=volume_24h",
    "/api/wallets/{wallet}/trades",
]


@pytest.fixture
async def avatar_id(client: AsyncTestClient[Litestar], chain: Chain, app: Litestar) -> str:
    avatar_id = await launch(client, chain, chain.dev_accounts[1], "zed")
    buy(chain, chain.dev_accounts[2], avatar_id, 2)
    await index(app)
    return avatar_id


@pytest.mark.parametrize("route", ROUTES)
async def test_crafted_cursors_are_400(
    client: AsyncTestClient[Litestar], chain: Chain, avatar_id: str, route: str
) -> None:
    path = route.format(id=avatar_id, wallet=chain.dev_accounts[2].address)
    for cursor in CURSORS:
        response = await client.get(path, params={"cursor": cursor})
        assert response.status_code == 400, (cursor, response.text)
        assert response.json()["field"] == "cursor"


@pytest.mark.parametrize(
    ("sort", "key"),
    [("market_cap", 2**256), ("market_cap", -1), ("holders", 2**31), ("holders", -1), ("newest", "not a moment")],
)
async def test_a_ranking_cursor_whose_key_its_column_cannot_hold_is_400(
    client: AsyncTestClient[Litestar], avatar_id: str, sort: str, key: object
) -> None:
    response = await client.get("/api/avatars", params={"sort": sort, "cursor": crafted([key, avatar_id])})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "cursor"


async def test_junk_cursors_on_the_portfolio_page_are_4xx(
    client: AsyncTestClient[Litestar], chain: Chain, avatar_id: str
) -> None:
    await sign_in(client, chain.dev_accounts[2])
    for cursor in CURSORS:
        response = await client.get("/portfolio", params={"cursor": cursor})
        assert 400 <= response.status_code < 500, (cursor, response.status_code)
