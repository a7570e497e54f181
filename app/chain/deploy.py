"""Deploy TwinKeys, OPG and NodeRegistry to any chain, signing locally with one account.

The embedded chain and ``twin contracts deploy`` both go through :func:`deploy_contracts`::

    addresses = deploy_contracts(w3, deployer, DeploymentParameters.from_settings(settings))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.types import TxParams, TxReceipt

from app.chain.artifacts import load_artifact
from app.config import Settings


class DeploymentError(Exception):
    """A deployment transaction failed; the message names it."""


OPG_CAP = 10**9 * 10**18  # one billion OPG, 18 decimals


@dataclass(frozen=True)
class DeploymentParameters:
    """Constructor arguments: TwinKeys' curve and fees, OPG's supply cap (NodeRegistry takes its owner)."""

    curve_divisor: int
    protocol_fee_percent: int
    creator_fee_percent: int
    opg_cap: int = OPG_CAP

    @classmethod
    def from_settings(cls, settings: Settings, *, opg_cap: int = OPG_CAP) -> DeploymentParameters:
        return cls(
            curve_divisor=settings.chain_curve_divisor,
            protocol_fee_percent=settings.chain_protocol_fee_percent,
            creator_fee_percent=settings.chain_creator_fee_percent,
            opg_cap=opg_cap,
        )


@dataclass(frozen=True)
class ContractAddresses:
    twin_keys: ChecksumAddress
    opg: ChecksumAddress
    node_registry: ChecksumAddress

    def as_env(self) -> str:
        """``TWIN_…_ADDRESS=0x…`` lines, ready to paste into the environment."""
        return (
            f"TWIN_TWIN_KEYS_ADDRESS={self.twin_keys}\n"
            f"TWIN_OPG_ADDRESS={self.opg}\n"
            f"TWIN_NODE_REGISTRY_ADDRESS={self.node_registry}"
        )


TIP_BLOCKS = 10


def median_tip(fee_history: Any) -> int | None:
    """The median tip recent blocks' transactions paid, from ``eth_feeHistory`` (as wallets estimate
    it); None without history. A node's own suggestion can be far off: anvil's is a fixed 1 gwei,
    a hundred times the embedded chain's base fee."""
    rewards = sorted(int(block[0]) for block in fee_history.get("reward", []) if block)
    return rewards[len(rewards) // 2] if rewards else None


def send_transaction(w3: Web3, sender: LocalAccount, transaction: TxParams) -> TxReceipt:
    """Fill in nonce, gas and fees, sign with ``sender``, send, and wait for a successful receipt."""
    filled: dict[str, Any] = {
        "from": sender.address,
        "chainId": w3.eth.chain_id,
        "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
        **transaction,
    }
    filled.setdefault("gas", w3.eth.estimate_gas(filled))  # type: ignore[arg-type]
    tip = median_tip(w3.eth.fee_history(TIP_BLOCKS, "latest", [50]))
    filled.setdefault("maxPriorityFeePerGas", w3.eth.max_priority_fee if tip is None else tip)
    filled.setdefault("maxFeePerGas", 2 * w3.eth.gas_price + filled["maxPriorityFeePerGas"])
    signed = sender.sign_transaction(filled)
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
    if receipt["status"] != 1:
        raise DeploymentError(f"transaction {receipt['transactionHash'].hex()} reverted")
    return receipt


def deploy_contract(w3: Web3, deployer: LocalAccount, name: str, *constructor_args: Any) -> ChecksumAddress:
    """Deploy the committed artifact ``name`` and return its address."""
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    data = factory.constructor(*constructor_args).data_in_transaction
    receipt = send_transaction(w3, deployer, {"data": data})
    address = receipt["contractAddress"]
    if address is None:
        raise DeploymentError(f"{name}: the receipt has no contract address")
    return address


def deploy_contracts(w3: Web3, deployer: LocalAccount, parameters: DeploymentParameters) -> ContractAddresses:
    """Deploy all three contracts; the deployer owns all three and is TwinKeys' treasury."""
    return ContractAddresses(
        twin_keys=deploy_contract(
            w3,
            deployer,
            "TwinKeys",
            parameters.curve_divisor,
            parameters.protocol_fee_percent,
            parameters.creator_fee_percent,
            deployer.address,
        ),
        opg=deploy_contract(w3, deployer, "OPG", deployer.address, parameters.opg_cap),
        node_registry=deploy_contract(w3, deployer, "NodeRegistry", deployer.address),
    )


def hand_over(
    w3: Web3, deployer: LocalAccount, addresses: ContractAddresses, *, owner: str | None, treasury: str | None
) -> list[str]:
    """Give the deployment to its operators: TwinKeys' treasury becomes ``treasury``, and ownership of
    all three contracts is offered to ``owner`` (Ownable2Step: the deployer stays owner until ``owner``
    calls ``acceptOwnership`` on each). Returns what remains for the new owner to do."""
    from eth_utils import to_checksum_address

    contracts = {
        name: w3.eth.contract(address=getattr(addresses, field), abi=load_artifact(name).abi)
        for name, field in (("TwinKeys", "twin_keys"), ("OPG", "opg"), ("NodeRegistry", "node_registry"))
    }

    def call(name: str, function: str, *args: Any) -> None:
        contract = contracts[name]
        send_transaction(w3, deployer, {"to": contract.address, "data": contract.encode_abi(function, args=list(args))})

    if treasury is not None:
        call("TwinKeys", "setTreasury", to_checksum_address(treasury))
    remaining: list[str] = []
    if owner is not None and to_checksum_address(owner) != deployer.address:
        for name, contract in contracts.items():
            call(name, "transferOwnership", to_checksum_address(owner))
            remaining.append(f"{owner} must call acceptOwnership() on {name} at {contract.address}")
    return remaining
