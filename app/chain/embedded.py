"""The embedded chain: an in-process EVM (eth-tester + py-evm) with the contracts deployed.

Dev accounts are derived from a public mnemonic along ``m/44'/60'/0'/0/i`` (the path wallets
and Hardhat use), so the web UI and tests know their keys; each starts with 1,000,000 ETH and
1,000,000 OPG. Account 0 deploys everything and owns it (TwinKeys owner and treasury, OPG
owner). The same EthereumTester backs a sync ``Web3`` and an ``AsyncWeb3``::

    chain = EmbeddedChain.start(settings)
    snapshot = chain.take_snapshot()
    ...
    chain.revert_to_snapshot(snapshot)
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend
from web3 import AsyncWeb3, Web3
from web3.providers.eth_tester import AsyncEthereumTesterProvider, EthereumTesterProvider

from app.chain.artifacts import load_artifact
from app.chain.deploy import ContractAddresses, DeploymentParameters, deploy_contracts, send_transaction
from app.config import Settings

DEV_HD_PATH = "m/44'/60'/0'/0"
DEV_ETH_BALANCE = 1_000_000 * 10**18
DEV_OPG_BALANCE = 1_000_000 * 10**18

Account.enable_unaudited_hdwallet_features()


def dev_accounts(mnemonic: str, count: int) -> list[LocalAccount]:
    """The first ``count`` accounts of ``mnemonic`` along m/44'/60'/0'/0/i."""
    return [Account.from_mnemonic(mnemonic, account_path=f"{DEV_HD_PATH}/{index}") for index in range(count)]


@dataclass
class EmbeddedChain:
    """An in-process chain with TwinKeys, OPG and NodeRegistry deployed and dev accounts funded."""

    tester: EthereumTester
    w3: Web3
    async_w3: AsyncWeb3
    accounts: list[LocalAccount]
    addresses: ContractAddresses

    @classmethod
    def start(cls, settings: Settings) -> EmbeddedChain:
        """A fresh chain: genesis funds the dev accounts, account 0 deploys and mints OPG."""
        backend = PyEVMBackend.from_mnemonic(
            settings.chain_dev_mnemonic,
            num_accounts=settings.chain_dev_accounts,
            hd_path=DEV_HD_PATH,
            genesis_state_overrides={"balance": DEV_ETH_BALANCE},
        )
        tester = EthereumTester(backend)
        w3 = Web3(EthereumTesterProvider(tester))
        accounts = dev_accounts(settings.chain_dev_mnemonic, settings.chain_dev_accounts)
        deployer = accounts[0]
        addresses = deploy_contracts(w3, deployer, DeploymentParameters.from_settings(settings))
        opg = w3.eth.contract(address=addresses.opg, abi=load_artifact("OPG").abi)
        for account in accounts:
            mint = opg.encode_abi("mint", args=[account.address, DEV_OPG_BALANCE])
            send_transaction(w3, deployer, {"to": addresses.opg, "data": mint})
        return cls(tester, w3, _async_web3(tester), accounts, addresses)

    def take_snapshot(self) -> int:
        """Remember the current chain state; see revert_to_snapshot."""
        return self.tester.take_snapshot()

    def revert_to_snapshot(self, snapshot_id: int) -> None:
        """Drop every block mined since ``take_snapshot`` returned ``snapshot_id``."""
        self.tester.revert_to_snapshot(snapshot_id)

    def mine_blocks(self, count: int = 1) -> None:
        self.tester.mine_blocks(count)

    def time_travel(self, timestamp: int) -> None:
        """Make the next block's timestamp ``timestamp`` (only forwards)."""
        self.tester.time_travel(timestamp)


def _async_web3(tester: EthereumTester) -> AsyncWeb3:
    provider = AsyncEthereumTesterProvider()
    # The provider builds a tester of its own; share ours so both Web3 objects see one chain.
    provider.ethereum_tester = tester
    return AsyncWeb3(provider)
