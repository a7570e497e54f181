"""Settings from the environment (``TWIN_*``), validated once at start.

Every setting has a default for the embedded mode, so ``twin serve`` runs with no
configuration at all. ``get_settings()`` is cached; tests set the environment and call
``get_settings.cache_clear()`` before building an app.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"

_DATABASE_SCHEMES = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


class ConfigError(Exception):
    """A setting has a bad value; the message is one line naming the variable."""


class Settings(BaseSettings):
    """All of Twin market's settings. Field ``foo`` is read from ``TWIN_FOO``."""

    model_config = SettingsConfigDict(env_prefix="TWIN_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    database_url: str = f"sqlite+aiosqlite:///{VAR_DIR / 'twin.db'}"
    database_echo: bool = False
    database_pool_size: int = Field(default=10, ge=0, le=1000)
    auto_migrate: bool | None = Field(default=None, validate_default=True)
    redis_url: str | None = None
    cors_origins: list[str] = ["*"]
    public_domain: str | None = None
    public_base_url: str | None = None
    session_secure_cookie: bool = False

    # Chain: empty RPC URL means the embedded in-process EVM with contracts deployed at start.
    chain_rpc_url: str | None = None
    twin_keys_address: str | None = None
    opg_address: str | None = None
    node_registry_address: str | None = None
    chain_confirmations: int = Field(default=0, ge=0, le=1000)
    # How often the indexer polls the chain; 0 runs no indexer in this process.
    indexer_poll_s: float = Field(default=1.0, ge=0, le=3600)
    # TwinKeys constructor arguments for the embedded chain and `twin contracts deploy`: key i costs
    # i² · 1e18 / divisor wei; fees are parts of 1e18 of the curve price, capped on-chain at 5 %.
    chain_curve_divisor: int = Field(default=1_600_000, ge=1)
    chain_protocol_fee_percent: int = Field(default=5 * 10**16, ge=0, le=5 * 10**16)
    chain_creator_fee_percent: int = Field(default=5 * 10**16, ge=0, le=5 * 10**16)
    # The embedded chain's funded dev accounts: m/44'/60'/0'/0/i of this mnemonic (public: dev only).
    chain_dev_mnemonic: str = "test test test test test test test test test test test junk"
    chain_dev_accounts: int = Field(default=10, ge=1, le=100)

    # Chat: how much of a fan's thread goes with each message (estimated as characters / 4), and
    # what one websocket frame and one message may hold.
    chat_history_token_budget: int = Field(default=2_000, ge=0, le=1_000_000)
    chat_max_frame_bytes: int = Field(default=16_384, ge=256, le=1_048_576)
    chat_max_message_chars: int = Field(default=4_000, ge=1, le=100_000)

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in _DATABASE_SCHEMES:
            raise ValueError("scheme must be sqlite+aiosqlite:// or postgresql+asyncpg://")
        return f"{_DATABASE_SCHEMES[scheme]}://{rest}"

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("scheme must be redis://, rediss:// or unix://")
        return value or None

    @field_validator("auto_migrate")
    @classmethod
    def _default_auto_migrate(cls, value: bool | None, info: ValidationInfo) -> bool:
        """The embedded SQLite file migrates itself at start; PostgreSQL runs `twin db upgrade`."""
        if value is not None:
            return value
        return str(info.data.get("database_url", "")).startswith("sqlite")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "?"
    message = first["msg"].removeprefix("Value error, ")
    return f"TWIN_{field.upper()}: {message} (got {first.get('input')!r})"


def load_settings() -> Settings:
    """Read and validate the environment; raise ConfigError with one readable line."""
    try:
        return Settings()
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
