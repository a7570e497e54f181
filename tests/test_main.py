"""The backend as `create_app()` wires it: on the embedded default it reaches its in-process
proxy node over HTTP semantics and gets paid, attested replies from the offline model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.chain.client import Chain
from app.proxy.accounts import node_payment_account
from app.proxy.config import load_proxy_settings
from tests.helpers import env_without_twin_settings


async def opg_balance(chain: Chain, address: str) -> int:
    return await chain.opg.functions.balanceOf(address).call()


async def test_backend_gets_a_paid_attested_reply(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain
) -> None:
    proxy_settings = load_proxy_settings()
    node_address = node_payment_account(proxy_settings, chain).address
    price = proxy_settings.models["twin-offline-demo"].price_wei
    before = await opg_balance(chain, node_address)

    result = await app.state.services.proxy_client.chat(
        model="twin-offline-demo",
        messages=[
            {"role": "system", "content": "You are Ada, a patient maths tutor."},
            {"role": "user", "content": "What is a prime?"},
        ],
    )

    assert result.text
    assert "offline" in result.model
    assert result.attestation is not None
    assert result.attestation.tee_id == result.node.tee_id
    assert result.payment is not None
    assert result.payment.success
    assert await opg_balance(chain, node_address) == before + price
    assert result.usage is not None
    assert result.usage["completion_tokens"] > 0


LOG_LINES = """
import logging, structlog
from app.main import create_app
create_app()
logging.getLogger("httpx").info("library-info-line")
logging.getLogger("x402").warning("library-warning-line")
structlog.get_logger().info("our-info-line")
structlog.get_logger().warning("our-warning-line")
"""


@pytest.mark.parametrize(
    ("level", "shown", "hidden"),
    [
        ("warning", {"library-warning-line", "our-warning-line"}, {"library-info-line", "our-info-line"}),
        ("info", {"library-info-line", "library-warning-line", "our-info-line", "our-warning-line"}, set()),
    ],
)
def test_log_level_applies_to_our_lines_and_the_libraries(
    tmp_path: Path, level: str, shown: set[str], hidden: set[str]
) -> None:
    env = env_without_twin_settings() | {
        "TWIN_LOG_LEVEL": level,
        "TWIN_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/twin.db",
    }
    run = subprocess.run(
        [sys.executable, "-c", LOG_LINES], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    events = {json.loads(line)["event"] for line in (run.stdout + run.stderr).splitlines() if line.startswith("{")}

    assert shown <= events
    assert not hidden & events
