"""A session chain, fake providers on a real port, and one node (uvicorn on 127.0.0.1) wired to both.

Upstream model names choose the fake's behaviour (see ``fakes.py``); the node's models map onto
them, e.g. ``failover`` tries a failing OpenAI, a failing Anthropic, then a working Gemini.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from x402 import x402Client
from x402.http.utils import decode_payment_required_header, encode_payment_signature_header
from x402.mechanisms.evm.eip712 import build_typed_data_for_signing
from x402.mechanisms.evm.exact import ExactEvmScheme
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.mechanisms.evm.types import ExactEIP3009Authorization, ExactEIP3009Payload
from x402.mechanisms.evm.utils import create_nonce
from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements

from app.chain.client import Chain
from app.proxy.client.client import CHAT_PATH
from app.proxy.config import ProxySettings
from app.proxy.node.app import create_proxy_app
from tests.conftest import connected_chain_of_its_own
from tests.proxy.fakes import FakeProviders, serving

PRICE_WEI = 10**15
FAKE_KEYS = {
    "FAKE_OPENAI_KEY": "sk-fakeopenai-0123456789abcdef",
    "FAKE_ANTHROPIC_KEY": "sk-ant-fake-0123456789abcdef",
    "FAKE_GEMINI_KEY": "AIzaFakeGemini0123456789abcdef",
}
MODEL_ROUTES = {
    "twin-offline-demo": ["offline"],
    "gpt-fake": ["openai:ok"],
    "claude-fake": ["anthropic:ok"],
    "gemini-fake": ["gemini:ok"],
    "gpt-midstream": ["openai:midstream"],
    "claude-midstream": ["anthropic:midstream"],
    "gemini-midstream": ["gemini:midstream"],
    "failover": ["openai:fail", "anthropic:fail", "gemini:ok"],
    "all-fail": ["openai:fail", "anthropic:fail"],
    "gpt-hang": ["openai:hang"],
    "gpt-slow": ["openai:slow", "anthropic:ok"],
    "gpt-tools": ["openai:tools"],
    "embed-fake": ["openai:ok"],
    "embed-failover": ["offline", "anthropic:ok", "openai:fail", "openai:ok"],
}


def node_settings(upstream_url: str, **overrides: Any) -> ProxySettings:
    upstreams = {
        "offline": {"kind": "offline"},
        "openai": {"kind": "openai", "base_url": f"{upstream_url}/v1", "api_key_env": "FAKE_OPENAI_KEY"},
        "anthropic": {"kind": "anthropic", "base_url": upstream_url, "api_key_env": "FAKE_ANTHROPIC_KEY"},
        "gemini": {"kind": "gemini", "base_url": upstream_url, "api_key_env": "FAKE_GEMINI_KEY"},
    }
    models = {model: {"upstreams": routes, "price_wei": PRICE_WEI} for model, routes in MODEL_ROUTES.items()}
    defaults: dict[str, Any] = {
        "offline_tokens_per_second": 0,
        "first_token_timeout_seconds": 1.0,
        "idle_timeout_seconds": 1.0,
        "heartbeat_seconds": 3600,
    }
    return ProxySettings(upstreams=upstreams, models=models, **(defaults | overrides))


@pytest.fixture(scope="session", autouse=True)
def _fake_api_keys() -> None:
    os.environ.update(FAKE_KEYS)


@pytest.fixture(scope="session")
async def chain(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Chain]:
    """A node of the proxy tests' own: the nodes they register stay out of other tests' registry."""
    async with connected_chain_of_its_own(tmp_path_factory) as chain:
        yield chain


@pytest.fixture(scope="session")
async def fake_upstream() -> AsyncIterator[tuple[str, FakeProviders]]:
    providers = FakeProviders()
    async with serving(lambda _: providers) as url:
        yield url, providers


@pytest.fixture(scope="session")
async def node_url(chain: Chain, fake_upstream: tuple[str, FakeProviders]) -> AsyncIterator[str]:
    settings = node_settings(fake_upstream[0])
    async with serving(lambda url: create_proxy_app(settings, chain, endpoint=url)) as url:
        yield url


@pytest.fixture
async def http(node_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=node_url, timeout=10) as client:
        yield client


@pytest.fixture(scope="session")
def payer(chain: Chain) -> LocalAccount:
    return chain.dev_accounts[1]


def official_x402_client(account: LocalAccount) -> x402Client:
    """The x402 package's own client, allowed to pay in OPG (not one of its default assets)."""
    client = x402Client()
    client.register("eip155:*", ExactEvmScheme(signer=account))
    client.set_spend_controls({"allowed_assets": True, "max_amount_per_payment": False})
    return client


async def terms(http: httpx.AsyncClient, body: dict[str, Any], path: str = CHAT_PATH) -> PaymentRequired:
    """The node's 402 terms for ``body``."""
    response = await http.post(path, json=body)
    assert response.status_code == 402
    required = decode_payment_required_header(response.headers["PAYMENT-REQUIRED"])
    assert isinstance(required, PaymentRequired)
    return required


def authorization_header(
    account: LocalAccount,
    chain: Chain,
    requirements: PaymentRequirements,
    *,
    signed_for: PaymentRequirements | None = None,
    valid_after: int = 0,
    valid_before: int | None = None,
    nonce: str | None = None,
    claimed: PaymentRequirements | None = None,
) -> dict[str, str]:
    """A ``PAYMENT-SIGNATURE`` header signing ``signed_for`` (default: the real terms) with any window.

    ``claimed`` is what the payload says it accepted (default: what was signed).
    """
    signed_for = signed_for or requirements
    authorization = ExactEIP3009Authorization(
        from_address=account.address,
        to=signed_for.pay_to,
        value=signed_for.amount,
        valid_after=str(valid_after),
        valid_before=str(valid_before or int(time.time()) + 300),
        nonce=nonce or create_nonce(),
    )
    chain_id = int(signed_for.network.partition(":")[2])
    typed = build_typed_data_for_signing(
        authorization, chain_id, signed_for.asset, signed_for.extra["name"], signed_for.extra["version"]
    )
    signature = EthAccountSigner(account).sign_typed_data(*typed)
    payload = PaymentPayload(
        payload=ExactEIP3009Payload(authorization, "0x" + signature.hex()).to_dict(), accepted=claimed or signed_for
    )
    return {"PAYMENT-SIGNATURE": encode_payment_signature_header(payload)}


async def paid_post(
    http: httpx.AsyncClient,
    account: LocalAccount,
    chain: Chain,
    body: dict[str, Any],
    path: str = CHAT_PATH,
    **headers: str,
) -> httpx.Response:
    required = await terms(http, body, path)
    return await http.post(path, json=body, headers=authorization_header(account, chain, required.accepts[0]) | headers)


async def opg_balance(chain: Chain, address: str) -> int:
    return await chain.opg.functions.balanceOf(address).call()


def registry_owner_sends(chain: Chain, function: str, *args: Any) -> None:
    """A NodeRegistry transaction from its owner, dev account 0 (approveNode, revokeNode, removeNode)."""
    from app.chain.deploy import send_transaction

    assert chain.embedded is not None
    data = chain.node_registry.encode_abi(function, args=list(args))
    send_transaction(chain.embedded.w3, chain.embedded.accounts[0], {"to": chain.node_registry.address, "data": data})


def approve_node(chain: Chain, tee_id: str) -> None:
    registry_owner_sends(chain, "approveNode", bytes.fromhex(tee_id.removeprefix("0x")))


async def eventually(predicate: Any, within_seconds: float = 5.0) -> None:
    """Wait until ``predicate()`` holds (async work elsewhere in the loop must catch up)."""
    deadline = time.monotonic() + within_seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for the condition"
        await asyncio.sleep(0.01)
