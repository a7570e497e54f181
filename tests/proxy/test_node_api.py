"""The node over real HTTP: the official OpenAI SDK (paying through the official x402 client),
bad input, mid-stream failures, client disconnects, metrics."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from eth_account.signers.local import LocalAccount
from x402.http.clients.httpx import x402AsyncTransport

from app.chain.client import Chain
from app.proxy.verify import Attestation, output_for_hash, verify_reply
from tests.proxy.conftest import PRICE_WEI, eventually, official_x402_client, opg_balance, paid_post
from tests.proxy.fakes import REPLY_TEXT, FakeProviders

MESSAGES = [
    {"role": "system", "content": "You are Ada Lovelace, a mathematician."},
    {"role": "user", "content": "What is an algorithm?"},
]


@pytest.fixture
async def sdk(node_url: str, payer: LocalAccount) -> AsyncIterator[openai.AsyncOpenAI]:
    """The OpenAI SDK, unchanged, over an httpx client that pays 402s with the x402 package."""
    transport = x402AsyncTransport(official_x402_client(payer))
    async with httpx.AsyncClient(transport=transport, timeout=10) as paying_http:
        yield openai.AsyncOpenAI(base_url=f"{node_url}/v1", api_key="unused", http_client=paying_http, max_retries=0)


async def node_key(http: httpx.AsyncClient) -> bytes:
    return base64.b64decode((await http.get("/v1/attestation")).json()["public_key_der_base64"])


async def test_sdk_non_streaming_reply_is_paid_and_attested(sdk: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    raw = await sdk.chat.completions.with_raw_response.create(model="gpt-fake", messages=MESSAGES, temperature=0.2)
    completion = raw.parse()

    assert completion.choices[0].message.content == REPLY_TEXT
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (17, 5)
    settlement = json.loads(base64.b64decode(raw.headers["PAYMENT-RESPONSE"]))
    assert settlement["success"] is True
    assert settlement["amount"] == str(PRICE_WEI)
    fields = completion.model_dump()
    verify_reply(
        body={"model": "gpt-fake", "messages": MESSAGES, "temperature": 0.2},
        output=REPLY_TEXT,
        attestation=Attestation.from_reply(fields),
        public_key=await node_key(http),
    )


async def test_sdk_streaming_reply_ends_with_attested_final_chunk(
    sdk: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    stream = await sdk.chat.completions.create(
        model="claude-fake", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = chunks[-1].model_dump()

    assert text == REPLY_TEXT
    assert chunks[0].choices[0].delta.role == "assistant"
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["usage"] == {
        "prompt_tokens": 17,
        "completion_tokens": 5,
        "total_tokens": 22,
        "completion_tokens_details": None,
        "prompt_tokens_details": None,
    }
    assert final["payment_response"]["success"] is True
    verify_reply(
        body={"model": "claude-fake", "messages": MESSAGES},
        output=text,
        attestation=Attestation.from_reply(final),
        public_key=await node_key(http),
    )


async def test_sdk_lists_models_with_prices(sdk: openai.AsyncOpenAI) -> None:
    models = {model.id: model.model_dump() async for model in sdk.models.list()}

    assert "twin-offline-demo" in models
    assert models["failover"]["price"]["amount"] == str(PRICE_WEI)


async def test_offline_demo_model_is_named_as_such_in_the_reply(sdk: openai.AsyncOpenAI) -> None:
    completion = await sdk.chat.completions.create(model="twin-offline-demo", messages=MESSAGES)

    assert completion.model == "twin-offline-demo"
    assert "Ada Lovelace" in (completion.choices[0].message.content or "")


async def test_verification_none_attaches_no_attestation(
    http: httpx.AsyncClient, payer: LocalAccount, chain: Chain
) -> None:
    response = await paid_post(
        http, payer, chain, {"model": "gemini-fake", "messages": MESSAGES}, **{"X-Twin-Verification": "none"}
    )

    assert response.status_code == 200
    assert "tee_signature" not in response.json()
    assert response.json()["choices"][0]["message"]["content"] == REPLY_TEXT


async def test_tool_call_reply_is_attested_over_the_tool_calls(
    http: httpx.AsyncClient, payer: LocalAccount, chain: Chain
) -> None:
    body = {"model": "gpt-tools", "messages": MESSAGES, "tools": [{"type": "function", "function": {"name": "lookup"}}]}
    response = await paid_post(http, payer, chain, body)
    reply = response.json()
    calls = reply["choices"][0]["message"]["tool_calls"]

    assert reply["choices"][0]["finish_reason"] == "tool_calls"
    assert calls == [
        {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "weather"}'}}
    ]
    verify_reply(
        body=body,
        output=output_for_hash("", calls),
        attestation=Attestation.from_reply(reply),
        public_key=await node_key(http),
    )


async def test_failover_happens_inside_the_node(http: httpx.AsyncClient, payer: LocalAccount, chain: Chain) -> None:
    response = await paid_post(http, payer, chain, {"model": "failover", "messages": MESSAGES})

    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == REPLY_TEXT


async def test_all_upstreams_failing_is_502_and_charges_nothing(
    http: httpx.AsyncClient, payer: LocalAccount, chain: Chain
) -> None:
    before = await opg_balance(chain, payer.address)
    response = await paid_post(http, payer, chain, {"model": "all-fail", "messages": MESSAGES})

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unavailable"
    assert await opg_balance(chain, payer.address) == before


@pytest.mark.parametrize("model", ["gpt-midstream", "claude-midstream", "gemini-midstream"])
async def test_mid_stream_error_ends_the_stream_and_charges_nothing(
    http: httpx.AsyncClient, payer: LocalAccount, chain: Chain, model: str
) -> None:
    before = await opg_balance(chain, payer.address)
    response = await paid_post(http, payer, chain, {"model": model, "messages": MESSAGES, "stream": True})
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]

    assert response.status_code == 200
    assert [e["choices"][0]["delta"]["content"] for e in events[:-1]] == ["Hello", " from"]
    assert events[-1]["error"]["code"] == "upstream_failed"
    assert "[DONE]" not in response.text
    assert await opg_balance(chain, payer.address) == before


async def test_mid_stream_error_reaches_the_sdk_as_an_error(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(model="gpt-midstream", messages=MESSAGES, stream=True)

    with pytest.raises(openai.APIError, match="mid-reply"):
        _ = [chunk async for chunk in stream]


async def test_client_disconnect_cancels_the_upstream_and_charges_nothing(
    sdk: openai.AsyncOpenAI,
    http: httpx.AsyncClient,
    fake_upstream: tuple[str, FakeProviders],
    payer: LocalAccount,
    chain: Chain,
) -> None:
    disconnects = fake_upstream[1].disconnects
    before_disconnects = disconnects.count("openai:hang")
    before_balance = await opg_balance(chain, payer.address)
    stream = await sdk.chat.completions.create(model="gpt-hang", messages=MESSAGES, stream=True)
    first = await anext(aiter(stream))
    await stream.close()

    assert first.choices[0].delta.content == "Hello"
    await eventually(lambda: disconnects.count("openai:hang") > before_disconnects)
    for _ in range(100):  # the node finishes its cleanup just after closing the upstream
        if (await http.get("/healthz")).json()["in_flight"] == 0:
            break
        await asyncio.sleep(0.01)
    assert (await http.get("/healthz")).json()["in_flight"] == 0
    assert await opg_balance(chain, payer.address) == before_balance


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (b"{not json", None, "invalid_json"),
        (b"[1, 2]", None, "invalid_json"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "model", "missing_field"),
        (b'{"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}', "model", "model_not_found"),
        (b'{"model": "gpt-fake"}', "messages", "missing_field"),
        (b'{"model": "gpt-fake", "messages": []}', "messages", "invalid_type"),
        (
            b'{"model": "gpt-fake", "messages": [{"role": "wizard", "content": "hi"}]}',
            "messages[0].role",
            "invalid_value",
        ),
        (b'{"model": "gpt-fake", "messages": [{"role": "user", "content": 5}]}', "messages[0].content", "invalid_type"),
        (
            b'{"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}], "max_tokens": -5}',
            "max_tokens",
            "invalid_value",
        ),
        (
            b'{"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}',
            "temperature",
            "invalid_value",
        ),
        (
            b'{"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}',
            "stream",
            "invalid_type",
        ),
        (
            b'{"model": "claude-fake", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "x"}]}',
            "tools",
            "unsupported_value",
        ),
        # Refused before payment: the node could not attest what a search fetched.
        (
            b'{"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}], "web_search": true}',
            "web_search",
            "unsupported_parameter",
        ),
    ],
)
async def test_bad_input_is_400_naming_the_field(
    http: httpx.AsyncClient, body: bytes, param: str | None, code: str
) -> None:
    response = await http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")


async def test_oversize_request_is_400_naming_the_body(http: httpx.AsyncClient) -> None:
    huge = json.dumps({"model": "gpt-fake", "messages": [{"role": "user", "content": "x" * 1_100_000}]})
    response = await http.post("/v1/chat/completions", content=huge, headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "body"


@pytest.mark.parametrize(("level", "code"), [("loud", "invalid_value"), ("tee", "tee_unavailable")])
async def test_verification_levels_the_node_cannot_honour_are_refused(
    http: httpx.AsyncClient, level: str, code: str
) -> None:
    response = await http.post(
        "/v1/chat/completions", json={"model": "gpt-fake", "messages": MESSAGES}, headers={"X-Twin-Verification": level}
    )

    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": response.json()["error"]["message"],
        "type": "invalid_request_error",
        "param": "X-Twin-Verification",
        "code": code,
    }


async def test_unknown_route_keeps_the_openai_error_shape(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/nope")

    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


async def test_metrics_count_requests_tokens_payments_and_errors(
    http: httpx.AsyncClient, payer: LocalAccount, chain: Chain
) -> None:
    await paid_post(http, payer, chain, {"model": "failover", "messages": MESSAGES})
    metrics = (await http.get("/metrics")).text

    assert 'twin_proxy_requests_total{model="failover",outcome="ok"}' in metrics
    assert 'twin_proxy_time_to_first_token_seconds_count{model="failover",upstream="gemini"}' in metrics
    assert 'twin_proxy_tokens_total{kind="completion",model="failover"}' in metrics
    assert 'twin_proxy_upstream_errors_total{phase="before_first_token",upstream="openai"}' in metrics
    assert 'twin_proxy_payments_total{outcome="settled"}' in metrics
    assert "twin_proxy_in_flight_requests" in metrics


async def test_health_and_attestation_documents(http: httpx.AsyncClient, chain: Chain) -> None:
    health = (await http.get("/healthz")).json()
    document = (await http.get("/v1/attestation")).json()

    assert health["status"] == "ok"
    assert document["evidence"]["type"] == "dev"
    assert document["asset"] == chain.addresses.opg
    assert document["network"] == f"eip155:{chain.chain_id}"
    assert document["tee_id"].startswith("0x")
