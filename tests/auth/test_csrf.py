"""Cross-site request forgery (app/auth/csrf.py): with the session cookie, state changes come from the
service's own (or a listed) origin, with JSON bodies; clients that send no Origin stay allowed."""

from __future__ import annotations

import json

import pytest
from eth_account.signers.local import LocalAccount
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.chain.client import Chain
from tests.helpers import sign_in

EVIL = "https://evil.example"
OWN = "http://testserver.local"  # the test client's base URL
AVATAR = {"name": "Ada", "handle": "ada", "persona": "You are Ada.", "model": "twin-offline-demo", "bio": "hi"}


@pytest.fixture
def creator(chain: Chain) -> LocalAccount:
    return chain.dev_accounts[1]


def text_plain(origin: str | None = None, **extra: str) -> dict[str, str]:
    """What a foreign page's form or no-preflight fetch can send: JSON text as text/plain."""
    return {"content-type": "text/plain", **({"Origin": origin} if origin else {}), **extra}


async def test_a_foreign_page_cannot_launch_or_edit_with_the_session(
    client: AsyncTestClient[Litestar], creator: LocalAccount
) -> None:
    await sign_in(client, creator)
    launched = (await client.post("/api/avatars", json=AVATAR)).json()
    edit = json.dumps({"bio": "pwned"})

    posted = await client.post(
        "/api/avatars", content=json.dumps(AVATAR | {"handle": "evil"}), headers=text_plain(EVIL)
    )
    patched = await client.patch(f"/api/avatars/{launched['id']}", content=edit, headers=text_plain(EVIL))
    as_json = await client.patch(
        f"/api/avatars/{launched['id']}", content=edit, headers={"content-type": "application/json", "Origin": EVIL}
    )
    fetch_metadata = await client.patch(
        f"/api/avatars/{launched['id']}", json={"bio": "pwned"}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    logout = await client.post("/api/auth/logout", headers={"Origin": "null"})

    for response in (posted, patched, as_json, fetch_metadata, logout):
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "csrf"
    assert (await client.get(f"/api/avatars/{launched['id']}")).json()["bio"] == "hi"
    assert (await client.get("/api/auth/me")).status_code == 200


async def test_the_own_origin_works_with_json_and_gets_415_otherwise(
    client: AsyncTestClient[Litestar], creator: LocalAccount
) -> None:
    await sign_in(client, creator)
    json_own = {"content-type": "application/json", "Origin": OWN, "Sec-Fetch-Site": "same-origin"}

    posted = await client.post("/api/avatars", content=json.dumps(AVATAR), headers=json_own)
    patched = await client.patch(
        f"/api/avatars/{posted.json()['id']}", content=json.dumps({"bio": "edited"}), headers=json_own
    )
    plain = await client.patch(
        f"/api/avatars/{posted.json()['id']}", content=json.dumps({"bio": "plain"}), headers=text_plain(OWN)
    )

    assert posted.status_code == 201, posted.text
    assert patched.status_code == 200, patched.text
    assert plain.status_code == 415
    assert plain.json()["error"] == "unsupported_media_type"
    assert (await client.get(f"/api/avatars/{posted.json()['id']}")).json()["bio"] == "edited"


async def test_clients_without_origin_or_cookie_are_not_browsers_acting_for_a_page(
    client: AsyncTestClient[Litestar], creator: LocalAccount
) -> None:
    """curl, servers and the official SDKs send neither Origin nor Sec-Fetch-Site."""
    await sign_in(client, creator)
    posted = await client.post("/api/avatars", json=AVATAR)
    client.cookies.clear()
    faucet = await client.post(
        "/api/dev/faucet", content=json.dumps({"address": creator.address}), headers=text_plain(EVIL)
    )  # no session: acts for nobody

    assert posted.status_code == 201, posted.text
    assert faucet.status_code == 200, faucet.text
