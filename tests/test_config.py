"""Bad settings stop `twin` with one line naming the variable and exit status 2."""

from __future__ import annotations

import json

import pytest

from app.config import Settings
from tests.helpers import run_twin


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("TWIN_DATABASE_URL", "mysql://root@localhost/twin", "scheme must be"),
        ("TWIN_PORT", "70000", "less than or equal to 65535"),
        ("TWIN_PORT", "eighty", "valid integer"),
        ("TWIN_CHAIN_CONFIRMATIONS", "-1", "greater than or equal to 0"),
        ("TWIN_REDIS_URL", "http://127.0.0.1:6379", "scheme must be"),
        ("TWIN_LOG_LEVEL", "loud", "'debug', 'info', 'warning' or 'error'"),
    ],
)
def test_invalid_setting_is_one_line_and_exit_2(variable: str, value: str, reason: str) -> None:
    result = run_twin({variable: value}, "db", "upgrade")

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert reason in lines[0]
    assert "Traceback" not in result.stderr


def test_help_lists_subcommands_without_reading_settings() -> None:
    result = run_twin({"TWIN_PORT": "not-a-port"}, "--help")

    assert result.returncode == 0
    assert "serve" in result.stdout
    assert "db" in result.stdout


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///var/x.db", "sqlite+aiosqlite:///var/x.db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_database_url_gets_the_async_driver(given: str, expected: str) -> None:
    assert Settings(database_url=given).database_url == expected


def test_embedded_sqlite_migrates_itself_and_postgres_does_not() -> None:
    assert Settings(database_url="sqlite:///var/x.db").auto_migrate is True
    assert Settings(database_url="postgresql://u@h/db").auto_migrate is False
    assert Settings(database_url="postgresql://u@h/db", auto_migrate=True).auto_migrate is True


SECRET = "hunter2secret"
ADDRESSES = {
    "TWIN_TWIN_KEYS_ADDRESS": "0x" + "11" * 20,
    "TWIN_OPG_ADDRESS": "0x" + "22" * 20,
    "TWIN_NODE_REGISTRY_ADDRESS": "0x" + "33" * 20,
    "TWIN_PUBLIC_DOMAIN": "twin.example.org",
}


@pytest.mark.parametrize(
    ("variable", "value", "command", "status"),
    [
        ("TWIN_DATABASE_URL", f"mysql://root:{SECRET}@localhost/twin", ("db", "upgrade"), 2),
        ("TWIN_DATABASE_URL", f"mysql://root:p@ss{SECRET}@localhost/twin", ("db", "upgrade"), 2),
        ("TWIN_DATABASE_URL", f"mysql://localhost/twin?user=root&password={SECRET}", ("db", "upgrade"), 2),
        ("TWIN_REDIS_URL", f"http://:{SECRET}@127.0.0.1:6379/0", ("db", "upgrade"), 2),
        ("TWIN_PUBLIC_BASE_URL", f"ftp://admin:{SECRET}@twin.example.org", ("db", "upgrade"), 2),
        ("TWIN_CHAIN_RPC_URL", f"ws://admin:{SECRET}@rpc.example.org", ("serve", "--port", "1"), 1),
        ("TWIN_PROXY_PUBLIC_URL", f"ftp://admin:{SECRET}@node.example.org", ("proxy", "serve"), 2),
        (
            "TWIN_PROXY_UPSTREAMS",
            json.dumps({"own": {"kind": "openai", "base_url": f"ftp://u:{SECRET}@llm.example"}}),
            ("proxy", "serve"),
            2,
        ),
    ],
)
def test_a_bad_url_setting_never_prints_its_password(
    variable: str, value: str, command: tuple[str, ...], status: int
) -> None:
    result = run_twin({variable: value, **(ADDRESSES if variable == "TWIN_CHAIN_RPC_URL" else {})}, *command)

    assert result.returncode == status, result.stderr
    assert variable in result.stderr
    assert SECRET not in result.stderr
    assert "***" in result.stderr
