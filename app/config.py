"""Settings from the environment (``TWIN_*``), validated once at start.

Every setting has a default for the embedded mode, so ``twin serve`` runs with no
configuration at all. ``get_settings()`` is cached; tests set the environment and call
``get_settings.cache_clear()`` before building an app.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.resources import DEFAULT_NODE_MODULES_DIR, DEFAULT_VAR_DIR

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
    database_url: str = f"sqlite+aiosqlite:///{DEFAULT_VAR_DIR / 'twin.db'}"
    database_echo: bool = False
    database_pool_size: int = Field(default=10, ge=0, le=1000)
    auto_migrate: bool | None = Field(default=None, validate_default=True)
    redis_url: str | None = None
    # Prefix of every Redis key this deployment writes, so several deployments can share one Redis.
    redis_namespace: str = Field(default="twin", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    # Origins besides the service's own that may call it from a browser (empty: same-origin only).
    cors_origins: list[str] = []
    public_domain: str | None = None
    public_base_url: str | None = None
    avatar_launch_ttl_s: int = Field(default=86_400, ge=60, le=365 * 86_400)
    session_secure_cookie: bool = False

    # Chain: empty RPC URL means the embedded chain, an anvil node under chain_state_dir with the
    # contracts deployed on its first start. RPC calls get chain_rpc_timeout_s each.
    chain_rpc_url: str | None = None
    chain_rpc_timeout_s: float = Field(default=5.0, gt=0, le=300)
    # The stall probe: an eth_blockNumber every chain_probe_interval_s (0: no probe); one unanswered
    # within chain_stall_timeout_s marks the node stalled, and every chain call fails at once (503).
    chain_probe_interval_s: float = Field(default=0.5, ge=0, le=60)
    chain_stall_timeout_s: float = Field(default=1.0, gt=0, le=60)
    chain_state_dir: Path = DEFAULT_VAR_DIR / "chain"
    # npm packages the app runs or serves: anvil, solc-js and OpenZeppelin (contract builds), ethers, uPlot.
    node_modules_dir: Path = DEFAULT_NODE_MODULES_DIR
    chain_node_port: int = Field(default=0, ge=0, le=65535)
    chain_id: int = Field(default=31337, ge=1, le=2**53)
    # An L2-like network fee: 0.01 gwei per gas, held there (anvil would let it decay block by block).
    chain_base_fee_wei: int = Field(default=10_000_000, ge=0, le=10**15)
    chain_state_interval_s: int = Field(default=2, ge=1, le=3600)
    twin_keys_address: str | None = None
    opg_address: str | None = None
    node_registry_address: str | None = None
    # The block that deployed the contracts (with TWIN_CHAIN_RPC_URL): the indexer starts there.
    chain_deployment_block: int = Field(default=0, ge=0)
    chain_confirmations: int = Field(default=0, ge=0, le=1000)
    # How often the indexer polls the chain; 0 runs no indexer in this process.
    indexer_poll_s: float = Field(default=1.0, ge=0, le=3600)
    # Catching up from far behind: blocks per eth_getLogs range, and at most this many blocks a second,
    # so that a cold worker cannot starve the node or its peers.
    indexer_batch_blocks: int = Field(default=2_000, ge=1, le=100_000)
    indexer_max_blocks_per_s: int = Field(default=50_000, ge=1)
    # One worker leads the singleton work (indexer, autoscaler): it holds a lease of leader_lease_s,
    # renewed every third of it, and the others take over within it when the leader dies. The lease
    # is in Redis with TWIN_REDIS_URL, else a file lock (by default beside the SQLite database).
    leader_lease_s: float = Field(default=6.0, ge=1, le=600)
    leader_lock_file: Path | None = None
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
    # Chat websockets one session, and one client address, may hold open at once in this process.
    chat_max_sockets_per_session: int = Field(default=8, ge=1, le=10_000)
    chat_max_sockets_per_address: int = Field(default=64, ge=1, le=1_000_000)
    # Seconds a request's whole body may take to arrive (`twin serve`, `twin proxy serve`): a client
    # announcing more than it sends gets 408 instead of holding its connection.
    body_read_timeout_s: float = Field(default=15.0, gt=0, le=3_600)
    # Admission: streams one inference node serves at once (capacity = nodes × this); fans waiting
    # beyond capacity before new messages are refused; keys that put a holder in the priority band
    # after the creator; a fan's burst of messages (then this many per minute); how long tokens
    # served to a fan count against their place in the queue (half-life).
    chat_streams_per_node: int = Field(default=8, ge=1, le=10_000)
    chat_max_waiting: int = Field(default=1_000, ge=1, le=1_000_000)
    chat_large_holder_keys: int = Field(default=10, ge=1)
    chat_messages_per_minute: int = Field(default=10, ge=1, le=60_000)
    chat_fairness_half_life_s: float = Field(default=600.0, gt=0, le=86_400)
    # With Redis: a stream slot or a waiting ticket is leased for this long and renewed by its worker's
    # heartbeat (a third of it), so what a dead worker held returns to the others this long after.
    # Where each turn's end (a paid reply above all) is written ahead of the database, on this machine,
    # and how often what the database refused is tried again.
    chat_journal_dir: Path = DEFAULT_VAR_DIR / "journal"
    chat_journal_replay_s: float = Field(default=2.0, gt=0, le=3_600)
    chat_slot_lease_s: float = Field(default=5.0, gt=3, le=3_600)
    # Memory (app/memory): tokens of remembered facts added after the persona (0: no memory at all); the
    # half-life of a memory's strength since its last use; the strength below which it is forgotten; the
    # most memories one fan's thread with an avatar keeps (the weakest go first); the deadline of one
    # extraction call; how long a thread stays quiet before what the fan said since its last extraction is
    # extracted (in one call); seconds before a failed extraction is tried again (doubling each time; 0: no
    # retry loop in this process) and how many tries it gets.
    memory_token_budget: int = Field(default=200, ge=0, le=100_000)
    memory_half_life_s: float = Field(default=30 * 86_400.0, gt=0, le=100 * 365 * 86_400.0)
    memory_forget_threshold: float = Field(default=0.1, gt=0, lt=1)
    memory_max_per_thread: int = Field(default=100, ge=1, le=10_000)
    memory_extraction_timeout_s: float = Field(default=30.0, gt=0, le=600)
    memory_extract_after_s: float = Field(default=5.0, ge=0, le=3_600)
    memory_retry_s: float = Field(default=60.0, ge=0, le=86_400)
    memory_extraction_attempts: int = Field(default=5, ge=1, le=100)
    # Embeddings for memory (off when empty): the model a node serves at /v1/embeddings; the cosine
    # similarity below which a memory counts as unrelated to the message; the deadline of embedding one
    # message before a reply (past it, or on any failure, retrieval uses full-text search alone).
    memory_embedding_model: str = Field(default="", max_length=128)
    memory_embedding_min_similarity: float = Field(default=0.3, ge=0, lt=1)
    memory_embedding_timeout_s: float = Field(default=2.0, gt=0, le=60)
    # Autoscale: seconds between forecasts (0 runs none in this process); spare capacity asked for
    # on top of the forecast; bounds on the nodes asked for; seconds from asking for a node to its
    # first stream (the forecast's horizon); how long a higher count is kept before scaling down.
    autoscale_tick_s: float = Field(default=5.0, ge=0, le=3600)
    autoscale_headroom: float = Field(default=0.2, ge=0, le=10)
    autoscale_min_nodes: int = Field(default=1, ge=0, le=10_000)
    autoscale_max_nodes: int = Field(default=100, ge=1, le=100_000)
    autoscale_cold_start_s: float = Field(default=120.0, gt=0, le=3600)
    autoscale_stabilization_s: float = Field(default=300.0, gt=0, le=86_400)
    # The first start of an empty embedded world builds a demo world (avatars, past trades, chats).
    demo_world: bool = True

    # Reviews: how far a signed review's time may be from now (either way); the Bayesian prior every
    # avatar's rating starts from (its mean, and how many reviews it weighs as); review writes a client
    # may make per minute.
    review_signature_window_s: int = Field(default=600, ge=10, le=86_400)
    review_prior_mean: float = Field(default=3.0, ge=1, le=5)
    review_prior_weight: int = Field(default=5, ge=0, le=10_000)
    review_writes_per_minute: int = Field(default=20, ge=1, le=10_000)
    # Network usage: seconds a computed /api/network/usage answer is served again (0: computed each time).
    network_usage_cache_s: int = Field(default=15, ge=0, le=3600)

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

    @field_validator("public_base_url")
    @classmethod
    def _check_public_base_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value or None

    @field_validator("autoscale_max_nodes")
    @classmethod
    def _check_max_nodes(cls, value: int, info: ValidationInfo) -> int:
        if value < info.data.get("autoscale_min_nodes", 0):
            raise ValueError("must be at least TWIN_AUTOSCALE_MIN_NODES")
        return value

    @field_validator("autoscale_stabilization_s")
    @classmethod
    def _check_stabilization(cls, value: float, info: ValidationInfo) -> float:
        """Nodes that just joined must not be sent away by the lull before the demand they came for."""
        if value <= info.data.get("autoscale_cold_start_s", 0):
            raise ValueError("must exceed TWIN_AUTOSCALE_COLD_START_S")
        return value

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


# Credentials a URL may carry: user:password@ (the password up to the last @ before the host), and
# query parameters such as asyncpg's ?password=.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:'\"]*):[^/\s'\"]*@")
_QUERY_SECRET = re.compile(r"(?i)(?P<head>[?&;](?:password|passwd|pwd|pass|secret|token|api[_-]?key|key)=)[^&;\s'\"]*")
# Settings whose values are never echoed at all.
_SECRET_WORDS = ("KEY", "SECRET", "PASSWORD", "TOKEN", "MNEMONIC")


def redact(text: str) -> str:
    """``text`` with the passwords and secret query parameters of the URLs in it replaced by ***."""
    return _QUERY_SECRET.sub(r"\g<head>***", _URL_PASSWORD.sub(r"\g<head>:***@", text))


def describe_settings_error(error: ValidationError, prefix: str) -> str:
    """One line naming the variable (``prefix`` + field), where in its JSON, what is wrong and, for a
    scalar that is no secret, the value read, with any credentials in it redacted. Both apps' loaders
    use it (TWIN_ and TWIN_PROXY_)."""
    first = error.errors()[0]
    location = [str(part) for part in first["loc"]]
    variable = f"{prefix}{location[0].upper()}" if location else f"{prefix}?"
    where = ".".join(location[1:])
    message = first["msg"].removeprefix("Value error, ")
    given = first.get("input")
    secret = any(word in variable for word in _SECRET_WORDS)
    shown = f" (got {given!r})" if isinstance(given, str | int | float) and not secret else ""
    return redact(f"{variable}: {where + ': ' if where else ''}{message}{shown}")[:500]


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_validated(settings_class: type[SettingsT]) -> SettingsT:
    """Read and validate the environment into ``settings_class``; raise ConfigError with one readable line,
    credentials redacted. The one loader of both apps' settings (``TWIN_*`` and ``TWIN_PROXY_*``)."""
    try:
        return settings_class()
    except ValidationError as error:
        raise ConfigError(describe_settings_error(error, settings_class.model_config.get("env_prefix", ""))) from None


def load_settings() -> Settings:
    return load_validated(Settings)


def check_backend_settings(settings: Settings) -> Settings:
    """What the backend (`twin serve`) needs beyond valid values: Sign-In with Ethereum trusts the
    request's Host only on the embedded chain, a development setup; on a real chain it needs the
    domain configured. (A proxy node signs nobody in and does not need it.)"""
    if settings.chain_rpc_url and not settings.public_domain:
        raise ConfigError(
            "TWIN_PUBLIC_DOMAIN: required with TWIN_CHAIN_RPC_URL (the domain sign-in messages must name)"
        )
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
