"""Send transactions from a server-held account: sign locally, number them, await receipts.

One :class:`TransactionSender` per (chain, account) in the process, shared by every user of
that account (a node's settlements and registry heartbeats, the faucet), so that nonces are
handed out once each even when transactions overlap. Only numbering and broadcasting are
serialised; receipts are awaited concurrently. The nonce is read from the chain's pending
count at each broadcast, so a re-org, a snapshot revert or another process using the account
never leaves a transaction waiting behind a nonce gap.
"""

from __future__ import annotations

import asyncio
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.exceptions import ContractLogicError, TimeExhausted
from web3.types import TxReceipt

from app.chain.deploy import TIP_BLOCKS, median_tip

# Fixed limits instead of a gas estimate per transaction: an estimate costs a full execution.
REVERTED = (ContractLogicError,)

GAS_LIMITS = {
    "transferWithAuthorization": 150_000,
    "registerNode": 1_000_000,
    "updateNode": 500_000,
    "heartbeat": 60_000,
    "setNodeEnabled": 60_000,
    "mint": 100_000,
}


class TransactionFailed(Exception):
    """The transaction reverted or was not mined in time; ``reason`` says which."""

    def __init__(self, reason: str, transaction: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.transaction = transaction


class TransactionSender:
    def __init__(self, w3: AsyncWeb3, chain_id: int, account: LocalAccount) -> None:
        self._w3 = w3
        self._chain_id = chain_id
        self.account = account
        self._lock = asyncio.Lock()

    async def _broadcast(self, to: str, data: bytes | str, gas: int) -> HexBytes:
        nonce, base_fee, history = await asyncio.gather(
            self._w3.eth.get_transaction_count(self.account.address, "pending"),
            self._w3.eth.gas_price,
            self._w3.eth.fee_history(TIP_BLOCKS, "latest", [50]),
        )
        # Twice the next block's base fee, as wallets offer: a base fee that rises before the
        # transaction is mined (EIP-1559 lets it rise 12.5 % a block) does not price it out. It pays
        # only the base fee of the block that includes it; the tip is what recent blocks paid.
        tip = median_tip(history) or 0
        transaction: dict[str, Any] = {
            "to": to,
            "data": data,
            "gas": gas,
            "chainId": self._chain_id,
            "nonce": nonce,
            "maxFeePerGas": 2 * base_fee + tip,
            "maxPriorityFeePerGas": tip,
            "value": 0,
        }
        return await self._w3.eth.send_raw_transaction(self.account.sign_transaction(transaction).raw_transaction)

    async def send(self, to: str, data: bytes | str, *, gas: int, wait_s: float) -> TxReceipt:
        """Broadcast a call to ``to`` and return its successful receipt; raise TransactionFailed."""
        async with self._lock:
            try:
                tx_hash = await self._broadcast(to, data, gas)
            except Exception as error:
                if "nonce" not in str(error).lower():
                    raise
                # Another process sent from the account between our read and our send: the
                # transaction was refused, so sending it again with a fresh nonce is safe.
                tx_hash = await self._broadcast(to, data, gas)
        try:
            receipt = await self._w3.eth.wait_for_transaction_receipt(tx_hash, timeout=wait_s, poll_latency=0.05)
        except TimeExhausted:
            raise TransactionFailed(f"not mined within {wait_s:g}s", _hex(tx_hash)) from None
        if receipt["status"] != 1:
            raise TransactionFailed("reverted", _hex(tx_hash))
        return receipt


_senders: dict[tuple[int, str], TransactionSender] = {}


def sender_for(w3: AsyncWeb3, chain_id: int, account: LocalAccount) -> TransactionSender:
    """The process's one sender for ``account`` on the chain behind ``w3``."""
    key = (id(w3), account.address)
    sender = _senders.get(key)
    if sender is None or sender.account.key != account.key:
        sender = _senders[key] = TransactionSender(w3, chain_id, account)
    return sender


def revert_selector(error: BaseException) -> bytes:
    """The 4-byte custom-error selector of a revert (empty when unknown)."""
    data = error.data if isinstance(error, ContractLogicError) and isinstance(error.data, str) else ""
    return bytes.fromhex(data.removeprefix("0x")[:8])


def _hex(tx_hash: HexBytes | bytes) -> str:
    return "0x" + bytes(tx_hash).hex()
