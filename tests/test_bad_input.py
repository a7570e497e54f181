"""Bad input across the backend answers a 4xx naming the field, never a 5xx (app/hardening.py,
app/validation.py and the routes they guard)."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.chain.client import Chain
from app.chat.frames import FrameError, parse_frame
from tests.helpers import launch, sign_in, siwe_message

NOT_UTF8 = b'{"name": "\xff\xfe", "handle": "x", "persona": "p", "model": "m", "message": "\xc3\x28"}'


async def test_json_bodies_that_are_not_utf8_are_400_naming_the_body(
    client: AsyncTestClient[Litestar], chain: Chain
) -> None:
    avatar_id = await launch(client, chain, chain.dev_accounts[1], "utf")
    for method, path in [
        ("POST", "/api/avatars"),
        ("PATCH", f"/api/avatars/{avatar_id}"),
        ("POST", "/rpc"),
        ("POST", "/api/auth/verify"),
    ]:
        response = await client.request(method, path, content=NOT_UTF8, headers={"content-type": "application/json"})
        assert response.status_code == 400, (path, response.text)
        assert response.json()["field"] == "body"


# 2**31 and up: the id column is 32-bit on PostgreSQL, where they were a 500 (schemathesis found it).
@pytest.mark.parametrize("message_id", [2**31, 2**63 - 1, 2**63, 2**64 + 5, 10**30, 0, -1])
async def test_attestation_ids_out_of_range_are_400(
    client: AsyncTestClient[Litestar], chain: Chain, message_id: int
) -> None:
    await sign_in(client, chain.dev_accounts[2])
    response = await client.get(f"/api/messages/{message_id}/attestation")

    assert response.status_code == 400, response.text
    assert "message_id" in response.json()["detail"]


async def test_a_signature_of_65_zero_bytes_is_bad_signature(client: AsyncTestClient[Litestar], chain: Chain) -> None:
    issued = (await client.get("/api/auth/nonce")).json()
    message = siwe_message(
        chain.dev_accounts[2], nonce=issued["nonce"], chain_id=issued["chain_id"], domain=issued["domain"]
    )
    response = await client.post("/api/auth/verify", json={"message": message, "signature": "0x" + "00" * 65})

    assert response.status_code == 401, response.text
    assert response.json()["error"] == "bad_signature"


async def test_the_faucet_refuses_a_contract_address(client: AsyncTestClient[Litestar], chain: Chain) -> None:
    response = await client.post("/api/dev/faucet", json={"address": chain.addresses.twin_keys})

    assert response.status_code == 400, response.text
    assert response.json()["field"] == "address"


@pytest.mark.parametrize(
    "path", ["/static/%00", "/static/js/%00api.js", "/vendor/ethers/ethers.min.js%00.png", "/vendor/uplot/%00"]
)
async def test_nul_in_static_paths_is_4xx(client: AsyncTestClient[Litestar], path: str) -> None:
    response = await client.get(path)

    assert response.status_code in {400, 404}, response.text


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ('{"type": "message", "client_msg_id": "m1", "content": "hi \\ud800 there"}', "content"),
        ('{"type": "message", "client_msg_id": "m\\udfff", "content": "hi"}', "client_msg_id"),
    ],
)
def test_a_lone_surrogate_in_a_chat_frame_is_invalid_message(frame: str, field: str) -> None:
    with pytest.raises(FrameError) as refused:
        parse_frame(frame, max_frame_bytes=16_384, max_message_chars=4_000)

    assert (refused.value.code, refused.value.field) == ("invalid_message", field)
