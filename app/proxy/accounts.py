"""Which keys pay and get paid: the node's payment account and the backend's platform wallet.

Both come from settings. On the embedded chain they default to funded dev accounts at the end
of the list (the others are left to the web UI and tests), so nothing needs configuring; on any
other chain they are required.
"""

from __future__ import annotations

from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import SecretStr

from app.chain.client import Chain
from app.config import ConfigError
from app.proxy.config import ProxySettings

NODE_DEV_ACCOUNT = -1
PLATFORM_DEV_ACCOUNT = -2


def node_payment_account(settings: ProxySettings, chain: Chain) -> LocalAccount:
    return _account(settings.payment_private_key, chain, NODE_DEV_ACCOUNT, "TWIN_PROXY_PAYMENT_PRIVATE_KEY")


def platform_wallet(settings: ProxySettings, chain: Chain) -> LocalAccount:
    return _account(settings.platform_wallet_key, chain, PLATFORM_DEV_ACCOUNT, "TWIN_PROXY_PLATFORM_WALLET_KEY")


def _account(key: SecretStr | None, chain: Chain, dev_index: int, variable: str) -> LocalAccount:
    if key is not None:
        return Account.from_key(key.get_secret_value())
    if accounts := chain.dev_accounts:
        return accounts[max(len(accounts) + dev_index, 0)]  # a short list shares its first account
    raise ConfigError(f"{variable}: required when TWIN_CHAIN_RPC_URL points at a chain without dev accounts")
