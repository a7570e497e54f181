"""The backend as `create_app()` wires it: on the embedded default it reaches its in-process
proxy node over HTTP semantics and gets paid, attested replies from the offline model."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.chain.client import Chain
from app.proxy.accounts import node_payment_account
from app.proxy.config import load_proxy_settings


async def opg_balance(chain: Chain, address: str) -> int:
    return await chain.opg.functions.balanceOf(address).call()


async def test_backend_gets_a_paid_attested_reply(client: AsyncTestClient[Litestar], app: Litestar,
                                                  chain: Chain) -> None:
    proxy_settings = load_proxy_settings()
    node_address = node_payment_account(proxy_settings, chain).address
    price = proxy_settings.models["twin-offline-demo"].price_wei
    before = await opg_balance(chain, node_address)

    result = await app.state.proxy_client.chat(model="twin-offline-demo", messages=[
        {"role": "system", "content": "You are Ada, a patient maths tutor."},
        {"role": "user", "content": "What is a prime?"},
    ])

    assert result.text
    assert "offline" in result.model
    assert result.attestation is not None
    assert result.attestation.tee_id == result.node.tee_id
    assert result.payment is not None
    assert result.payment.success
    assert await opg_balance(chain, node_address) == before + price
    assert result.usage is not None
    assert result.usage["completion_tokens"] > 0
