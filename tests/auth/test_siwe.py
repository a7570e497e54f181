"""Sign-In with Ethereum: the happy path and every way a sign-in must fail with 401 and a reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from eth_account.signers.local import LocalAccount
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.chain.client import Chain
from tests.helpers import sign, sign_in, siwe_message


@pytest.fixture
def fan(chain: Chain) -> LocalAccount:
    return chain.dev_accounts[3]


async def nonce(client: AsyncTestClient[Litestar]) -> dict:
    response = await client.get("/api/auth/nonce")
    assert response.status_code == 200
    return response.json()


async def test_sign_in_me_and_logout(client: AsyncTestClient[Litestar], fan: LocalAccount) -> None:
    assert (await client.get("/api/auth/me")).status_code == 401

    await sign_in(client, fan)
    me = await client.get("/api/auth/me")
    assert me.json() == {"address": fan.address}

    assert (await client.post("/api/auth/logout")).status_code == 200
    assert (await client.get("/api/auth/me")).status_code == 401


async def test_nonce_names_domain_and_chain(client: AsyncTestClient[Litestar], chain: Chain) -> None:
    first, second = await nonce(client), await nonce(client)
    assert first["nonce"] != second["nonce"]
    assert first["chain_id"] == chain.chain_id
    assert first["domain"] == "testserver.local"


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("wrong_domain", "wrong_domain"),
        ("wrong_chain", "wrong_chain"),
        ("expired", "expired_message"),
        ("not_yet_valid", "not_yet_valid"),
        ("bad_signature", "bad_signature"),
        ("unknown_nonce", "bad_nonce"),
        ("garbage_signature", "bad_signature"),
    ],
)
async def test_sign_in_refusals(
    client: AsyncTestClient[Litestar], chain: Chain, fan: LocalAccount, case: str, code: str
) -> None:
    issued = await nonce(client)
    kwargs: dict = {"nonce": issued["nonce"], "chain_id": chain.chain_id}
    signer = fan
    if case == "wrong_domain":
        kwargs["domain"] = "evil.example"
    elif case == "wrong_chain":
        kwargs["chain_id"] = 1
    elif case == "expired":
        kwargs["expires_in"] = timedelta(seconds=-1)
    elif case == "not_yet_valid":
        kwargs["not_before"] = "2999-01-01T00:00:00Z"
    elif case == "bad_signature":
        signer = chain.dev_accounts[4]  # signs a message that names the fan
    elif case == "unknown_nonce":
        kwargs["nonce"] = "neverIssued12345"
    message = siwe_message(fan, **kwargs)
    signature = "0x" + "ab" * 65 if case == "garbage_signature" else sign(signer, message)

    response = await client.post("/api/auth/verify", json={"message": message, "signature": signature})

    assert response.status_code == 401, response.text
    assert response.json()["error"] == code
    assert (await client.get("/api/auth/me")).status_code == 401


async def test_a_nonce_signs_in_once(client: AsyncTestClient[Litestar], chain: Chain, fan: LocalAccount) -> None:
    issued = await nonce(client)
    message = siwe_message(fan, nonce=issued["nonce"], chain_id=chain.chain_id)
    body = {"message": message, "signature": sign(fan, message)}

    assert (await client.post("/api/auth/verify", json=body)).status_code == 201
    replay = await client.post("/api/auth/verify", json=body)

    assert replay.status_code == 401
    assert replay.json()["error"] == "bad_nonce"


@pytest.mark.parametrize("body", [{"message": "hello", "signature": "0x00"}, {"message": 5, "signature": "x"}, {}])
async def test_malformed_sign_in_is_4xx(client: AsyncTestClient[Litestar], body: dict) -> None:
    response = await client.post("/api/auth/verify", json=body)

    assert response.status_code in {400, 401}
    assert "error" in response.json()
