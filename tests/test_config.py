"""Bad settings stop `twin` with one line naming the variable and exit status 2."""

from __future__ import annotations

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
