"""The session's anvil node, reverted to a snapshot around every test.

Transactions are sent from the dev accounts (unlocked on the node) with a fixed gas limit, so a
revert shows as a failed receipt instead of an estimate error, and with explicit fees (see
``fees``); ``reverts`` checks the custom error by simulating the call, which web3 reports as a
``ContractLogicError`` carrying the revert data.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD
from web3.types import TxParams, TxReceipt

from app.chain.artifacts import CONTRACT_NAMES, load_artifact
from app.chain.build import compile_sources
from app.chain.embedded import EmbeddedChain

TX_GAS = 3_000_000
FAR_DEADLINE = 2**40
TEST_SOLIDITY = Path(__file__).with_name("solidity")
DIVISOR = 1_600_000
DEFAULT_FEE = 5 * 10**16
RECEIPT_TIMEOUT_S = 30


@pytest.fixture(scope="session")
def chain(embedded_chain: EmbeddedChain) -> EmbeddedChain:
    return embedded_chain


@pytest.fixture(autouse=True)
def _isolated(chain: EmbeddedChain) -> Iterator[None]:
    snapshot = chain.take_snapshot()
    yield
    chain.revert_to_snapshot(snapshot)


@pytest.fixture(scope="session")
def w3(chain: EmbeddedChain) -> Web3:
    return chain.w3


@pytest.fixture(scope="session")
def accounts(chain: EmbeddedChain) -> list[LocalAccount]:
    return chain.accounts


@pytest.fixture(scope="session")
def owner(accounts: list[LocalAccount]) -> LocalAccount:
    return accounts[0]


@pytest.fixture(scope="session")
def twin_keys(chain: EmbeddedChain) -> Contract:
    return chain.w3.eth.contract(address=chain.addresses.twin_keys, abi=load_artifact("TwinKeys").abi)


@pytest.fixture(scope="session")
def opg(chain: EmbeddedChain) -> Contract:
    return chain.w3.eth.contract(address=chain.addresses.opg, abi=load_artifact("OPG").abi)


@pytest.fixture(scope="session")
def node_registry(chain: EmbeddedChain) -> Contract:
    return chain.w3.eth.contract(address=chain.addresses.node_registry, abi=load_artifact("NodeRegistry").abi)


@cache
def compiled_test_contracts() -> dict[str, dict[str, Any]]:
    """The adversarial contracts of tests/contracts/solidity, compiled by the app's build module."""
    return compile_sources(TEST_SOLIDITY.glob("*.sol"))


def deploy(w3: Web3, artifact: dict[str, Any], sender: LocalAccount, *args: Any, value: int = 0) -> Contract:
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = send(factory.constructor(*args), sender, value=value)
    return w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"])


def fees(w3: Web3) -> TxParams:
    """EIP-1559 fees for a transaction sent now: no tip, and a max fee of twice the next block's base
    fee, which anvil answers as its gas price. (Not twice the latest block's base fee: evm_revert
    leaves anvil's next base fee as it was, and anvil_setNextBlockBaseFeePerGas raises it.) Left out,
    anvil fills in a max fee below its suggested tip of 1 gwei and refuses the transaction."""
    return {"maxPriorityFeePerGas": 0, "maxFeePerGas": 2 * w3.eth.gas_price}


def transact(function: ContractFunction, sender: LocalAccount, value: int = 0) -> TxReceipt:
    """Send the transaction with a fixed gas limit (a revert is mined, not refused) and return its
    receipt, once mined: anvil answers eth_sendTransaction before its miner has taken the transaction."""
    w3 = function.w3
    tx_hash = function.transact({"from": sender.address, "value": value, "gas": TX_GAS, **fees(w3)})
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S, poll_latency=0.01)


def send(function: ContractFunction, sender: LocalAccount, value: int = 0) -> TxReceipt:
    """Send a transaction that must succeed; on failure, fail the test naming the revert."""
    receipt = transact(function, sender, value)
    if receipt["status"] != 1:
        pytest.fail(f"transaction reverted: {simulate_error(function, sender, value)}")
    return receipt


@cache
def _error_names() -> dict[bytes, str]:
    """Custom-error selectors of every contract the tests use, to name a revert."""
    abis = [load_artifact(name).abi for name in CONTRACT_NAMES]
    abis += [artifact["abi"] for artifact in compiled_test_contracts().values()]
    names = {function_signature_to_4byte_selector("Panic(uint256)"): "Panic"}
    for abi in abis:
        for entry in abi:
            if entry["type"] == "error":
                signature = f"{entry['name']}({','.join(arg['type'] for arg in entry['inputs'])})"
                names[function_signature_to_4byte_selector(signature)] = entry["name"]
    return names


def revert_data(error: ContractLogicError) -> bytes:
    """The revert data (selector and arguments) the node returned, as hex in ``error.data``."""
    data = error.data
    if not isinstance(data, str):
        return b""  # the node gave none
    return bytes.fromhex(data.removeprefix("Reverted ").removeprefix("0x"))


def error_name(error: ContractLogicError) -> str:
    data = revert_data(error)
    return _error_names().get(data[:4], f"unknown revert {data.hex()}")


def simulate_error(function: ContractFunction, sender: LocalAccount, value: int = 0) -> str | None:
    """The name of the custom error the call reverts with now, or None if it succeeds."""
    try:
        function.call({"from": sender.address, "value": value})
    except ContractLogicError as error:
        return error_name(error)
    return None


def reverts(function: ContractFunction, sender: LocalAccount, error_name: str, value: int = 0) -> None:
    """Assert the transaction reverts with ``error_name``, simulated and mined."""
    assert simulate_error(function, sender, value) == error_name
    assert transact(function, sender, value)["status"] == 0


def events(contract: Contract, name: str, receipt: TxReceipt) -> list[dict[str, Any]]:
    """The arguments of every ``name`` event ``contract`` emitted in the transaction."""
    logs = contract.events[name]().process_receipt(receipt, errors=DISCARD)
    return [dict(log["args"]) for log in logs]


def avatar_id(number: int, creator: int | str = 1) -> bytes:
    """The avatar id ``creator`` (an address, or the index of a dev account) may create with nonce
    ``number`` (TwinKeys.avatarIdFor: ids are bound to their creator)."""
    from app.avatars.service import avatar_id_for

    address = creator if isinstance(creator, str) else _dev_addresses()[creator]
    return bytes.fromhex(avatar_id_for(address, number)[2:])


@cache
def _dev_addresses() -> list[str]:
    from app.chain.embedded import dev_accounts
    from app.config import Settings

    return [account.address for account in dev_accounts(Settings().chain_dev_mnemonic, 10)]
