"""What the chain domain offers other code: the facts a wallet or a node needs to join, and the
embedded chain's faucet (ETH through the node's dev method, OPG minted by the deployer)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
import msgspec
import structlog
from msgspec import Struct

from app.chain.client import Chain
from app.chain.transactions import GAS_LIMITS, sender_for
from app.config import Settings

log = structlog.get_logger()

FAUCET_ETH = 100 * 10**18
FAUCET_OPG = 10_000 * 10**18
FAUCET_WAIT_S = 30.0


class ContractsOut(Struct):
    twin_keys: str
    opg: str
    node_registry: str


class ChainFacts(Struct):
    chain_id: int
    embedded: bool
    rpc_url: str
    contracts: ContractsOut
    deployment_block: int
    state_lost: bool


def chain_facts(chain: Chain, public_base_url: str) -> ChainFacts:
    """The chain as a browser wallet or a standalone node joins it: through this service's /rpc."""
    addresses = chain.addresses
    return ChainFacts(
        chain_id=chain.chain_id,
        embedded=chain.is_embedded,
        rpc_url=f"{public_base_url.rstrip('/')}/rpc",
        contracts=ContractsOut(twin_keys=addresses.twin_keys, opg=addresses.opg, node_registry=addresses.node_registry),
        deployment_block=chain.deployment_block,
        state_lost=bool(chain.embedded and chain.embedded.state_lost),
    )


class ChainFactsError(Exception):
    """The backend's chain facts could not be read; the message says why in one line."""


FACTS_TIMEOUT_S = 10.0


def settings_joining(settings: Settings, backend_url: str) -> Settings:
    """``settings`` pointed at the chain a backend runs on, as its ``GET /api/chain`` describes it."""
    url = f"{backend_url.rstrip('/')}/api/chain"
    try:
        response = httpx.get(url, timeout=FACTS_TIMEOUT_S)
        response.raise_for_status()
        facts = msgspec.json.decode(response.content, type=ChainFacts)
    except (httpx.HTTPError, msgspec.DecodeError, msgspec.ValidationError) as error:
        raise ChainFactsError(f"cannot read the chain from {url}: {type(error).__name__}: {error}"[:300]) from None
    return settings.model_copy(
        update={
            "chain_rpc_url": facts.rpc_url,
            "twin_keys_address": facts.contracts.twin_keys,
            "opg_address": facts.contracts.opg,
            "node_registry_address": facts.contracts.node_registry,
            "chain_deployment_block": facts.deployment_block,
        }
    )


@dataclass(frozen=True)
class Funded:
    eth: int
    opg: int
    eth_balance: int
    opg_balance: int


async def fund(chain: Chain, address: str) -> Funded:
    """Give ``address`` FAUCET_ETH (anvil_setBalance) and FAUCET_OPG (minted by the deployer)."""
    eth_balance = await chain.w3.eth.get_balance(address) + FAUCET_ETH  # type: ignore[arg-type]
    await chain.w3.provider.make_request("anvil_setBalance", [address, hex(eth_balance)])
    deployer = chain.dev_accounts[0]
    mint = chain.opg.encode_abi("mint", args=[address, FAUCET_OPG])
    await sender_for(chain.w3, chain.chain_id, deployer).send(
        chain.addresses.opg, mint, gas=GAS_LIMITS["mint"], wait_s=FAUCET_WAIT_S
    )
    opg_balance = await chain.opg.functions.balanceOf(address).call()
    return Funded(FAUCET_ETH, FAUCET_OPG, eth_balance, opg_balance)


WATCH_INTERVAL_S = 1.0


async def watch_embedded(chain: Chain) -> None:
    """Keep the embedded node alive and its base fee where it was set: start it again from its saved
    state if its process died (the indexer then sees the lost blocks as a re-org), forever."""
    embedded = chain.embedded
    assert embedded is not None
    while True:
        await asyncio.sleep(WATCH_INTERVAL_S)
        try:
            await asyncio.to_thread(embedded.tend)
        except Exception as error:  # noqa: BLE001 - a stalled or restarting node: try again next time
            log.info("chain_node_unreachable", error=f"{type(error).__name__}: {error}"[:200])
