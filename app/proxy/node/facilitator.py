"""The node's own x402 facilitator for the ``exact`` scheme: EIP-3009 authorizations in OPG.

It implements x402's ``FacilitatorClient`` (``verify``, ``settle``, ``get_supported``) against
the project's async chain, reusing x402's EIP-712 hashing, signature check, Transfer-event check
and reason codes. (x402's own EVM facilitator is synchronous and diagnoses failures through
Multicall3, which the embedded chain does not have.) EOA payers only.

``verify`` checks, cheapest first: recipient, amount, validity window, the signature, that the
nonce is not already being paid with here (a local in-flight set), then on-chain that the nonce
is unused (``authorizationState``) and that the payer's balance covers this payment and every
other one of theirs still in flight. A verified payment holds its nonce until it is settled
(``transferWithAuthorization``, sent by the node's account) or released.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import cast

from eth_abi import decode, encode
from eth_account.signers.local import LocalAccount
from eth_typing import ABIError
from eth_utils import function_abi_to_4byte_selector, function_signature_to_4byte_selector, to_checksum_address
from web3 import AsyncWeb3
from web3.exceptions import Web3Exception
from web3.types import RPCEndpoint
from x402.mechanisms.evm.constants import (
    ERR_AUTHORIZATION_VALUE_MISMATCH,
    ERR_INSUFFICIENT_BALANCE,
    ERR_INVALID_SIGNATURE,
    ERR_NETWORK_MISMATCH,
    ERR_NONCE_ALREADY_USED,
    ERR_RECIPIENT_MISMATCH,
    ERR_TRANSACTION_FAILED,
    ERR_TRANSFER_EVENT_MISMATCH,
    ERR_UNSUPPORTED_SCHEME,
    ERR_VALID_AFTER_FUTURE,
    ERR_VALID_BEFORE_EXPIRED,
    SCHEME_EXACT,
)
from x402.mechanisms.evm.eip712 import hash_eip3009_authorization
from x402.mechanisms.evm.exact.eip3009_utils import verify_eip3009_transfer_event
from x402.mechanisms.evm.types import ExactEIP3009Payload
from x402.mechanisms.evm.verify import verify_eoa_signature
from x402.schemas import (
    PaymentPayload,
    PaymentRequirements,
    SettleResponse,
    SupportedKind,
    SupportedResponse,
    VerifyResponse,
)

from app.chain.artifacts import load_artifact
from app.chain.client import ChainClock
from app.chain.transactions import GAS_LIMITS, REVERTED, TransactionFailed, TransactionSender, revert_selector

# x402 refuses authorizations about to expire: settling takes a few seconds.
VALID_BEFORE_MARGIN_S = 6
# A payer's balance read is reused this long, less what this node settled from it since. A balance
# is only ever checked optimistically (the payer can move funds between verify and settle, and then
# the settlement fails and the reply went unpaid); reuse for a few seconds does not change that, and
# it spares an EVM call per request to a busy payer such as the platform wallet.
BALANCE_REUSE_S = 2.0
ERR_INVALID_PAYLOAD = "invalid_exact_evm_payload"

_SELECTORS = {
    name: function_signature_to_4byte_selector(signature)
    for name, signature in {
        "balanceOf": "balanceOf(address)",
        "authorizationState": "authorizationState(address,bytes32)",
        "transferWithAuthorization": (
            "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)"
        ),
    }.items()
}
# OPG's custom errors → x402 reason codes, for a settlement that reverts; selectors from OPG's ABI.
_OPG_ERRORS = {entry["name"]: cast(ABIError, entry) for entry in load_artifact("OPG").abi if entry["type"] == "error"}
_REVERT_REASONS = {
    function_abi_to_4byte_selector(_OPG_ERRORS[name]): reason
    for name, reason in {
        "AuthorizationAlreadyUsed": ERR_NONCE_ALREADY_USED,
        "AuthorizationExpired": ERR_VALID_BEFORE_EXPIRED,
        "AuthorizationNotYetValid": ERR_VALID_AFTER_FUTURE,
        "InvalidSignature": ERR_INVALID_SIGNATURE,
        "ERC20InsufficientBalance": ERR_INSUFFICIENT_BALANCE,
    }.items()
}


@dataclass(frozen=True, slots=True)
class _Authorization:
    payer: str
    to: str
    value: int
    valid_after: int
    valid_before: int
    nonce: bytes
    signature: bytes

    @property
    def key(self) -> tuple[str, bytes]:
        return self.payer.lower(), self.nonce


class OpgFacilitator:
    def __init__(
        self, w3: AsyncWeb3, chain_id: int, sender: TransactionSender, clock: ChainClock, *, settle_timeout: float
    ) -> None:
        self._w3 = w3
        self._clock = clock
        self._chain_id = chain_id
        self._network = f"eip155:{chain_id}"
        self._sender = sender
        self._settle_timeout = settle_timeout
        self._in_flight: dict[tuple[str, bytes], int] = {}
        self._pending_by_payer: defaultdict[str, int] = defaultdict(int)
        self._balances: dict[str, tuple[int, float]] = {}  # payer → (balance, when read)

    @property
    def account(self) -> LocalAccount:
        return self._sender.account

    def get_supported(self) -> SupportedResponse:
        return SupportedResponse(
            kinds=[SupportedKind(x402_version=2, scheme=SCHEME_EXACT, network=self._network)],
            signers={"eip155:*": [self.account.address]},
        )

    async def verify(self, payload: PaymentPayload, requirements: PaymentRequirements) -> VerifyResponse:
        try:
            authorization = _parse(payload)
        except (ValueError, TypeError, KeyError):
            return VerifyResponse(is_valid=False, invalid_reason=ERR_INVALID_PAYLOAD)
        if reason := self._offline_check(payload, requirements, authorization):
            return VerifyResponse(is_valid=False, invalid_reason=reason, payer=authorization.payer)
        if authorization.key in self._in_flight:
            return VerifyResponse(
                is_valid=False,
                invalid_reason=ERR_NONCE_ALREADY_USED,
                invalid_message="already paying for a request in flight",
                payer=authorization.payer,
            )
        self._reserve(authorization)  # before any await, so a concurrent replay sees it
        try:
            reason = await self._onchain_check(requirements.asset, authorization)
        except BaseException:
            self._unreserve(authorization.key)
            raise
        if reason:
            self._unreserve(authorization.key)
            return VerifyResponse(is_valid=False, invalid_reason=reason, payer=authorization.payer)
        return VerifyResponse(is_valid=True, payer=authorization.payer)

    async def settle(self, payload: PaymentPayload, requirements: PaymentRequirements) -> SettleResponse:
        authorization = _parse(payload)
        outcome = SettleResponse(
            success=False,
            network=self._network,
            payer=authorization.payer,
            transaction="",
            amount=str(authorization.value),
        )
        data = _transfer_with_authorization_call(authorization)
        try:
            receipt = await self._sender.send(
                requirements.asset, data, gas=GAS_LIMITS["transferWithAuthorization"], wait_s=self._settle_timeout
            )
        except TransactionFailed as failure:
            self._balances.pop(authorization.payer.lower(), None)  # read it afresh next time
            reason = (
                await self._revert_reason(requirements.asset, data)
                if failure.reason == "reverted"
                else ERR_TRANSACTION_FAILED
            )
            return outcome.model_copy(
                update={"error_reason": reason, "error_message": failure.reason, "transaction": failure.transaction}
            )
        except Exception as error:  # noqa: BLE001  (any refusal by the chain is a failed settlement, reported)
            return outcome.model_copy(
                update={
                    "error_reason": ERR_TRANSACTION_FAILED,
                    "error_message": f"{type(error).__name__}: {error}"[:300],
                }
            )
        finally:
            self._unreserve(authorization.key)
        transaction = "0x" + bytes(receipt["transactionHash"]).hex()
        self._debit_known_balance(authorization)
        if not verify_eip3009_transfer_event(
            list(receipt["logs"]),
            requirements.asset,
            from_address=authorization.payer,
            to=authorization.to,
            value=authorization.value,
        ):
            return outcome.model_copy(update={"error_reason": ERR_TRANSFER_EVENT_MISMATCH, "transaction": transaction})
        return outcome.model_copy(update={"success": True, "transaction": transaction})

    async def release(self, payload: PaymentPayload) -> None:
        """The paid-for reply failed: free the nonce unspent, so the payer owes nothing."""
        self._unreserve(_parse(payload).key)

    def _offline_check(
        self, payload: PaymentPayload, requirements: PaymentRequirements, authorization: _Authorization
    ) -> str | None:
        if payload.accepted.scheme != SCHEME_EXACT or requirements.scheme != SCHEME_EXACT:
            return ERR_UNSUPPORTED_SCHEME
        if payload.accepted.network != self._network or requirements.network != self._network:
            return ERR_NETWORK_MISMATCH
        if authorization.to.lower() != requirements.pay_to.lower():
            return ERR_RECIPIENT_MISMATCH
        if authorization.value != int(requirements.amount):
            return ERR_AUTHORIZATION_VALUE_MISMATCH
        now = int(time.time())
        if authorization.valid_before < now + VALID_BEFORE_MARGIN_S:
            return ERR_VALID_BEFORE_EXPIRED
        if authorization.valid_after >= now:  # OPG requires block.timestamp > validAfter
            return ERR_VALID_AFTER_FUTURE
        extra = requirements.extra or {}
        digest = hash_eip3009_authorization(
            ExactEIP3009Payload.from_dict(payload.payload).authorization,
            self._chain_id,
            requirements.asset,
            extra.get("name", ""),
            extra.get("version", ""),
        )
        try:
            valid = verify_eoa_signature(digest, authorization.signature, authorization.payer)
        except ValueError:
            valid = False
        return None if valid else ERR_INVALID_SIGNATURE

    async def _onchain_check(self, asset: str, authorization: _Authorization) -> str | None:
        used, balance, chain_now = await asyncio.gather(
            self._call(asset, "authorizationState", ["address", "bytes32"], [authorization.payer, authorization.nonce]),
            self._balance(asset, authorization.payer),
            self._clock.now(),
        )
        if decode(["bool"], used)[0]:
            return ERR_NONCE_ALREADY_USED
        # The token checks validBefore against block time, which may be ahead of ours: refuse now
        # what would revert at settlement, after the reply was served.
        if authorization.valid_before < chain_now + VALID_BEFORE_MARGIN_S:
            return ERR_VALID_BEFORE_EXPIRED
        # This payment is already counted in the payer's pending total.
        if balance < self._pending_by_payer[authorization.payer.lower()]:
            return ERR_INSUFFICIENT_BALANCE
        return None

    async def _balance(self, asset: str, payer: str) -> int:
        known = self._balances.get(payer.lower())
        if known is not None and time.monotonic() - known[1] < BALANCE_REUSE_S:
            return known[0]
        balance = decode(["uint256"], await self._call(asset, "balanceOf", ["address"], [payer]))[0]
        self._balances[payer.lower()] = (balance, time.monotonic())
        return balance

    def _debit_known_balance(self, authorization: _Authorization) -> None:
        known = self._balances.get(authorization.payer.lower())
        if known is not None:
            self._balances[authorization.payer.lower()] = (known[0] - authorization.value, known[1])

    async def _call(self, to: str, function: str, types: list[str], args: list[object]) -> bytes:
        """A read-only call, straight to the provider: web3's request formatting would double its cost."""
        call = {
            "to": to,
            "data": "0x" + (_SELECTORS[function] + encode(types, args)).hex(),
            "from": self.account.address,
        }
        response = await self._w3.provider.make_request(RPCEndpoint("eth_call"), [call, "latest"])
        if "error" in response or not isinstance(response.get("result"), str):
            raise Web3Exception(f"eth_call {function} failed: {response.get('error')}")
        return bytes.fromhex(response["result"].removeprefix("0x"))

    async def _revert_reason(self, asset: str, data: bytes) -> str:
        """Replay a failed settlement as a call to read OPG's custom error."""
        try:
            await self._w3.eth.call({"to": asset, "data": data, "from": self.account.address})
        except REVERTED as error:
            return _REVERT_REASONS.get(revert_selector(error), ERR_TRANSACTION_FAILED)
        except (Web3Exception, ValueError):
            pass  # the replay itself failed: report the failure without a specific reason
        return ERR_TRANSACTION_FAILED

    def _reserve(self, authorization: _Authorization) -> None:
        self._in_flight[authorization.key] = authorization.value
        self._pending_by_payer[authorization.key[0]] += authorization.value

    def _unreserve(self, key: tuple[str, bytes]) -> None:
        value = self._in_flight.pop(key, None)
        if value is not None:
            self._pending_by_payer[key[0]] -= value
            if not self._pending_by_payer[key[0]]:
                del self._pending_by_payer[key[0]]


def _parse(payload: PaymentPayload) -> _Authorization:
    parsed = ExactEIP3009Payload.from_dict(payload.payload)
    nonce = bytes.fromhex(parsed.authorization.nonce.removeprefix("0x"))
    signature = bytes.fromhex((parsed.signature or "").removeprefix("0x"))
    if len(nonce) != 32 or not signature:
        raise ValueError("an EIP-3009 authorization needs a 32-byte nonce and a signature")
    auth = parsed.authorization
    return _Authorization(
        to_checksum_address(auth.from_address),
        to_checksum_address(auth.to),
        int(auth.value),
        int(auth.valid_after),
        int(auth.valid_before),
        nonce,
        signature,
    )


def _transfer_with_authorization_call(authorization: _Authorization) -> bytes:
    signature = authorization.signature
    v = signature[64] + 27 if signature[64] < 27 else signature[64]
    return _SELECTORS["transferWithAuthorization"] + encode(
        ["address", "address", "uint256", "uint256", "uint256", "bytes32", "uint8", "bytes32", "bytes32"],
        [
            authorization.payer,
            authorization.to,
            authorization.value,
            authorization.valid_after,
            authorization.valid_before,
            authorization.nonce,
            v,
            signature[:32],
            signature[32:64],
        ],
    )
