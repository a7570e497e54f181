"""Sessions (app/auth/sessions.py) and the bounds on a sign-in message's lifetime (app/auth/service.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.chain.client import Chain
from app.config import ConfigError, Settings, check_backend_settings
from tests.helpers import free_port, run_twin, sign, sign_in, siwe_message

PLANTED = "ab" * 32


@pytest.fixture
def fan(chain: Chain) -> LocalAccount:
    return chain.dev_accounts[3]


def stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def verify(client: AsyncTestClient[Litestar], fan: LocalAccount, **overrides: object) -> httpx.Response:
    issued = (await client.get("/api/auth/nonce")).json()
    message = siwe_message(
        fan, nonce=issued["nonce"], chain_id=issued["chain_id"], domain=issued["domain"], **overrides
    )  # type: ignore[arg-type]
    return await client.post("/api/auth/verify", json={"message": message, "signature": sign(fan, message)})


async def test_anonymous_requests_store_no_session(client: AsyncTestClient[Litestar]) -> None:
    for path in ("/healthz", "/api/avatars", "/api/auth/nonce", "/api/auth/me", "/"):
        response = await client.get(path)
        assert "set-cookie" not in response.headers, path
    assert not client.cookies


def use_cookie(client: AsyncTestClient[Litestar], session_id: str) -> None:
    client.cookies.clear()
    client.cookies.set("session", session_id)


async def test_sign_in_rotates_a_planted_session_id(client: AsyncTestClient[Litestar], fan: LocalAccount) -> None:
    use_cookie(client, PLANTED)
    signed_in = await verify(client, fan)
    new_id = signed_in.cookies["session"]

    assert signed_in.status_code == 201
    assert new_id not in {"", PLANTED}
    use_cookie(client, new_id)
    assert (await client.get("/api/auth/me")).json() == {"address": fan.address}
    use_cookie(client, PLANTED)
    assert (await client.get("/api/auth/me")).status_code == 401


async def test_the_session_route_says_who_is_signed_in_without_a_401(
    client: AsyncTestClient[Litestar], fan: LocalAccount
) -> None:
    signed_out = await client.get("/api/auth/session")
    use_cookie(client, (await verify(client, fan)).cookies["session"])
    signed_in = await client.get("/api/auth/session")

    assert signed_out.status_code == 200
    assert signed_out.json() == {"address": None}
    assert signed_in.json() == {"address": fan.address}


async def test_a_signed_in_session_planted_in_a_browser_ends_at_the_next_sign_in(
    client: AsyncTestClient[Litestar], chain: Chain, fan: LocalAccount
) -> None:
    await sign_in(client, chain.dev_accounts[4])  # the attacker's own session
    planted = client.cookies["session"]
    use_cookie(client, planted)
    signed_in = await verify(client, fan)

    assert signed_in.status_code == 201
    use_cookie(client, planted)
    assert (await client.get("/api/auth/me")).status_code == 401  # not the fan: the old id is gone


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"issued_at": stamp(datetime.now(UTC) + timedelta(minutes=5))}, "not_yet_valid", "issued_at"),
        ({"issued_at": stamp(datetime.now(UTC) - timedelta(minutes=11))}, "expired_message", "issued_at"),
        ({"expires_in": None}, "malformed_message", "expiration_time"),
        ({"expires_in": timedelta(days=30)}, "malformed_message", "expiration_time"),
    ],
)
async def test_sign_in_messages_are_fresh_and_expire_soon(
    client: AsyncTestClient[Litestar], fan: LocalAccount, overrides: dict, code: str, field: str
) -> None:
    response = await verify(client, fan, **overrides)
    body = response.json()

    assert response.status_code == 401, body
    assert body["error"] == code
    assert body["detail"].startswith(field)


async def test_a_little_clock_skew_is_fine(client: AsyncTestClient[Litestar], fan: LocalAccount) -> None:
    response = await verify(client, fan, issued_at=stamp(datetime.now(UTC) + timedelta(seconds=20)))

    assert response.status_code == 201, response.text


def test_a_real_chain_needs_the_public_domain(tmp_path: Path) -> None:
    remote = Settings(chain_rpc_url="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="TWIN_PUBLIC_DOMAIN: required with TWIN_CHAIN_RPC_URL"):
        check_backend_settings(remote)
    check_backend_settings(remote.model_copy(update={"public_domain": "twin.example.org"}))
    check_backend_settings(Settings())  # embedded: the Host is the domain

    result = run_twin(
        {"TWIN_DATABASE_URL": f"sqlite:///{tmp_path / 'twin.db'}", "TWIN_CHAIN_RPC_URL": "http://127.0.0.1:9"},
        "serve",
        "--port",
        str(free_port()),
    )
    assert result.returncode == 2
    assert "TWIN_PUBLIC_DOMAIN" in result.stderr
