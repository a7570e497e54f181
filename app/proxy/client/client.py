"""The backend's side of a proxy node: pay, stream, verify, fail over.

:class:`ProxyClient` finds nodes in the NodeRegistry and pins each node's signing key from
its record. It routes only to nodes it trusts (:mod:`app.proxy.client.trust`: a valid key proof, and
approved in the registry, or a measurement on the allowlist, or its own in-process node): the
messages carry creators' private personas, and the payments are money. For every reply it picks
the least-loaded healthy trusted node, pays it with x402 from
the platform wallet (the official ``x402`` client signs the EIP-3009 authorization), streams
the text deltas, and at the end verifies the attestation with :mod:`app.proxy.verify`
against the pinned key. A node that cannot be reached, errs or stays silent before its first
token is put on cooldown and the next one is tried; once text has flowed there is no
switching. ::

    async with client.stream_chat(model="twin-offline-demo", messages=messages) as reply:
        async for delta in reply:
            ...  # provisional until the block exits without raising
        reply.result.attestation  # verified

Deltas are provisional: a reply whose attestation fails raises :class:`ReplyRejected` after
its last delta, and the caller must then drop what it showed and keep nothing.

:meth:`ProxyClient.embed` does the same for ``/v1/embeddings`` (one paid, verified request; the
vectors' attestation covers their float32 bytes: ``verify.embeddings_output_for_hash``).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx
import msgspec
import structlog
from eth_account.signers.local import LocalAccount
from x402 import x402Client
from x402.http.constants import PAYMENT_REQUIRED_HEADER, PAYMENT_RESPONSE_HEADER, PAYMENT_SIGNATURE_HEADER
from x402.http.utils import (
    decode_payment_required_header,
    decode_payment_response_header,
    encode_payment_signature_header,
)
from x402.mechanisms.evm.exact import ExactEvmScheme
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.schemas import PaymentRequired, SettleResponse

from app.chain.client import Chain
from app.proxy.client.endpoints import EndpointGuard, Resolver, resolve
from app.proxy.client.trust import Trust, TrustPolicy
from app.proxy.config import ProxySettings
from app.proxy.protocol import VERIFICATION_HEADER, VerificationLevel
from app.proxy.registry import NodeRecord, list_nodes
from app.proxy.sse import read_events
from app.proxy.verify import Attestation, AttestationError, embeddings_output_for_hash, verify_reply

log = structlog.get_logger()
# Told of every node's outcome: its endpoint, whether it served a reply, and the wei it was paid.
NodeOutcome = Callable[[str, bool, int], Awaitable[None]]

DIRECTORY_REFRESH_S = 5.0
# A node's own timeouts come first; the client's only catch a node that hangs.
CLIENT_TIMEOUT_MARGIN_S = 5.0
CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"


class ProxyClientError(Exception):
    """Base of everything the client raises about a reply."""


class NoNodeAvailable(ProxyClientError):
    """No node could start the reply; the message says what each one did."""


class NoTrustedNode(NoNodeAvailable):
    """Nodes are up, but none is trusted with personas and payments: nothing was sent anywhere."""


class RequestRejected(ProxyClientError):
    """A node refused the request itself (HTTP 4xx): retrying elsewhere would not help."""

    def __init__(self, status: int, message: str, param: str | None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.param = param


class PaymentRefused(ProxyClientError):
    """The node refused the platform wallet's payment (e.g. insufficient OPG balance)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"payment refused: {reason}")
        self.reason = reason


class ReplyFailed(ProxyClientError):
    """The reply broke off after it began; nothing was charged for it."""


class ReplyRejected(ProxyClientError):
    """The reply's attestation does not verify: it must not be shown or kept. ``payment`` is what
    the node was paid for it all the same (settled before the reply was checked)."""

    def __init__(self, message: str, payment: SettleResponse | None) -> None:
        super().__init__(message)
        self.payment = payment


@dataclass(frozen=True)
class ChatResult:
    text: str
    model: str
    finish_reason: str
    usage: dict[str, int] | None
    verification: VerificationLevel
    attestation: Attestation | None  # verified against the node's pinned key; None at level "none"
    payment: SettleResponse | None
    node: NodeRecord
    request_body: dict[str, Any]  # the chat-completions body as sent: what the attestation's request hash covers


@dataclass(frozen=True)
class EmbeddingsResult:
    vectors: list[list[float]]  # one per input, in order, at the float32 precision they were served and signed at
    model: str
    usage: dict[str, int] | None
    attestation: Attestation | None  # verified against the node's pinned key; None at level "none"
    payment: SettleResponse | None
    node: NodeRecord


@dataclass
class _NodeHealth:
    in_flight: int = 0
    cooldown_until: float = 0.0


class _NodeFailed(Exception):
    """This node could not start the reply; try the next one."""


@dataclass
class _Directory:
    nodes: list[NodeRecord] = field(default_factory=list)
    fetched_at: float = float("-inf")


class ProxyClient:
    def __init__(
        self,
        chain: Chain,
        wallet: LocalAccount,
        settings: ProxySettings,
        *,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
        own_tee_ids: Collection[str] = (),
        resolver: Resolver = resolve,
        on_outcome: NodeOutcome | None = None,
    ) -> None:
        """``own_tee_ids``: the keys of this process's own in-process nodes (trusted as ``embedded``);
        ``on_outcome``: told of each node's reply or failure (the network's usage rollups)."""
        self._on_outcome = on_outcome
        self._chain = chain
        self._settings = settings
        self._trust = TrustPolicy(
            chain.chain_id,
            chain.node_registry.address,
            trusted_measurements=settings.trusted_measurements,
            own_tee_ids=own_tee_ids,
        )
        self._network = f"eip155:{chain.chain_id}"
        self._x402 = x402Client()
        self._x402.register(self._network, ExactEvmScheme(signer=EthAccountSigner(wallet)))
        self._x402.set_spend_controls(
            {
                "allowed_assets": [
                    {
                        "network": self._network,
                        "asset": chain.addresses.opg,
                        "max_amount_per_payment": str(settings.max_price_wei),
                    }
                ]
            }
        )
        self._transports = dict(transports or {})
        allow_private = settings.allow_private_endpoints
        self._endpoints = EndpointGuard(
            allow_private=chain.is_embedded if allow_private is None else allow_private,
            timeout_s=settings.connect_timeout_seconds,
            resolver=resolver,
            exempt=frozenset(self._transports),
        )
        self._http: dict[str, httpx.AsyncClient] = {}
        self._directory = _Directory()
        self._directory_lock = asyncio.Lock()
        self._health: dict[str, _NodeHealth] = {}
        self._prices: dict[tuple[str, str], PaymentRequired] = {}
        self._turn = itertools.count()

    async def _report(self, node: NodeRecord, served: bool, payment: SettleResponse | None = None) -> None:
        if self._on_outcome is None:
            return
        paid = int(payment.amount) if payment is not None and payment.success and payment.amount else 0
        try:
            await self._on_outcome(node.endpoint, served, paid)
        except Exception as error:  # noqa: BLE001 - usage figures never cost a reply
            log.warning("node_outcome_not_recorded", node=node.endpoint, error=repr(error))

    async def aclose(self) -> None:
        for http in self._http.values():
            await http.aclose()
        self._http.clear()

    async def registered_nodes(self) -> list[NodeRecord]:
        """Every node in the registry, healthy or not (refreshed every few seconds)."""
        return list((await self._refreshed_directory()).nodes)

    async def healthy_nodes(self) -> list[NodeRecord]:
        """Enabled nodes whose last heartbeat is recent, per the registry (refreshed every few seconds)."""
        return [node for node in await self.registered_nodes() if self.is_healthy(node)]

    def is_healthy(self, node: NodeRecord) -> bool:
        return node.enabled and node.last_heartbeat >= time.time() - self._settings.node_stale_after_seconds

    def trust_of(self, node: NodeRecord) -> Trust:
        """Whether personas and payments may go to ``node``, and why (see :mod:`app.proxy.client.trust`)."""
        return self._trust.assess(node)

    async def assess(self, node: NodeRecord) -> Trust:
        """:meth:`trust_of`, and its endpoint is one requests may go to (:mod:`app.proxy.client.endpoints`)."""
        trust = self.trust_of(node)
        if trust.trusted and (problem := await self._endpoints.problem(node.endpoint)):
            return Trust(False, "untrusted", f"unsafe endpoint: {problem}")
        return trust

    async def routable_nodes(self) -> list[NodeRecord]:
        """Healthy nodes the client trusts, at safe endpoints: the ones replies are routed to."""
        healthy = await self.healthy_nodes()
        verdicts = await asyncio.gather(*(self.assess(node) for node in healthy))
        return [node for node, trust in zip(healthy, verdicts, strict=True) if trust.trusted]

    def stream_chat(
        self,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        verification: VerificationLevel = VerificationLevel.signature,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> ChatStream:
        """One reply as an async iterator of text deltas; ``result`` once it ends without raising."""
        return ChatStream(
            self, chat_request_body(model, messages, temperature=temperature, max_tokens=max_tokens), verification
        )

    async def chat(
        self,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        verification: VerificationLevel = VerificationLevel.signature,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> ChatResult:
        """The whole reply at once (streamed underneath, verified the same way)."""
        async with self.stream_chat(
            model=model, messages=messages, verification=verification, temperature=temperature, max_tokens=max_tokens
        ) as reply:
            async for _ in reply:
                pass
        return reply.result

    async def embed(
        self,
        *,
        model: str,
        inputs: Sequence[str],
        verification: VerificationLevel = VerificationLevel.signature,
    ) -> EmbeddingsResult:
        """One vector per input from the first trusted node that serves ``model``'s embeddings, paid and verified
        as a chat reply is (base64 on the wire: a quarter of the JSON floats' bytes)."""
        body: dict[str, Any] = {"model": model, "input": list(inputs), "encoding_format": "base64"}
        failures: list[str] = []
        for node in await self._candidates(verification):
            health = self._health_of(node)
            health.in_flight += 1
            try:
                try:
                    response = await self._open(node, body, verification, EMBEDDINGS_PATH)
                    try:
                        reply = msgspec.json.decode(await response.aread())
                    finally:
                        await response.aclose()
                    vectors = [_float32s(row["embedding"]) for row in sorted(reply["data"], key=lambda r: r["index"])]
                except (_NodeFailed, httpx.HTTPError, msgspec.DecodeError, KeyError, TypeError, ValueError) as error:
                    failures.append(f"{node.endpoint}: {_describe(error)}")
                    health.cooldown_until = time.monotonic() + self._settings.node_cooldown_seconds
                    await self._report(node, served=False)
                    continue
                settled = response.headers.get(PAYMENT_RESPONSE_HEADER)
                payment = decode_payment_response_header(settled) if settled else None
                attestation = None
                if verification != "none":
                    try:
                        attestation = verify_reply(
                            body=body,
                            output=embeddings_output_for_hash(vectors),
                            attestation=Attestation.from_reply(reply),
                            public_key=node.signing_public_key,
                            expected_tee_id=node.tee_id,
                        )
                    except AttestationError as error:
                        await self._report(node, False, payment)
                        raise ReplyRejected(f"{node.endpoint}: {error}", payment) from None
                await self._report(node, True, payment)
                return EmbeddingsResult(
                    vectors, reply.get("model", model), reply.get("usage"), attestation, payment, node
                )
            finally:
                health.in_flight -= 1
        raise NoNodeAvailable("no node could embed: " + "; ".join(failures))

    # -- node selection ------------------------------------------------------------------------

    async def _candidates(self, verification: VerificationLevel) -> list[NodeRecord]:
        healthy = await self.healthy_nodes()
        if not healthy:
            raise NoNodeAvailable("the NodeRegistry lists no enabled node with a recent heartbeat")
        verdicts = await asyncio.gather(*(self.assess(node) for node in healthy))
        nodes = [node for node, trust in zip(healthy, verdicts, strict=True) if trust.trusted]
        if not nodes:
            reasons = "; ".join(
                f"{node.endpoint}: {trust.detail}" for node, trust in list(zip(healthy, verdicts, strict=True))[:5]
            )
            raise NoTrustedNode(f"no trusted node: {len(healthy)} healthy node(s), none trusted ({reasons})")
        if verification == "tee":
            # Every node here presents dev evidence, and no hardware-quote verifier exists yet:
            # refuse rather than accept a claim that cannot be checked.
            raise NoNodeAvailable(
                "the 'tee' level needs hardware TEE evidence this client can verify, "
                "and no node offers it (nodes here present 'dev' evidence)"
            )
        now = time.monotonic()
        turn = next(self._turn)
        # Least loaded first; equal loads take turns; nodes on cooldown only as a last resort.
        order = {node.tee_id: (index - turn) % len(nodes) for index, node in enumerate(nodes)}
        return sorted(
            nodes,
            key=lambda node: (
                self._health_of(node).cooldown_until > now,
                self._health_of(node).in_flight,
                order[node.tee_id],
            ),
        )

    def _health_of(self, node: NodeRecord) -> _NodeHealth:
        return self._health.setdefault(node.tee_id, _NodeHealth())

    async def _refreshed_directory(self) -> _Directory:
        async with self._directory_lock:
            if time.monotonic() - self._directory.fetched_at > DIRECTORY_REFRESH_S:
                self._directory = _Directory(await list_nodes(self._chain.node_registry), time.monotonic())
        return self._directory

    def _http_for(self, node: NodeRecord) -> httpx.AsyncClient:
        http = self._http.get(node.endpoint)
        if http is None:
            read = max(self._settings.first_token_timeout_seconds, self._settings.idle_timeout_seconds)
            http = self._http[node.endpoint] = httpx.AsyncClient(
                base_url=node.endpoint,
                transport=self._transports.get(node.endpoint),
                follow_redirects=False,  # a redirect could lead a persona or a payment anywhere
                timeout=httpx.Timeout(self._settings.connect_timeout_seconds, read=read + CLIENT_TIMEOUT_MARGIN_S),
            )
        return http

    # -- one attempt on one node ------------------------------------------------------------------

    async def _price(self, node: NodeRecord, body: dict[str, Any], path: str) -> PaymentRequired:
        """The node's x402 terms for this model: asked once (an unpaid request gets 402), then cached."""
        key = (node.tee_id, body["model"])
        if key not in self._prices:
            response = await self._http_for(node).post(path, json=body)
            if response.status_code != 402:
                raise _failure_of(response)
            self._prices[key] = self._checked_terms(node, _payment_required_of(response))
        return self._prices[key]

    def _checked_terms(self, node: NodeRecord, terms: PaymentRequired) -> PaymentRequired:
        """Pay only into the node's registered payment address, in OPG, on this chain."""
        accepted = terms.accepts[0] if terms.accepts else None
        if (
            accepted is None
            or accepted.pay_to.lower() != node.payment_address.lower()
            or accepted.asset.lower() != self._chain.addresses.opg.lower()
            or accepted.network != self._network
        ):
            raise _NodeFailed(f"{node.endpoint} asks for payment elsewhere than its registry record says")
        return terms

    async def _open(
        self, node: NodeRecord, body: dict[str, Any], verification: VerificationLevel, path: str = CHAT_PATH
    ) -> httpx.Response:
        """Send the paid request to ``path``; return the response once its status is 200 (unread)."""
        response = await self._send_paid(node, body, verification, await self._price(node, body, path), path)
        if response.status_code == 402:
            refused = _payment_required_of(response)
            if refused.error in _PAYER_FAULTS:
                raise PaymentRefused(refused.error or "payment_required")
            # The node's terms changed since they were cached (a new price, say): take them, pay once more.
            terms = self._prices[(node.tee_id, body["model"])] = self._checked_terms(node, refused)
            response = await self._send_paid(node, body, verification, terms, path)
            if response.status_code == 402:
                raise PaymentRefused(_payment_required_of(response).error or "payment_required")
        return response

    async def _send_paid(
        self,
        node: NodeRecord,
        body: dict[str, Any],
        verification: VerificationLevel,
        terms: PaymentRequired,
        path: str,
    ) -> httpx.Response:
        """One paid attempt: a streaming 200, or the (read) 402 refusal; anything else raises."""
        payment = await self._x402.create_payment_payload(terms)
        headers = {
            PAYMENT_SIGNATURE_HEADER: encode_payment_signature_header(payment),
            VERIFICATION_HEADER: verification,
        }
        http = self._http_for(node)
        response = await http.send(http.build_request("POST", path, json=body, headers=headers), stream=True)
        if response.status_code == 200:
            return response
        await response.aread()
        if response.status_code != 402:
            raise _failure_of(response)
        return response


_PAYER_FAULTS = frozenset({"invalid_exact_evm_insufficient_balance"})


class ChatStream:
    """An async context manager and iterator of one reply's text deltas."""

    def __init__(self, client: ProxyClient, body: dict[str, Any], verification: VerificationLevel) -> None:
        self._client = client
        self._body = body
        self._verification = verification
        self._response: httpx.Response | None = None
        self._result: ChatResult | None = None
        self._iterator: AsyncIterator[str] | None = None

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._iterator is not None:
            await self._iterator.aclose()  # type: ignore[attr-defined]
        if self._response is not None:
            await self._response.aclose()  # a reader that stops early stops the node's upstream too

    @property
    def result(self) -> ChatResult:
        if self._result is None:
            raise RuntimeError("the reply has not finished (or it failed)")
        return self._result

    def __aiter__(self) -> AsyncIterator[str]:
        if self._iterator is None:
            self._iterator = self._deltas()
        return self._iterator

    async def _deltas(self) -> AsyncIterator[str]:
        client = self._client
        failures: list[str] = []
        for node in await client._candidates(self._verification):
            health = client._health_of(node)
            health.in_flight += 1
            try:
                try:
                    self._response = await client._open(node, self._body, self._verification)
                    events = read_events(self._response)
                    async with asyncio.timeout(client._settings.first_token_timeout_seconds + CLIENT_TIMEOUT_MARGIN_S):
                        first = await anext(events, None)
                except (_NodeFailed, httpx.HTTPError, TimeoutError) as error:
                    failures.append(f"{node.endpoint}: {_describe(error)}")
                    health.cooldown_until = time.monotonic() + client._settings.node_cooldown_seconds
                    if self._response is not None:
                        await self._response.aclose()
                        self._response = None
                    await client._report(node, served=False)
                    continue
                try:
                    async for delta in self._read(node, first, events):
                        yield delta
                except (ReplyFailed, ReplyRejected) as error:
                    await client._report(node, False, error.payment if isinstance(error, ReplyRejected) else None)
                    raise
                await client._report(node, True, self.result.payment)
                return
            finally:
                health.in_flight -= 1
        raise NoNodeAvailable("no node could answer: " + "; ".join(failures))

    async def _read(
        self, node: NodeRecord, first: tuple[str, str] | None, events: AsyncIterator[tuple[str, str]]
    ) -> AsyncIterator[str]:
        text: list[str] = []
        final: dict[str, Any] | None = None
        event = first
        try:
            while event is not None:
                data = event[1]
                if data == "[DONE]":
                    break
                chunk = msgspec.json.decode(data)
                if "error" in chunk:
                    raise ReplyFailed(f"{node.endpoint}: {chunk['error'].get('message', chunk['error'])}")
                choice = (chunk.get("choices") or [{}])[0]
                if content := (choice.get("delta") or {}).get("content"):
                    text.append(content)
                    yield content
                if choice.get("finish_reason"):
                    final = chunk
                event = await anext(events, None)
        except (httpx.HTTPError, msgspec.DecodeError) as error:
            raise ReplyFailed(f"{node.endpoint}: the stream broke: {_describe(error)}") from None
        if final is None:
            raise ReplyFailed(f"{node.endpoint}: the stream ended before its final chunk")
        self._result = self._verified(node, "".join(text), final)

    def _verified(self, node: NodeRecord, text: str, final: dict[str, Any]) -> ChatResult:
        settled = final.get("payment_response")
        payment = SettleResponse.model_validate(settled) if settled else None
        attestation = None
        if self._verification != "none":
            try:
                attestation = verify_reply(
                    body=self._body,
                    output=text,
                    attestation=Attestation.from_reply(final),
                    public_key=node.signing_public_key,
                    expected_tee_id=node.tee_id,
                )
            except AttestationError as error:
                raise ReplyRejected(f"{node.endpoint}: {error}", payment) from None
        return ChatResult(
            text=text,
            model=final.get("model", self._body["model"]),
            finish_reason=final["choices"][0]["finish_reason"],
            usage=final.get("usage"),
            verification=self._verification,
            attestation=attestation,
            payment=payment,
            node=node,
            request_body=self._body,
        )


def chat_request_body(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """The streamed chat-completions body the client sends for these messages (what the node signs)."""
    body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages], "stream": True}
    if temperature is not None:
        body["temperature"] = temperature
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


def _float32s(embedding: str | list[float]) -> list[float]:
    """A vector as served: base64 little-endian float32, or a JSON list of floats."""
    if isinstance(embedding, str):
        raw = base64.b64decode(embedding, validate=True)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return [float(value) for value in embedding]


def _payment_required_of(response: httpx.Response) -> PaymentRequired:
    header = response.headers.get(PAYMENT_REQUIRED_HEADER)
    terms = decode_payment_required_header(header) if header else None
    if not isinstance(terms, PaymentRequired):
        raise _NodeFailed(f"HTTP 402 without v2 {PAYMENT_REQUIRED_HEADER} terms")
    return terms


def _failure_of(response: httpx.Response) -> Exception:
    """4xx is the request's fault (RequestRejected); anything else is the node's (_NodeFailed)."""
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    message = error.get("message", response.text[:200]) if isinstance(error, dict) else str(error)
    if 400 <= response.status_code < 500 and response.status_code != 429:
        return RequestRejected(response.status_code, message, error.get("param") if isinstance(error, dict) else None)
    return _NodeFailed(f"HTTP {response.status_code}: {message}")


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "no first token in time"
    return str(error) or type(error).__name__
