"""The embedded chain: an anvil node under ``var/chain/`` with the contracts deployed once.

Dev accounts are derived from a public mnemonic along ``m/44'/60'/0'/0/i`` (the path wallets,
Hardhat and anvil use), so the web UI and tests know their keys; anvil funds each with
1,000,000 ETH and the deployment mints each 1,000,000 OPG. Account 0 deploys everything and
owns it (TwinKeys owner and treasury, OPG owner). The deployment (addresses, block, chain id)
is remembered in ``deployment.json`` beside the node's state, so later starts reuse it::

    chain = EmbeddedChain.start(settings)
    snapshot = chain.take_snapshot()
    ...
    chain.revert_to_snapshot(snapshot)
    chain.close()

If the node's saved state is gone (the state file deleted), the recorded deployment no longer
matches the chain: the contracts are deployed again and ``state_lost`` says so.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import structlog
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import HTTPProvider, Web3

from app.chain.anvil import AnvilNode, NodeError, NodeOptions, exclusive_lock, rpc
from app.chain.artifacts import load_artifact
from app.chain.deploy import ContractAddresses, DeploymentParameters, deploy_contracts, send_transaction
from app.config import Settings

log = structlog.get_logger()

DEV_HD_PATH = "m/44'/60'/0'/0"
DEV_ETH_BALANCE = 1_000_000 * 10**18
DEV_OPG_BALANCE = 1_000_000 * 10**18
SYNC_RPC_TIMEOUT_S = 30

Account.enable_unaudited_hdwallet_features()


def dev_accounts(mnemonic: str, count: int) -> list[LocalAccount]:
    """The first ``count`` accounts of ``mnemonic`` along m/44'/60'/0'/0/i."""
    return [Account.from_mnemonic(mnemonic, account_path=f"{DEV_HD_PATH}/{index}") for index in range(count)]


def node_options(settings: Settings, genesis_timestamp: int | None = None) -> NodeOptions:
    return NodeOptions(
        state_dir=settings.chain_state_dir,
        chain_id=settings.chain_id,
        base_fee_wei=settings.chain_base_fee_wei,
        mnemonic=settings.chain_dev_mnemonic,
        accounts=settings.chain_dev_accounts,
        balance_eth=DEV_ETH_BALANCE // 10**18,
        port=settings.chain_node_port,
        state_interval_s=settings.chain_state_interval_s,
        node_modules_dir=settings.node_modules_dir,
        genesis_timestamp=genesis_timestamp,
    )


@dataclass(frozen=True)
class Deployment:
    """Where the contracts are on the embedded chain, and the block that created the last of them."""

    chain_id: int
    addresses: ContractAddresses
    block: int
    block_hash: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "chain_id": self.chain_id,
                "block": self.block,
                "block_hash": self.block_hash,
                "addresses": {field: getattr(self.addresses, field) for field in ("twin_keys", "opg", "node_registry")},
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        data = json.loads(text)
        addresses = ContractAddresses(
            **{field: to_checksum_address(value) for field, value in data["addresses"].items()}
        )
        return cls(int(data["chain_id"]), addresses, int(data["block"]), str(data["block_hash"]))


@dataclass
class EmbeddedChain:
    """The shared anvil node, a sync Web3 onto it, the dev accounts and the deployment."""

    node: AnvilNode
    w3: Web3
    accounts: list[LocalAccount]
    deployment: Deployment
    state_lost: bool = False

    @property
    def addresses(self) -> ContractAddresses:
        return self.deployment.addresses

    @property
    def url(self) -> str:
        return self.node.url

    @classmethod
    def start(cls, settings: Settings, genesis_timestamp: int | None = None) -> EmbeddedChain:
        """Join (or start) the node and load the deployment, deploying the contracts if there is none.
        ``genesis_timestamp`` dates a node started without saved state (see NodeOptions)."""
        node = AnvilNode.acquire(node_options(settings, genesis_timestamp))
        try:
            w3 = Web3(
                HTTPProvider(
                    node.url,
                    request_kwargs={"timeout": SYNC_RPC_TIMEOUT_S},
                    cache_allowed_requests=True,
                    cacheable_requests={"eth_chainId"},
                )
            )
            accounts = dev_accounts(settings.chain_dev_mnemonic, settings.chain_dev_accounts)
            with exclusive_lock(settings.chain_state_dir / "deploy.lock"):  # one deployment if two start at once
                deployment, state_lost = _load_or_deploy(w3, settings, accounts)
        except BaseException:
            node.release()
            raise
        return cls(node, w3, accounts, deployment, state_lost)

    def close(self) -> None:
        self.node.release()

    # ---------------------------------------------------------------- the node's dev methods

    def call(self, method: str, *params: Any) -> Any:
        return rpc(self.node.url, method, list(params), timeout_s=SYNC_RPC_TIMEOUT_S)

    def take_snapshot(self) -> str:
        """Remember the current chain state; see revert_to_snapshot."""
        return str(self.call("evm_snapshot"))

    def revert_to_snapshot(self, snapshot_id: str) -> None:
        """Drop every block mined since ``take_snapshot`` returned ``snapshot_id``.

        Transactions still being mined are waited for first: anvil answers a send before it mines
        it, and a block mined after the revert would outlive it. anvil also winds its clock back to
        the snapshot's time, and it would then run behind ours by however long ago that was
        (heartbeats would look stale): it is set to now again, and a block mined so the latest one
        says so, as on a live chain."""
        self.wait_until_mined()
        if self.call("evm_revert", snapshot_id) is not True:
            raise NodeError(f"evm_revert: no snapshot {snapshot_id}")
        latest = int(self.w3.eth.get_block("latest")["timestamp"])
        self.call("evm_setTime", max(int(time.time()), latest))
        self.mine_blocks(1)

    def wait_until_mined(self, timeout_s: float = 10.0) -> None:
        """Return once the node's pool holds no transaction (automine takes them a block each)."""
        deadline = time.monotonic() + timeout_s
        while any(int(count, 16) for count in self.call("txpool_status").values()):
            if time.monotonic() > deadline:
                raise NodeError(f"transactions still pending after {timeout_s:g}s")
            time.sleep(0.01)

    def mine_blocks(self, count: int = 1) -> None:
        self.call("anvil_mine", hex(count))

    def time_travel(self, timestamp: int) -> None:
        """Make the next block's timestamp ``timestamp`` (only forwards)."""
        self.call("evm_setNextBlockTimestamp", hex(timestamp))

    def reorg(self, depth: int) -> None:
        """Replace the last ``depth`` blocks with as many new, empty ones (their transactions are gone)."""
        self.call("anvil_reorg", depth, [])

    def add_balance(self, address: str, wei: int) -> int:
        """Give ``address`` ``wei`` more ETH; return its new balance."""
        balance = self.w3.eth.get_balance(to_checksum_address(address)) + wei
        self.call("anvil_setBalance", address, hex(balance))
        return balance

    def tend(self) -> None:
        """One round of upkeep: restart a dead node, hold the base fee."""
        self.node.restart_if_dead()  # on the same port: every client's URL stays valid
        self.hold_base_fee()

    def hold_base_fee(self) -> None:
        """Keep the base fee near its setting: EIP-1559 lowers it after every block below its gas
        target, which on a node that mines one transaction per block is every block. It is raised at
        most 1.5× above the latest block's, so a wallet that offers twice that (ethers, web3.py and
        MetaMask do) is never priced out by the raise."""
        target = self.node.options.base_fee_wei
        latest = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0))
        wanted = min(target, latest * 3 // 2)
        if self.w3.eth.gas_price < wanted:  # gas_price: the next block's base fee (the node asks no tip)
            self.call("anvil_setNextBlockBaseFeePerGas", hex(wanted))


def _load_or_deploy(w3: Web3, settings: Settings, accounts: list[LocalAccount]) -> tuple[Deployment, bool]:
    record = settings.chain_state_dir / "deployment.json"
    recorded: Deployment | None = None
    existed = record.exists()
    if existed:
        try:
            recorded = Deployment.from_json(record.read_text())
        except (ValueError, KeyError, TypeError):
            recorded = None
        if recorded is not None and _still_there(w3, recorded):
            return recorded, False
        log.warning(
            "chain_state_lost",
            detail="the embedded chain no longer holds the recorded deployment "
            "(its state file was deleted or is from another chain): deploying the contracts again; "
            "the index follows the new chain",
            recorded_block=recorded.block if recorded else None,
        )
    deployment = _deploy(w3, settings, accounts)
    record.write_text(deployment.to_json())
    return deployment, existed


def _still_there(w3: Web3, deployment: Deployment) -> bool:
    if w3.eth.chain_id != deployment.chain_id or w3.eth.block_number < deployment.block:
        return False
    block = w3.eth.get_block(deployment.block)
    return "0x" + bytes(block["hash"]).hex() == deployment.block_hash and all(
        w3.eth.get_code(getattr(deployment.addresses, field)) for field in ("twin_keys", "opg", "node_registry")
    )


def _deploy(w3: Web3, settings: Settings, accounts: list[LocalAccount]) -> Deployment:
    """Deploy the contracts from account 0 and mint every dev account its OPG."""
    deployer = accounts[0]
    addresses = deploy_contracts(w3, deployer, DeploymentParameters.from_settings(settings))
    opg = w3.eth.contract(address=addresses.opg, abi=load_artifact("OPG").abi)
    receipt = None
    for account in accounts:
        mint = opg.encode_abi("mint", args=[account.address, DEV_OPG_BALANCE])
        receipt = send_transaction(w3, deployer, {"to": addresses.opg, "data": mint})
    assert receipt is not None  # there is always at least one account
    block = w3.eth.get_block(receipt["blockNumber"])
    log.info(
        "chain_contracts_deployed",
        **{field: getattr(addresses, field) for field in ("twin_keys", "opg", "node_registry")},
    )
    return Deployment(w3.eth.chain_id, addresses, block["number"], "0x" + bytes(block["hash"]).hex())
