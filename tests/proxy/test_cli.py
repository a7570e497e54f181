"""``twin proxy serve``: a bad TWIN_PROXY_* setting stops it with one line and exit status 2."""

from __future__ import annotations

import pytest

from tests.helpers import run_twin


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("TWIN_PROXY_PORT", "0", "greater than or equal to 1"),
        ("TWIN_PROXY_MODELS", '{"gpt-4o": {"upstreams": ["nowhere"], "price_wei": 1}}', "unknown upstream 'nowhere'"),
        ("TWIN_PROXY_MODELS", '{"gpt-4o": {"upstreams": ["openai"], "price_wei": 1}}',
         "OPENAI_API_KEY, which is not set"),
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
