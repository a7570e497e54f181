"""x402 on the node: the 402 answer, paying with the official client, and every refusal."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from x402.http.clients.httpx import x402AsyncTransport
from x402.http.utils import decode_payment_required_header, encode_payment_signature_header
from x402.mechanisms.evm.types import ExactEIP3009Payload
from x402.schemas import PaymentPayloadV1

from app.chain.client import Chain
from app.proxy.node.app import in_process_node
from tests.proxy.conftest import (
    PRICE_WEI,
    authorization_header,
    node_settings,
    official_x402_client,
    opg_balance,
    terms,
)

BODY = {"model": "gpt-fake", "messages": [{"role": "user", "content": "Hello?"}]}
ELSEWHERE = "0x000000000000000000000000000000000000dEaD"


async def test_unpaid_request_gets_402_with_v2_terms(http: httpx.AsyncClient, chain: Chain) -> None:
    response = await http.post("/v1/chat/completions", json=BODY, headers={"Origin": "https://twin.example"})
    header = decode_payment_required_header(response.headers["PAYMENT-REQUIRED"])
    body = response.json()

    assert response.status_code == 402
    assert body == header.model_dump(by_alias=True, exclude_none=True)
    assert body["x402Version"] == 2
    assert body["error"] == "payment_required"
    (offer,) = body["accepts"]
    assert offer["scheme"] == "exact"
    assert offer["network"] == f"eip155:{chain.chain_id}"
    assert offer["asset"] == chain.addresses.opg
    assert offer["extra"] == {"name": "OPG", "version": "1"}
    assert offer["amount"] == str(PRICE_WEI)
    assert offer["payTo"] == chain.dev_accounts[-1].address
    # the node's 300 s, counted on the chain's clock: the embedded chain's runs ahead of ours by its lead
    latest = await chain.w3.eth.get_block("latest")
    lead = max(0, latest["timestamp"] - int(time.time()))
    assert abs(offer["maxTimeoutSeconds"] - (300 + lead)) <= 2
    exposed = response.headers["access-control-expose-headers"].upper()
    assert {"PAYMENT-REQUIRED", "PAYMENT-RESPONSE"} <= set(h.strip() for h in exposed.split(","))


async def test_official_x402_client_pays_and_the_transfer_lands(
    node_url: str, payer: LocalAccount, chain: Chain
) -> None:
    pay_to = chain.dev_accounts[-1].address
    before = (await opg_balance(chain, payer.address), await opg_balance(chain, pay_to))
    async with httpx.AsyncClient(
        base_url=node_url, transport=x402AsyncTransport(official_x402_client(payer)), timeout=10
    ) as paying:
        response = await paying.post("/v1/chat/completions", json=BODY)
    settlement = json.loads(base64.b64decode(response.headers["PAYMENT-RESPONSE"]))

    assert response.status_code == 200
    assert settlement["success"] is True
    assert settlement["payer"] == payer.address
    receipt = await chain.w3.eth.get_transaction_receipt(settlement["transaction"])
    assert receipt["status"] == 1
    assert await opg_balance(chain, payer.address) == before[0] - PRICE_WEI
    assert await opg_balance(chain, pay_to) == before[1] + PRICE_WEI


async def test_v1_x_payment_header_is_accepted(http: httpx.AsyncClient, payer: LocalAccount, chain: Chain) -> None:
    offer = (await terms(http, BODY)).accepts[0]
    v2 = authorization_header(payer, chain, offer)["PAYMENT-SIGNATURE"]
    inner = json.loads(base64.b64decode(v2))["payload"]
    v1 = PaymentPayloadV1(scheme="exact", network=offer.network, payload=inner)

    response = await http.post(
        "/v1/chat/completions", json=BODY, headers={"X-PAYMENT": encode_payment_signature_header(v1)}
    )

    assert response.status_code == 200
    assert json.loads(base64.b64decode(response.headers["X-PAYMENT-RESPONSE"]))["success"] is True


async def test_replayed_payment_is_refused(http: httpx.AsyncClient, payer: LocalAccount, chain: Chain) -> None:
    header = authorization_header(payer, chain, (await terms(http, BODY)).accepts[0])
    first = await http.post("/v1/chat/completions", json=BODY, headers=header)
    replay = await http.post("/v1/chat/completions", json=BODY, headers=header)

    assert first.status_code == 200
    assert replay.status_code == 402
    assert replay.json()["error"] == "invalid_exact_evm_nonce_already_used"


async def test_payment_in_flight_cannot_pay_twice(
    http: httpx.AsyncClient, payer: LocalAccount, chain: Chain, node_url: str
) -> None:
    body = {"model": "gpt-hang", "messages": BODY["messages"], "stream": True}
    header = authorization_header(payer, chain, (await terms(http, body)).accepts[0])
    async with (
        httpx.AsyncClient(base_url=node_url, timeout=10) as other,
        other.stream("POST", "/v1/chat/completions", json=body, headers=header) as holding,
    ):
        assert holding.status_code == 200
        concurrent = await http.post("/v1/chat/completions", json=body, headers=header)

    assert concurrent.status_code == 402
    assert concurrent.json()["error"] == "invalid_exact_evm_nonce_already_used"


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("underpaid", "invalid_exact_evm_payload_authorization_value_mismatch"),
        ("underpaid_claiming_full_price", "invalid_exact_evm_payload_authorization_value_mismatch"),
        ("wrong_network", "network_mismatch"),
        ("wrong_asset", "invalid_exact_evm_asset_mismatch"),
        ("wrong_asset_claiming_opg", "invalid_exact_evm_payload_signature"),
        ("wrong_recipient", "invalid_exact_evm_payload_recipient_mismatch"),
        ("expired", "invalid_exact_evm_payload_authorization_valid_before"),
        ("not_yet_valid", "invalid_exact_evm_payload_authorization_valid_after"),
        ("forged_signature", "invalid_exact_evm_payload_signature"),
        ("garbage", "invalid_payload"),
    ],
)
async def test_bad_payments_are_refused_with_the_reason_and_nothing_goes_upstream(
    http: httpx.AsyncClient, payer: LocalAccount, chain: Chain, fake_upstream: tuple, tamper: str, reason: str
) -> None:
    offer = (await terms(http, BODY)).accepts[0]
    now = int(time.time())
    variants = {
        "underpaid": {"signed_for": offer.model_copy(update={"amount": str(PRICE_WEI - 1)})},
        "underpaid_claiming_full_price": {
            "signed_for": offer.model_copy(update={"amount": str(PRICE_WEI - 1)}),
            "claimed": offer,
        },
        "wrong_network": {"signed_for": offer.model_copy(update={"network": "eip155:1"})},
        "wrong_asset": {"signed_for": offer.model_copy(update={"asset": ELSEWHERE})},
        "wrong_asset_claiming_opg": {"signed_for": offer.model_copy(update={"asset": ELSEWHERE}), "claimed": offer},
        "wrong_recipient": {"signed_for": offer.model_copy(update={"pay_to": ELSEWHERE})},
        "expired": {"valid_before": now - 1},
        "not_yet_valid": {"valid_after": now + 3600},
    }
    if tamper == "garbage":
        header = {"PAYMENT-SIGNATURE": "not-base64-json"}
    elif tamper == "forged_signature":
        header = authorization_header(Account.create(), chain, offer)
        payload = json.loads(base64.b64decode(header["PAYMENT-SIGNATURE"]))
        payload["payload"]["authorization"]["from"] = payer.address  # someone else signs for the payer
        header = {"PAYMENT-SIGNATURE": base64.b64encode(json.dumps(payload).encode()).decode()}
    else:
        header = authorization_header(payer, chain, offer, **variants[tamper])
    upstream_calls = len(fake_upstream[1].requests)

    response = await http.post("/v1/chat/completions", json=BODY, headers=header)

    assert response.status_code == 402
    assert response.json()["error"] == reason
    assert response.json()["accepts"][0]["amount"] == str(PRICE_WEI)  # the terms come back with the refusal
    assert len(fake_upstream[1].requests) == upstream_calls


async def test_payer_without_enough_opg_is_refused(http: httpx.AsyncClient, chain: Chain) -> None:
    broke = Account.create()
    response = await http.post(
        "/v1/chat/completions",
        json=BODY,
        headers=authorization_header(broke, chain, (await terms(http, BODY)).accepts[0]),
    )

    assert response.status_code == 402
    assert response.json()["error"] == "invalid_exact_evm_insufficient_balance"


async def test_balance_must_cover_every_payment_in_flight(http: httpx.AsyncClient, chain: Chain, node_url: str) -> None:
    """A payer holding one price's worth cannot have two requests in flight at once."""
    owner = chain.dev_accounts[0]
    thrifty = Account.create()
    await _send_opg(chain, owner, thrifty.address, PRICE_WEI)
    body = {"model": "gpt-hang", "messages": BODY["messages"], "stream": True}
    offer = (await terms(http, body)).accepts[0]
    async with (
        httpx.AsyncClient(base_url=node_url, timeout=10) as other,
        other.stream(
            "POST", "/v1/chat/completions", json=body, headers=authorization_header(thrifty, chain, offer)
        ) as holding,
    ):
        assert holding.status_code == 200
        second = await http.post("/v1/chat/completions", json=body, headers=authorization_header(thrifty, chain, offer))

    assert second.status_code == 402
    assert second.json()["error"] == "invalid_exact_evm_insufficient_balance"


async def test_payload_nonce_must_be_32_bytes(http: httpx.AsyncClient, payer: LocalAccount, chain: Chain) -> None:
    header = authorization_header(payer, chain, (await terms(http, BODY)).accepts[0])
    payload = json.loads(base64.b64decode(header["PAYMENT-SIGNATURE"]))
    evm = ExactEIP3009Payload.from_dict(payload["payload"])
    evm.authorization.nonce = "0x1234"
    payload["payload"] = evm.to_dict()

    response = await http.post(
        "/v1/chat/completions",
        json=BODY,
        headers={"PAYMENT-SIGNATURE": base64.b64encode(json.dumps(payload).encode()).decode()},
    )

    assert response.status_code == 402
    assert response.json()["error"] == "invalid_exact_evm_payload"


async def _send_opg(chain: Chain, sender: LocalAccount, to: str, amount: int) -> None:
    transaction = await chain.opg.functions.transfer(to, amount).build_transaction(
        {"from": sender.address, "nonce": await chain.w3.eth.get_transaction_count(sender.address)}
    )
    signed = sender.sign_transaction(transaction)
    await chain.w3.eth.wait_for_transaction_receipt(await chain.w3.eth.send_raw_transaction(signed.raw_transaction))


async def test_chain_outage_during_payment_check_is_503_not_500(
    chain: Chain, payer: LocalAccount, fake_upstream: tuple
) -> None:
    async with (
        in_process_node(node_settings(fake_upstream[0]), chain, name="outage") as node,
        httpx.AsyncClient(transport=node.transport, base_url=node.endpoint) as http,
    ):

        async def chain_down(*_: object) -> bytes:
            raise OSError("connection refused")

        node.app.state.node.payments._facilitator._call = chain_down
        response = await http.post(
            "/v1/chat/completions",
            json=BODY,
            headers=authorization_header(payer, chain, (await terms(http, BODY)).accepts[0]),
        )

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "payment_check_unavailable"
    assert response.headers["Retry-After"] == "2"
