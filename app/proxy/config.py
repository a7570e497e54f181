"""Proxy-node settings from the environment (``TWIN_PROXY_*``), validated once at start.

Chain settings (RPC URL, contract addresses) stay in :class:`app.config.Settings`; this
class holds only what a node and the backend's proxy client need. Every field has a
default for the embedded mode: one offline demo model, paced like a real one, paid in OPG.

Upstream API keys are never settings themselves: an upstream names the environment
variable that holds its key (``api_key_env``), the node reads it once at start and keeps
it out of every log line, error message and response.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.config import load_validated
from app.proxy.protocol import VerificationLevel

OFFLINE_DEMO_MODEL = "twin-offline-demo"

UpstreamKind = Literal["openai", "anthropic", "gemini", "offline"]

# Where each kind of upstream lives unless an upstream says otherwise.
_DEFAULT_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
}


class UpstreamSettings(BaseModel):
    """One provider endpoint: its wire format, where it is, and which variable holds its key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: UpstreamKind
    base_url: str | None = None
    api_key_env: str | None = None

    @model_validator(mode="after")
    def _fill_base_url(self) -> UpstreamSettings:
        if self.kind != "offline" and self.base_url is None:
            object.__setattr__(self, "base_url", _DEFAULT_BASE_URLS[self.kind])
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https:// (got {self.base_url!r})")
        return self

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class UpstreamTarget(BaseModel):
    """One entry of a model's failover list: which upstream, and the model name it knows."""

    model_config = ConfigDict(frozen=True)

    upstream: str
    model: str


class ModelRoute(BaseModel):
    """A model the node serves: upstreams tried in order, and the price of one request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # "name" or "name:upstream-model-name"; the first that answers before its first token wins.
    upstreams: list[str] = Field(min_length=1)
    price_wei: int = Field(gt=0)


def _default_upstreams() -> dict[str, UpstreamSettings]:
    return {
        "offline": UpstreamSettings(kind="offline"),
        "openai": UpstreamSettings(kind="openai", api_key_env="OPENAI_API_KEY"),
        "anthropic": UpstreamSettings(kind="anthropic", api_key_env="ANTHROPIC_API_KEY"),
        "google": UpstreamSettings(kind="gemini", api_key_env="GEMINI_API_KEY"),
        "xai": UpstreamSettings(kind="openai", base_url="https://api.x.ai/v1", api_key_env="XAI_API_KEY"),
    }


def _default_models() -> dict[str, ModelRoute]:
    return {OFFLINE_DEMO_MODEL: ModelRoute(upstreams=["offline"], price_wei=10**15)}


class ProxySettings(BaseSettings):
    """Field ``foo`` is read from ``TWIN_PROXY_FOO``; dicts and lists are JSON."""

    model_config = SettingsConfigDict(env_prefix="TWIN_PROXY_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8402, ge=1, le=65535)
    public_url: str | None = None

    upstreams: dict[str, UpstreamSettings] = Field(default_factory=_default_upstreams)
    models: dict[str, ModelRoute] = Field(default_factory=_default_models)
    offline_tokens_per_second: float = Field(default=30.0, ge=0, le=100_000)

    capacity: int = Field(default=64, ge=1, le=100_000)
    max_request_bytes: int = Field(default=1_000_000, ge=1_024, le=100_000_000)
    max_completion_tokens: int = Field(default=4_096, ge=1, le=1_000_000)
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=600)
    first_token_timeout_seconds: float = Field(default=60.0, gt=0, le=3_600)
    idle_timeout_seconds: float = Field(default=30.0, gt=0, le=3_600)

    default_verification: VerificationLevel = VerificationLevel.signature

    payment_private_key: SecretStr | None = None
    payment_timeout_seconds: int = Field(default=300, ge=10, le=86_400)
    settle_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    heartbeat_seconds: float = Field(default=30.0, gt=0, le=86_400)

    platform_wallet_key: SecretStr | None = None
    max_price_wei: int = Field(default=10**18, gt=0)
    node_stale_after_seconds: float = Field(default=120.0, gt=0, le=86_400)
    node_cooldown_seconds: float = Field(default=15.0, ge=0, le=3_600)
    # Nodes whose code measurement is listed are trusted without the registry owner's approval.
    trusted_measurements: list[str] = []
    # Route to endpoints on loopback, private or link-local addresses (and over plain http)?
    # None: only on the embedded chain.
    allow_private_endpoints: bool | None = None

    cors_origins: list[str] = ["*"]

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else None

    @field_validator("trusted_measurements")
    @classmethod
    def _check_measurements(cls, values: list[str]) -> list[str]:
        for value in values:
            digits = value.removeprefix("0x")
            if (
                not value.startswith("0x")
                or len(digits) != 64
                or any(c not in "0123456789abcdefABCDEF" for c in digits)
            ):
                raise ValueError(f"each must be a 0x-prefixed 32-byte hex measurement (got {value[:80]!r})")
        return [value.lower() for value in values]

    @field_validator("payment_private_key", "platform_wallet_key")
    @classmethod
    def _check_private_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        digits = value.get_secret_value().removeprefix("0x")
        if len(digits) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise ValueError("must be a 32-byte hex private key")  # never echo the value
        return value

    @field_validator("models")
    @classmethod
    def _check_routes(cls, models: dict[str, ModelRoute], info: ValidationInfo) -> dict[str, ModelRoute]:
        upstreams: dict[str, UpstreamSettings] = info.data.get("upstreams", {})
        for model, route in models.items():
            for entry in route.upstreams:
                name = entry.partition(":")[0]
                upstream = upstreams.get(name)
                if upstream is None:
                    known = ", ".join(sorted(upstreams))
                    raise ValueError(f"{model}: unknown upstream {name!r} (known: {known})")
                if upstream.api_key_env and not upstream.api_key():
                    raise ValueError(
                        f"{model}: upstream {name!r} reads its API key from {upstream.api_key_env}, which is not set"
                    )
        return models

    @property
    def endpoint_url(self) -> str:
        """The URL this node announces in the registry."""
        return self.public_url or f"http://{self.host}:{self.port}"

    @cached_property
    def routes(self) -> dict[str, list[UpstreamTarget]]:
        """Each model's failover list, with the upstream's own model name resolved."""
        return {
            model: [
                UpstreamTarget(upstream=entry.partition(":")[0], model=entry.partition(":")[2] or model)
                for entry in route.upstreams
            ]
            for model, route in self.models.items()
        }


def load_proxy_settings() -> ProxySettings:
    return load_validated(ProxySettings)
