"""One embedded chain per session, reverted to a snapshot around every test.

Transactions are sent from the dev accounts (unlocked in eth-tester) with a fixed gas limit, so a
revert shows as a failed receipt instead of an estimate error; ``reverts`` checks the custom error
by simulating the call.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from eth_utils import function_signature_to_4byte_selector
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD
from web3.types import TxReceipt

from app.chain.artifacts import CONTRACT_NAMES, load_artifact
from app.chain.build import compile_sources
from app.chain.embedded import EmbeddedChain
from app.config import Settings

TX_GAS = 3_000_000
FAR_DEADLINE = 2**40
TEST_SOLIDITY = Path(__file__).with_name("solidity")
DIVISOR = 1_600_000
DEFAULT_FEE = 5 * 10**16


@pytest.fixture(scope="session")
def chain() -> EmbeddedChain:
    return EmbeddedChain.start(Settings(chain_rpc_url=None))


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


def send(function: ContractFunction, sender: LocalAccount, value: int = 0) -> TxReceipt:
    """Send a transaction that must succeed; on failure, fail the test naming the revert."""
    w3 = function.w3
    tx_hash = function.transact({"from": sender.address, "value": value, "gas": TX_GAS})
    receipt = w3.eth.get_transaction_receipt(tx_hash)
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


def revert_data(error: TransactionFailed) -> bytes:
    """eth-tester reports revert data as a bytes literal inside the message."""
    text = str(error)
    start = max(text.find("b'"), text.find('b"'))
    return ast.literal_eval(text[start:]) if start >= 0 else b""


def error_name(error: TransactionFailed) -> str:
    data = revert_data(error)
    return _error_names().get(data[:4], f"unknown revert {data.hex()}")


def simulate_error(function: ContractFunction, sender: LocalAccount, value: int = 0) -> str | None:
    """The name of the custom error the call reverts with now, or None if it succeeds."""
    try:
        function.call({"from": sender.address, "value": value})
    except TransactionFailed as error:
        return error_name(error)
    return None


def reverts(function: ContractFunction, sender: LocalAccount, error_name: str, value: int = 0) -> None:
    """Assert the transaction reverts with ``error_name``, simulated and mined."""
    assert simulate_error(function, sender, value) == error_name
    tx_hash = function.transact({"from": sender.address, "value": value, "gas": TX_GAS})
    assert function.w3.eth.get_transaction_receipt(tx_hash)["status"] == 0


def events(contract: Contract, name: str, receipt: TxReceipt) -> list[dict[str, Any]]:
    """The arguments of every ``name`` event ``contract`` emitted in the transaction."""
    logs = contract.events[name]().process_receipt(receipt, errors=DISCARD)
    return [dict(log["args"]) for log in logs]


def avatar_id(number: int) -> bytes:
    return number.to_bytes(16, "big")
