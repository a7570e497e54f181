"""The one chain object the rest of the app uses: ``chain = await connect_chain(settings)``.

Every mode speaks JSON-RPC over HTTP. Without ``TWIN_CHAIN_RPC_URL`` it joins (or starts) the
embedded anvil node, deploying the contracts on its first start. With it, it connects to that
endpoint and checks that each configured address holds exactly the committed contract; anything
wrong stops startup with one ``ChainError`` line::

    chain = await connect_chain(settings)
    supply = await chain.twin_keys.functions.keysSupply(avatar_id).call()
    ...
    await chain.close()
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, TypedDict, cast

import structlog
from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils import is_address, to_checksum_address
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.contract import AsyncContract
from web3.types import RPCEndpoint

from app.chain.anvil import NodeError
from app.chain.artifacts import load_artifact
from app.chain.deploy import ContractAddresses
from app.chain.embedded import EmbeddedChain
from app.chain.watch import ChainWatch
from app.config import Settings, redact
from app.errors import Unavailable

log = structlog.get_logger()

CHAIN_CLOCK_REFRESH_S = 1.0
RPC_CONNECTIONS = 64
# web3 asks for the chain id before every call and transaction it validates; it never changes.
CHAIN_ID_CACHED: dict[str, Any] = {"cache_allowed_requests": True, "cacheable_requests": {"eth_chainId"}}


class ChainError(Exception):
    """The chain is unreachable or misconfigured; the message is one line naming the cause."""


class ChainUnavailable(Unavailable):
    """A chain call found the node down or stalled past its deadline (answered 503 to clients)."""

    code = "chain_unavailable"


class KeepAliveHTTPProvider(AsyncHTTPProvider):
    """web3's HTTP provider with pooled keep-alive connections (its default opens one per call) and
    no silent retries: a call that finds the chain stalled fails after ``timeout_s`` (connect and read),
    or as soon as its :class:`ChainWatch` sees the node stalled, and the caller decides what to tell its
    user."""

    def __init__(self, url: str, timeout_s: float) -> None:
        super().__init__(
            url,
            request_kwargs={"timeout": ClientTimeout(total=timeout_s)},
            exception_retry_configuration=None,
            **CHAIN_ID_CACHED,
        )
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self.watch = ChainWatch(ChainUnavailable)

    async def _make_request(self, method: RPCEndpoint, request_data: bytes) -> bytes:
        return await self.watch.guard(lambda: self._post(method, request_data))

    async def probe(self) -> None:
        """One ``eth_blockNumber`` past the breaker: the watch's probe."""
        await self._post(RPCEndpoint("eth_blockNumber"), b'{"jsonrpc":"2.0","id":0,"method":"eth_blockNumber"}')

    async def _post(self, method: RPCEndpoint, request_data: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        if self._session_loop is not loop:  # sessions belong to one event loop
            await self.cache_async_session(
                ClientSession(
                    raise_for_status=True, connector=TCPConnector(limit=RPC_CONNECTIONS, keepalive_timeout=30)
                )
            )
            self._session_loop = loop
        try:
            return await super()._make_request(method, request_data)
        except (ClientError, TimeoutError) as error:
            raise ChainUnavailable(f"the chain did not answer {method}: {type(error).__name__}") from error


def rpc_web3(url: str, timeout_s: float) -> AsyncWeb3:
    return AsyncWeb3(KeepAliveHTTPProvider(url, timeout_s))


@dataclass(frozen=True)
class Chain:
    """The async web3 handle and the three contracts, on the embedded chain or a remote one."""

    w3: AsyncWeb3
    chain_id: int
    addresses: ContractAddresses
    twin_keys: AsyncContract
    opg: AsyncContract
    node_registry: AsyncContract
    rpc_url: str
    deployment_block: int = 0
    embedded: EmbeddedChain | None = None
    owns_node: bool = False

    @property
    def is_embedded(self) -> bool:
        return self.embedded is not None

    @property
    def dev_accounts(self) -> list[LocalAccount]:
        """The funded dev accounts of the embedded chain (account 0 owns the contracts); else empty."""
        return self.embedded.accounts if self.embedded else []

    async def close(self) -> None:
        """Leave the embedded node if this chain joined it, then release the RPC connections. The node
        is left before the first await: a ^C cancels what follows, and the node must still be left."""
        if self.owns_node and self.embedded is not None:
            self.embedded.close()
        await self.w3.provider.disconnect()


# (ContractAddresses and Chain field, artifact name, Settings field of the remote address)
_CONTRACTS = (
    ("twin_keys", "TwinKeys", "twin_keys_address"),
    ("opg", "OPG", "opg_address"),
    ("node_registry", "NodeRegistry", "node_registry_address"),
)


class Contracts(TypedDict):
    """The three contracts, by Chain field name."""

    twin_keys: AsyncContract
    opg: AsyncContract
    node_registry: AsyncContract


def contracts_at(w3: AsyncWeb3, addresses: ContractAddresses) -> Contracts:
    """The three contracts at ``addresses``."""
    return cast(
        Contracts,
        {
            field: w3.eth.contract(address=getattr(addresses, field), abi=load_artifact(name).abi)
            for field, name, _ in _CONTRACTS
        },
    )


def chain_from_embedded(embedded: EmbeddedChain, *, timeout_s: float = 5.0, owns_node: bool = False) -> Chain:
    """A Chain over a running embedded chain (tests share one per session)."""
    w3 = rpc_web3(embedded.url, timeout_s)
    return Chain(
        w3=w3,
        chain_id=embedded.deployment.chain_id,
        addresses=embedded.addresses,
        rpc_url=embedded.url,
        deployment_block=embedded.deployment.block,
        embedded=embedded,
        owns_node=owns_node,
        **contracts_at(w3, embedded.addresses),
    )


async def connect_chain(settings: Settings, *, genesis_timestamp: int | None = None) -> Chain:
    """The embedded chain when TWIN_CHAIN_RPC_URL is unset, else the configured, verified remote one.
    ``genesis_timestamp`` dates an embedded chain that starts without saved state."""
    if not settings.chain_rpc_url:
        try:
            embedded = await asyncio.to_thread(EmbeddedChain.start, settings, genesis_timestamp)
        except NodeError as error:
            raise ChainError(f"embedded chain: {error}") from None
        return chain_from_embedded(embedded, timeout_s=settings.chain_rpc_timeout_s, owns_node=True)
    addresses = configured_addresses(settings)
    url = settings.chain_rpc_url
    if not url.startswith(("http://", "https://")):
        raise ChainError(f"TWIN_CHAIN_RPC_URL: must be an http:// or https:// URL (got {url!r})")
    w3 = rpc_web3(url, settings.chain_rpc_timeout_s)
    try:
        chain_id = await w3.eth.chain_id
        await verify_code(w3, addresses)
    except ChainError:
        await w3.provider.disconnect()
        raise
    except Exception as error:  # noqa: BLE001 - any transport or JSON-RPC failure means "unreachable"
        await w3.provider.disconnect()
        raise ChainError(redact(f"TWIN_CHAIN_RPC_URL: cannot reach {url}: {type(error).__name__}: {error}")) from None
    return Chain(
        w3=w3,
        chain_id=chain_id,
        addresses=addresses,
        rpc_url=url,
        deployment_block=settings.chain_deployment_block,
        **contracts_at(w3, addresses),
    )


def configured_addresses(settings: Settings) -> ContractAddresses:
    """The three TWIN_*_ADDRESS settings, present and well-formed, else ChainError."""
    found: dict[str, ChecksumAddress] = {}
    for field, _, setting in _CONTRACTS:
        value: Any = getattr(settings, setting)
        variable = f"TWIN_{setting.upper()}"
        if not value:
            raise ChainError(f"{variable}: required with TWIN_CHAIN_RPC_URL")
        if not is_address(value):
            raise ChainError(f"{variable}: not an address (got {value!r})")
        found[field] = to_checksum_address(value)
    return ContractAddresses(**found)


async def verify_code(w3: AsyncWeb3, addresses: ContractAddresses) -> None:
    """Check each address holds the committed runtime code (immutables masked), else ChainError."""
    for field, name, setting in _CONTRACTS:
        address = getattr(addresses, field)
        artifact = load_artifact(name)
        code = bytes(await w3.eth.get_code(address))
        if not artifact.runtime_code_matches(code):
            found = "no contract" if not code else "a different contract"
            raise ChainError(
                f"TWIN_{setting.upper()}: {address} holds {found}, not contracts/build/{artifact.name}.json"
            )


class ChainClock:
    """The chain's clock: the latest block's timestamp, which contracts check deadlines against.

    It can run ahead of this machine's: the embedded chain mines a block per transaction, each at
    least a second after the last, so above one transaction a second its clock pulls ahead (a
    public chain's stays within seconds of real time). The lead is read at most once a second."""

    def __init__(self, w3: AsyncWeb3) -> None:
        self._w3 = w3
        self._lead = 0
        self._read_at = float("-inf")

    async def lead(self) -> int:
        """Seconds the chain's clock is ahead of this machine's (0 when it is not). A chain that does
        not answer leaves the last reading: the calls that need the chain report the outage."""
        if time.monotonic() - self._read_at >= CHAIN_CLOCK_REFRESH_S:
            self._read_at = time.monotonic()  # before the await: concurrent callers share one read
            try:
                latest = await self._w3.eth.get_block("latest")
            except Exception as error:  # noqa: BLE001 - any failure to read means "not known now"
                log.warning("chain_clock_unread", error=repr(error))
            else:
                self._lead = max(0, int(latest["timestamp"]) - int(time.time()))
        return self._lead

    async def now(self) -> int:
        return int(time.time()) + await self.lead()


async def watch_chain(chain: Chain, settings: Settings) -> None:
    """Probe the node for stalls while the app runs (a lifespan task; see :mod:`app.chain.watch`)."""
    provider = chain.w3.provider
    assert isinstance(provider, KeepAliveHTTPProvider)
    await provider.watch.run(
        provider.probe, interval_s=settings.chain_probe_interval_s, timeout_s=settings.chain_stall_timeout_s
    )


def chain_watch(chain: Chain) -> ChainWatch | None:
    """The chain's stall watch, when its provider has one (every Chain this module builds does)."""
    provider = chain.w3.provider
    return provider.watch if isinstance(provider, KeepAliveHTTPProvider) else None
