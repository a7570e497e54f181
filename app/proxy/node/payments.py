"""x402 pay-per-request on the node: 402 answers, payment checks, settlement receipts.

Built on the official ``x402`` package: its resource server (with the ``exact`` EVM scheme)
builds the payment requirements and the 402 answer and runs verify/settle through a
facilitator; its schemas and header codecs are the wire format. The facilitator is this
node's own (:mod:`app.proxy.node.facilitator`), settling EIP-3009 authorizations in OPG.

A request without payment gets 402 with the v2 ``PAYMENT-REQUIRED`` header and the same
JSON as body. ``PAYMENT-SIGNATURE`` (v2) or ``X-PAYMENT`` (v1) is checked before anything
goes upstream; a payment that fails any check gets 402 again, with the reason. After the
reply the payment is settled, and the outcome goes back in ``PAYMENT-RESPONSE`` (v1:
``X-PAYMENT-RESPONSE``) and, for a stream, in its final chunk.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from pydantic import ValidationError
from x402 import x402ResourceServer
from x402.http.constants import (
    PAYMENT_REQUIRED_HEADER,
    PAYMENT_RESPONSE_HEADER,
    PAYMENT_SIGNATURE_HEADER,
    X_PAYMENT_HEADER,
    X_PAYMENT_RESPONSE_HEADER,
)
from x402.http.utils import (
    decode_payment_signature_header,
    encode_payment_required_header,
    encode_payment_response_header,
)
from x402.mechanisms.evm.constants import (
    ERR_AUTHORIZATION_VALUE_MISMATCH,
    ERR_NETWORK_MISMATCH,
    ERR_RECIPIENT_MISMATCH,
    ERR_UNSUPPORTED_SCHEME,
    SCHEME_EXACT,
)
from x402.mechanisms.evm.exact import ExactEvmServerScheme
from x402.mechanisms.evm.v1.constants import V1_NETWORK_CHAIN_IDS
from x402.schemas import (
    PaymentPayload,
    PaymentPayloadV1,
    PaymentRequired,
    PaymentRequirements,
    ResourceConfig,
    ResourceInfo,
    SettleResponse,
    SupportedResponse,
    VerifyResponse,
)

from app.chain.client import ChainClock
from app.proxy.node import metrics
from app.proxy.node.errors import ProxyError

log = structlog.get_logger()

# Headers a browser client must be allowed to read (CORS).
PAYMENT_HEADERS = (PAYMENT_REQUIRED_HEADER, PAYMENT_RESPONSE_HEADER, X_PAYMENT_RESPONSE_HEADER)
ERR_ASSET_MISMATCH = "invalid_exact_evm_asset_mismatch"
ERR_MALFORMED_PAYMENT = "invalid_payload"
ERR_PAYMENT_REQUIRED = "payment_required"


class Facilitator(Protocol):
    """x402's FacilitatorClient, plus giving back a verified payment that will not be settled."""

    async def verify(self, payload: PaymentPayload, requirements: PaymentRequirements) -> VerifyResponse: ...

    async def settle(self, payload: PaymentPayload, requirements: PaymentRequirements) -> SettleResponse: ...

    def get_supported(self) -> SupportedResponse: ...

    async def release(self, payload: PaymentPayload) -> None: ...


@dataclass(frozen=True)
class TokenTerms:
    """The payment token and where payments go."""

    network: str  # CAIP-2, eip155:<chain id>
    asset: str
    name: str  # EIP-712 domain name and version of the token
    version: str
    pay_to: str


@dataclass(frozen=True)
class VerifiedPayment:
    payload: PaymentPayload
    requirements: PaymentRequirements
    payer: str
    x402_version: int


class PaymentRequiredError(ProxyError):
    """HTTP 402: the body and ``PAYMENT-REQUIRED`` header say what to pay and why the last try failed."""

    status_code = 402
    error_type = "payment_required"

    def __init__(self, payment_required: PaymentRequired) -> None:
        super().__init__(
            payment_required.error or ERR_PAYMENT_REQUIRED,
            code=payment_required.error,
            headers={PAYMENT_REQUIRED_HEADER: encode_payment_required_header(payment_required)},
        )
        self.payment_required = payment_required

    def body(self) -> dict[str, Any]:
        return self.payment_required.model_dump(by_alias=True, exclude_none=True)


class PaymentGate:
    """Prices every model, checks payments before any upstream call, settles after the reply."""

    def __init__(
        self,
        facilitator: Facilitator,
        terms: TokenTerms,
        prices_wei: Mapping[str, int],
        *,
        max_timeout_seconds: int,
        clock: ChainClock,
    ) -> None:
        self._facilitator = facilitator
        self._clock = clock
        self._terms = terms
        self._server = x402ResourceServer(facilitator)
        # x402's own exact scheme declares payment_flows as a plain dict, narrower than its protocol's Mapping.
        self._server.register(terms.network, ExactEvmServerScheme())  # type: ignore[arg-type]
        self._server.initialize()
        self._requirements = {
            model: self._server.build_payment_requirements(
                ResourceConfig(
                    scheme=SCHEME_EXACT,
                    network=terms.network,
                    pay_to=terms.pay_to,
                    price={
                        "amount": str(price),
                        "asset": terms.asset,
                        "extra": {"name": terms.name, "version": terms.version},
                    },
                    max_timeout_seconds=max_timeout_seconds,
                )
            )[0]
            for model, price in prices_wei.items()
        }

    @property
    def terms(self) -> TokenTerms:
        return self._terms

    async def require(self, headers: Mapping[str, str], model: str, resource_url: str) -> VerifiedPayment:
        """The request's verified payment; raises PaymentRequiredError (402) naming what is wrong."""
        requirements = await self._on_chain_clock(self._requirements[model])
        header_value = headers.get(PAYMENT_SIGNATURE_HEADER) or headers.get(X_PAYMENT_HEADER)
        if not header_value:
            raise await self._refusal(requirements, resource_url, ERR_PAYMENT_REQUIRED)
        try:
            sent = decode_payment_signature_header(header_value)
            payload = self._as_v2(sent, requirements)
            _check_exact_shape(payload.payload)
        except (
            ValueError,
            ValidationError,
            binascii.Error,
            json.JSONDecodeError,
            UnicodeDecodeError,
            RecursionError,
        ):  # RecursionError: JSON nested past the decoder's depth guard
            raise await self._refusal(requirements, resource_url, ERR_MALFORMED_PAYMENT) from None
        except _Mismatch as mismatch:
            raise await self._refusal(requirements, resource_url, mismatch.reason) from None
        if reason := _mismatch_reason(payload.accepted, requirements):
            raise await self._refusal(requirements, resource_url, reason)
        try:
            verdict = (await self._server.verify_payment(payload, requirements)).verify
        except Exception as error:  # noqa: BLE001  (the chain, not the payer, failed: say so, don't 500)
            log.warning("proxy_payment_check_unavailable", error=repr(error))
            raise ProxyError(
                "the payment cannot be checked right now (the chain did not answer); retry shortly",
                status_code=503,
                code="payment_check_unavailable",
                headers={"Retry-After": "2"},
            ) from None
        if not verdict.is_valid:
            raise await self._refusal(requirements, resource_url, verdict.invalid_reason or "invalid_payment")
        metrics.PAYMENTS.labels("verified").inc()
        return VerifiedPayment(payload, requirements, verdict.payer or "", sent.x402_version)

    async def _on_chain_clock(self, requirements: PaymentRequirements) -> PaymentRequirements:
        """Payers date an authorization's validity from their clock and the token checks it against
        block time: when the chain's clock runs ahead, the window we ask for grows by that lead (a
        payer holding older terms is refused as expired and gets these in the 402)."""
        lead = await self._clock.lead()
        if not lead:
            return requirements
        return requirements.model_copy(update={"max_timeout_seconds": requirements.max_timeout_seconds + lead})

    async def settle(self, payment: VerifiedPayment) -> SettleResponse:
        result = await self._server.settle_payment(payment.payload, payment.requirements)
        metrics.PAYMENTS.labels("settled" if result.success else "settle_failed").inc()
        return result

    async def release(self, payment: VerifiedPayment) -> None:
        """The reply failed or was abandoned: charge nothing and free the authorization."""
        await self._facilitator.release(payment.payload)
        metrics.PAYMENTS.labels("released").inc()

    @staticmethod
    def response_headers(payment: VerifiedPayment, outcome: SettleResponse) -> dict[str, str]:
        name = PAYMENT_RESPONSE_HEADER if payment.x402_version == 2 else X_PAYMENT_RESPONSE_HEADER
        return {name: encode_payment_response_header(outcome)}

    async def _refusal(self, requirements: PaymentRequirements, resource_url: str, reason: str) -> PaymentRequiredError:
        metrics.PAYMENTS.labels("required" if reason == ERR_PAYMENT_REQUIRED else "refused").inc()
        payment_required = await self._server.create_payment_required_response(
            [requirements], ResourceInfo(url=resource_url, mime_type="application/json"), error=reason
        )
        return PaymentRequiredError(payment_required)

    def _as_v2(self, payload: PaymentPayload | PaymentPayloadV1, requirements: PaymentRequirements) -> PaymentPayload:
        """v1 (``X-PAYMENT``) carries scheme and network only; check them and treat it as v2."""
        if isinstance(payload, PaymentPayload):
            return payload
        if payload.scheme != SCHEME_EXACT:
            raise _Mismatch(ERR_UNSUPPORTED_SCHEME)
        if payload.network != self._terms.network and V1_NETWORK_CHAIN_IDS.get(payload.network) != int(
            self._terms.network.partition(":")[2]
        ):
            raise _Mismatch(ERR_NETWORK_MISMATCH)
        return PaymentPayload(payload=payload.payload, accepted=requirements)


_AUTHORIZATION_FIELDS = ("from", "to", "value", "validAfter", "validBefore", "nonce")


def _check_exact_shape(payload: object) -> None:
    """The ``exact`` scheme's payload: an authorization of strings and a string signature. The x402
    verifier assumes that shape and fails on any other with errors that read as the chain's, so a
    payer's wrong types are refused here as malformed (402), not reported as an outage (503)."""
    authorization = payload.get("authorization") if isinstance(payload, dict) else None
    signature = payload.get("signature") if isinstance(payload, dict) else None
    if (
        not isinstance(authorization, dict)
        or not isinstance(signature, str)
        or not all(isinstance(authorization.get(name), str) for name in _AUTHORIZATION_FIELDS)
    ):
        raise ValueError(
            "the exact scheme's payload is {authorization: {from, to, value, validAfter, "
            "validBefore, nonce: strings}, signature: string}"
        )


class _Mismatch(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _mismatch_reason(accepted: PaymentRequirements, required: PaymentRequirements) -> str | None:
    """Which term of ours the client's chosen payment does not meet, as an x402 reason code."""
    if accepted.scheme != required.scheme:
        return ERR_UNSUPPORTED_SCHEME
    if accepted.network != required.network:
        return ERR_NETWORK_MISMATCH
    if accepted.asset.lower() != required.asset.lower():
        return ERR_ASSET_MISMATCH
    if accepted.pay_to.lower() != required.pay_to.lower():
        return ERR_RECIPIENT_MISMATCH
    if accepted.amount != required.amount:
        return ERR_AUTHORIZATION_VALUE_MISMATCH
    return None
