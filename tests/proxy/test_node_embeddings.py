"""``/v1/embeddings`` through the node: the official OpenAI SDK (paying through the official x402 client) against
a fake upstream speaking OpenAI's embeddings wire protocol, paid and attested as chat is; failover, refusals, and
the backend's ProxyClient."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from eth_account.signers.local import LocalAccount
from x402.http.clients.httpx import x402AsyncTransport

from app.chain.client import Chain
from app.proxy.accounts import platform_wallet
from app.proxy.client.client import EMBEDDINGS_PATH, ProxyClient
from app.proxy.node.app import in_process_node
from app.proxy.verify import Attestation, AttestationError, embeddings_output_for_hash, verify_reply
from tests.proxy.conftest import PRICE_WEI, node_settings, official_x402_client, opg_balance, paid_post
from tests.proxy.fakes import FakeProviders, fake_embedding

TEXTS = ["They are training for a marathon", "They love olives"]


@pytest.fixture
async def sdk(node_url: str, payer: LocalAccount) -> AsyncIterator[openai.AsyncOpenAI]:
    transport = x402AsyncTransport(official_x402_client(payer))
    async with httpx.AsyncClient(transport=transport, timeout=10) as paying_http:
        yield openai.AsyncOpenAI(base_url=f"{node_url}/v1", api_key="unused", http_client=paying_http, max_retries=0)


async def node_key(http: httpx.AsyncClient) -> bytes:
    return base64.b64decode((await http.get("/v1/attestation")).json()["public_key_der_base64"])


def as_float32(vector: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(vector)}f", struct.pack(f"<{len(vector)}f", *vector)))


async def test_sdk_embeddings_are_paid_and_attested(
    sdk: openai.AsyncOpenAI, http: httpx.AsyncClient, fake_upstream: tuple[str, FakeProviders]
) -> None:
    raw = await sdk.embeddings.with_raw_response.create(model="embed-fake", input=TEXTS)
    created = raw.parse()
    vectors = [row.embedding for row in created.data]

    assert vectors == [as_float32(fake_embedding(text)) for text in TEXTS]
    assert created.usage.prompt_tokens == 9
    upstream_request = fake_upstream[1].requests[-1]
    assert (upstream_request["model"], upstream_request["body"]["input"]) == ("ok", TEXTS)
    assert upstream_request["headers"]["authorization"] == "Bearer sk-fakeopenai-0123456789abcdef"
    settlement = json.loads(base64.b64decode(raw.headers["PAYMENT-RESPONSE"]))
    assert (settlement["success"], settlement["amount"]) == (True, str(PRICE_WEI))
    # The SDK asks for base64 by default: the signature covers the vectors, not how they travelled.
    sent = json.loads(raw.http_request.content)
    verify_reply(
        body=sent,
        output=embeddings_output_for_hash(vectors),
        attestation=Attestation.from_reply(raw.http_response.json()),
        public_key=await node_key(http),
    )
    with pytest.raises(AttestationError, match="output hash"):
        verify_reply(
            body=sent,
            output=embeddings_output_for_hash([vectors[1], vectors[0]]),
            attestation=Attestation.from_reply(raw.http_response.json()),
            public_key=await node_key(http),
        )


async def test_float_embeddings_fail_over_to_an_upstream_that_embeds(
    http: httpx.AsyncClient, payer: LocalAccount, chain: Chain, fake_upstream: tuple[str, FakeProviders]
) -> None:
    # embed-failover: offline and Anthropic cannot embed (skipped), OpenAI "fail" answers 500, then "ok".
    body = {"model": "embed-failover", "input": "I love olives", "encoding_format": "float"}
    response = await paid_post(http, payer, chain, body, EMBEDDINGS_PATH)
    reply = response.json()

    assert response.status_code == 200
    expected = as_float32(fake_embedding("I love olives"))
    assert reply["data"] == [{"object": "embedding", "index": 0, "embedding": expected}]
    assert [request["model"] for request in fake_upstream[1].requests[-2:]] == ["fail", "ok"]
    verify_reply(
        body=body,
        output=embeddings_output_for_hash([row["embedding"] for row in reply["data"]]),
        attestation=Attestation.from_reply(reply),
        public_key=await node_key(http),
    )


async def test_a_model_without_an_embedding_upstream_is_400_before_any_payment(http: httpx.AsyncClient) -> None:
    response = await http.post(EMBEDDINGS_PATH, json={"model": "twin-offline-demo", "input": "hello"})

    assert response.status_code == 400
    assert (response.json()["error"]["param"], response.json()["error"]["code"]) == ("model", "unsupported_value")


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": "embed-fake"}, "input", "missing_field"),
        ({"model": "embed-fake", "input": []}, "input", "invalid_type"),
        ({"model": "embed-fake", "input": ["ok", ""]}, "input[1]", "invalid_value"),
        ({"model": "embed-fake", "input": [[1, 2]]}, "input[0]", "invalid_value"),
        ({"model": "embed-fake", "input": "x", "dimensions": 0}, "dimensions", "invalid_value"),
        ({"model": "embed-fake", "input": "x", "encoding_format": "int8"}, "encoding_format", "invalid_value"),
        ({"model": "nope", "input": "x"}, "model", "model_not_found"),
    ],
)
async def test_bad_embeddings_input_is_400_naming_the_field(
    http: httpx.AsyncClient, body: dict[str, object], param: str, code: str
) -> None:
    response = await http.post(EMBEDDINGS_PATH, json=body)

    assert response.status_code == 400
    assert (response.json()["error"]["param"], response.json()["error"]["code"]) == (param, code)


async def test_embedding_upstreams_all_failing_is_502_and_charges_nothing(
    http: httpx.AsyncClient, payer: LocalAccount, chain: Chain
) -> None:
    before = await opg_balance(chain, payer.address)
    response = await paid_post(http, payer, chain, {"model": "all-fail", "input": "x"}, EMBEDDINGS_PATH)

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unavailable"
    assert await opg_balance(chain, payer.address) == before


async def test_the_proxy_client_embeds_paid_and_verified(
    chain: Chain, fake_upstream: tuple[str, FakeProviders]
) -> None:
    settings = node_settings(fake_upstream[0])
    async with in_process_node(settings, chain, name="embedding") as node:
        client = ProxyClient(
            chain,
            platform_wallet(settings, chain),
            settings,
            transports={node.endpoint: node.transport},
            own_tee_ids=[node.tee_id],
        )
        try:
            result = await client.embed(model="embed-fake", inputs=TEXTS)
        finally:
            await client.aclose()

    assert result.vectors == [as_float32(fake_embedding(text)) for text in TEXTS]
    assert result.attestation is not None
    assert result.payment is not None
    assert result.payment.success
    assert result.node.tee_id == node.tee_id
