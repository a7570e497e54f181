"""A payment header of the right shape but wrong JSON types is the payer's error (402), not the chain's (503)."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from app.chain.client import Chain
from tests.proxy.conftest import authorization_header, terms

BODY = {"model": "twin-offline-demo", "messages": [{"role": "user", "content": "hi"}]}


def retyped(header: str, change: Any) -> str:
    payload = json.loads(base64.b64decode(header))
    change(payload["payload"])
    return base64.b64encode(json.dumps(payload).encode()).decode()


@pytest.mark.parametrize("name", ["PAYMENT-SIGNATURE", "X-PAYMENT"])
@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.update(authorization="0xabc"),
        lambda p: p.update(signature=12345),
        lambda p: p.update(authorization=None),
        lambda p: p["authorization"].update(value=["1"]),
        lambda p: p["authorization"].update(validBefore={"n": 1}),
        lambda p: p["authorization"].update(nonce=7),
        lambda p: p.pop("authorization"),
        lambda p: p.clear(),
    ],
)
async def test_wrong_json_types_in_the_payment_are_402(
    http: httpx.AsyncClient, payer: LocalAccount, chain: Chain, name: str, change: Any
) -> None:
    required = await terms(http, BODY)
    header = authorization_header(payer, chain, required.accepts[0])["PAYMENT-SIGNATURE"]

    response = await http.post("/v1/chat/completions", json=BODY, headers={name: retyped(header, change)})

    assert response.status_code in {400, 402}, response.text
