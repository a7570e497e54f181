"""``twin proxy serve``: a bad TWIN_PROXY_* setting stops it with one line and exit status 2."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from app.chain.embedded import dev_accounts
from app.config import Settings
from tests.helpers import TWIN, env_without_twin_settings, free_port, run_twin, stop, wait_until_ready


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("TWIN_PROXY_PORT", "0", "greater than or equal to 1"),
        ("TWIN_PROXY_MODELS", '{"gpt-4o": {"upstreams": ["nowhere"], "price_wei": 1}}', "unknown upstream 'nowhere'"),
        (
            "TWIN_PROXY_MODELS",
            '{"gpt-4o": {"upstreams": ["openai"], "price_wei": 1}}',
            "OPENAI_API_KEY, which is not set",
        ),
        ("TWIN_PROXY_MODELS", '{"m": {"upstreams": ["offline"], "price_wei": -1}}', "greater than 0"),
        ("TWIN_PROXY_UPSTREAMS", '{"local": {"kind": "vllm"}}', "'openai', 'anthropic', 'gemini' or 'offline'"),
        ("TWIN_PROXY_DEFAULT_VERIFICATION", "maybe", "'none', 'signature' or 'tee'"),
        ("TWIN_PROXY_PAYMENT_PRIVATE_KEY", "0xnotakey", "32-byte hex private key"),
    ],
)
def test_invalid_proxy_setting_is_one_line_and_exit_2(variable: str, value: str, reason: str) -> None:
    result = run_twin({variable: value, "OPENAI_API_KEY": ""}, "proxy", "serve")

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert reason in lines[0]
    assert "Traceback" not in result.stderr


def test_private_keys_are_never_echoed() -> None:
    secret = "0x" + "ab" * 31 + "zz"
    result = run_twin({"TWIN_PROXY_PLATFORM_WALLET_KEY": secret}, "proxy", "serve")

    assert result.returncode == 2
    assert secret not in result.stderr


def test_a_standalone_node_joins_a_backends_chain_from_its_url(tmp_path: Path) -> None:
    backend_port, node_port = free_port(), free_port()
    backend = subprocess.Popen(
        [str(TWIN), "serve", "--port", str(backend_port)],
        text=True,
        env=env_without_twin_settings() | {"TWIN_DATABASE_URL": f"sqlite:///{tmp_path}/t.db"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{backend_port}"
    node = None
    try:
        assert wait_until_ready(base, backend) is not None
        operator = dev_accounts(Settings().chain_dev_mnemonic, 6)[5]
        node = subprocess.Popen(
            [str(TWIN), "proxy", "serve", "--port", str(node_port), "--backend", base],
            text=True,
            env=env_without_twin_settings()
            | {
                "TWIN_PROXY_PAYMENT_PRIVATE_KEY": "0x" + operator.key.hex(),
                "TWIN_PROXY_PLATFORM_WALLET_KEY": "0x" + operator.key.hex(),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        endpoint = f"http://127.0.0.1:{node_port}"
        deadline = time.monotonic() + 60
        while endpoint not in {row["endpoint"] for row in httpx.get(f"{base}/api/nodes").json()}:
            assert node.poll() is None, node.stdout.read() if node.stdout else ""
            assert time.monotonic() < deadline, "the node never registered on the backend's chain"
            time.sleep(0.3)
        listed = {row["endpoint"]: row for row in httpx.get(f"{base}/api/nodes").json()}[endpoint]
        assert listed["payment_address"] == operator.address
        assert listed["healthy"] is True
    finally:
        if node is not None:
            stop(node)
        stop(backend)


def test_a_backend_that_does_not_answer_is_one_line_and_exit_1() -> None:
    result = run_twin({}, "proxy", "serve", "--backend", "http://127.0.0.1:9")

    assert result.returncode == 1
    assert "cannot read the chain from http://127.0.0.1:9/api/chain" in result.stderr
    assert "Traceback" not in result.stderr
