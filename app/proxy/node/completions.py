"""One chat completion (or embeddings request) through the node, from the raw request to the signed, settled reply.

Order of work, so that nothing goes upstream unpaid and nothing is charged undelivered:
validate (400) → verification level (400) → capacity (503) → payment (402) → open an upstream
with failover (502, payment released) → stream → sign → settle → final chunk. A failure after
the first token ends the stream with an error event and releases the payment; so does a
client that goes away.
"""

from __future__ import annotations

import asyncio
import base64
import struct
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog
from x402.schemas import SettleResponse

from app.proxy.config import ProxySettings
from app.proxy.node import metrics
from app.proxy.node.attestation import EnclaveIdentity
from app.proxy.node.chat_request import ChatRequest, decode_body, parse_chat_request
from app.proxy.node.embeddings_request import EmbeddingsRequest, parse_embeddings_request
from app.proxy.node.errors import InvalidRequest, NodeBusy, UpstreamUnavailable, error_body
from app.proxy.node.payments import PaymentGate, VerifiedPayment
from app.proxy.node.router import MidStreamError, OpenStream, UpstreamRouter
from app.proxy.node.upstreams.base import Embeddings, Finished, TextDelta, ToolCalls, Usage
from app.proxy.protocol import VERIFICATION_HEADER, VerificationLevel
from app.proxy.sse import DONE_FRAME, data_frame
from app.proxy.verify import embeddings_output_for_hash, output_for_hash

log = structlog.get_logger()

_encode = msgspec.json.Encoder().encode


@dataclass
class Completion:
    """A request that passed every check and holds a capacity slot and a verified payment."""

    request: ChatRequest
    level: VerificationLevel
    payment: VerifiedPayment
    stream: OpenStream
    started: float
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass
class _Reply:
    text: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] | None = None
    usage: Usage | None = None
    finish_reason: str = "stop"


class CompletionService:
    def __init__(
        self, settings: ProxySettings, identity: EnclaveIdentity, router: UpstreamRouter, payments: PaymentGate
    ) -> None:
        self._settings = settings
        self._identity = identity
        self._router = router
        self._payments = payments
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def start(self, raw_body: bytes, headers: Mapping[str, str], resource_url: str) -> Completion:
        """Run every check and open the upstream; the caller must then consume the completion."""
        started = time.perf_counter()
        request = self._parse(raw_body)
        level, payment = await self._admit(request.model, headers, resource_url, started)
        try:
            stream = await self._router.open(request)
        except BaseException:
            await self._payments.release(payment)
            self._finish(request.model, "failed", started)
            raise
        first_token_after = time.perf_counter() - started
        metrics.TIME_TO_FIRST_TOKEN.labels(request.model, stream.upstream).observe(first_token_after)
        return Completion(request, level, payment, stream, started)

    async def embed(
        self, raw_body: bytes, headers: Mapping[str, str], resource_url: str
    ) -> tuple[dict[str, Any], dict[str, str], int]:
        """``/v1/embeddings``: checked and paid as a chat completion is, the vectors signed as its reply is."""
        started = time.perf_counter()
        request = parse_embeddings_request(self._decoded(raw_body), known_models=self._settings.models)
        if not self._router.embedders_for(request.model):
            raise InvalidRequest(
                f"model {request.model} cannot embed on this node", param="model", code="unsupported_value"
            )
        level, payment = await self._admit(request.model, headers, resource_url, started)
        settled = False
        outcome = "cancelled"
        try:
            try:
                embeddings = await self._router.embed(request)
            except UpstreamUnavailable:
                outcome = "failed"
                raise
            body = self._embeddings_body(request, embeddings, level)
            settled = True
            body, reply_headers, status = await self._settled_reply(payment, body)
            outcome = "ok" if status == 200 else "failed"
            return body, reply_headers, status
        finally:
            await self._close(request.model, payment, started, outcome, settled)

    def _embeddings_body(
        self, request: EmbeddingsRequest, embeddings: Embeddings, level: VerificationLevel
    ) -> dict[str, Any]:
        """OpenAI's embeddings reply: the vectors at float32 (as floats, or base64 as asked), usage, and the
        attestation over exactly those float32 values unless the client asked for none."""
        packed = [struct.pack(f"<{len(vector)}f", *vector) for vector in embeddings.vectors]
        served = [list(struct.unpack(f"<{len(raw) // 4}f", raw)) for raw in packed]
        data = [
            {
                "object": "embedding",
                "index": index,
                "embedding": base64.b64encode(raw).decode() if request.encoding_format == "base64" else vector,
            }
            for index, (raw, vector) in enumerate(zip(packed, served, strict=True))
        ]
        tokens = embeddings.prompt_tokens
        metrics.TOKENS.labels(request.model, "prompt").inc(tokens)
        body: dict[str, Any] = {
            "object": "list",
            "model": request.model,
            "data": data,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        if level != "none":
            body |= self._identity.sign(request.body, embeddings_output_for_hash(served), int(time.time())).as_fields()
        return body

    async def sse(self, completion: Completion) -> AsyncIterator[bytes]:
        """The reply as OpenAI chunks; the last carries usage, attestation and payment outcome."""
        settled = False
        outcome = "cancelled"
        try:
            head = self._chunk_head(completion)
            reply = _Reply()
            try:
                async with aclosing(completion.stream.events()) as events:
                    async for event in events:
                        if isinstance(event, TextDelta):
                            delta = (
                                {"content": event.text} if reply.text else {"role": "assistant", "content": event.text}
                            )
                            reply.text.append(event.text)
                            yield data_frame(_encode(head | {"choices": [_choice(delta)]}))
                        else:
                            _absorb(reply, event)
            except MidStreamError as error:
                outcome = "failed"
                yield data_frame(
                    _encode(
                        error_body(
                            f"the upstream failed mid-reply: {error.reason}", "upstream_error", code="upstream_failed"
                        )
                    )
                )
                return
            if reply.tool_calls:
                calls = [{"index": index} | call for index, call in enumerate(reply.tool_calls)]
                yield data_frame(_encode(head | {"choices": [_choice({"tool_calls": calls})]}))
            final = head | {"choices": [_choice({}, reply.finish_reason)]}
            final |= self._closing_fields(completion, reply)
            settled = True
            settlement = await self._settle(completion.payment)
            final["payment_response"] = settlement.model_dump(by_alias=True, exclude_none=True)
            outcome = "ok" if settlement.success else "failed"
            yield data_frame(_encode(final))
            yield DONE_FRAME
        finally:
            await self._close(completion.request.model, completion.payment, completion.started, outcome, settled)

    async def complete(self, completion: Completion) -> tuple[dict[str, Any], dict[str, str], int]:
        """The whole reply as one chat.completion body, its headers and status.

        Settlement happens before anything is sent, so a payment that fails to settle gets 402
        and no content, as x402 prescribes.
        """
        settled = False
        outcome = "cancelled"
        try:
            reply = _Reply()
            try:
                async with aclosing(completion.stream.events()) as events:
                    async for event in events:
                        if isinstance(event, TextDelta):
                            reply.text.append(event.text)
                        else:
                            _absorb(reply, event)
            except MidStreamError as error:
                outcome = "failed"
                raise UpstreamUnavailable(
                    f"the upstream failed mid-reply: {error.reason}", code="upstream_failed"
                ) from None
            message: dict[str, Any] = {"role": "assistant", "content": "".join(reply.text)}
            if reply.tool_calls:
                message["tool_calls"] = reply.tool_calls
            body = (
                self._chunk_head(completion, object_type="chat.completion")
                | {
                    "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
                }
                | self._closing_fields(completion, reply)
            )
            settled = True
            body, headers, status = await self._settled_reply(completion.payment, body)
            outcome = "ok" if status == 200 else "failed"
            return body, headers, status
        finally:
            await self._close(completion.request.model, completion.payment, completion.started, outcome, settled)

    async def _settled_reply(
        self, payment: VerifiedPayment, body: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str], int]:
        """Settle, then the body (200), or a 402 and no content when the payment could not be settled."""
        settlement = await self._settle(payment)
        headers = self._payments.response_headers(payment, settlement)
        if not settlement.success:
            reason = settlement.error_reason or "settlement_failed"
            return (
                error_body(f"the payment could not be settled: {reason}", "payment_required", code=reason),
                headers,
                402,
            )
        return body, headers, 200

    async def _admit(
        self, model: str, headers: Mapping[str, str], resource_url: str, started: float
    ) -> tuple[VerificationLevel, VerifiedPayment]:
        """What every paid request passes after its body: verification level (400), a capacity slot (503), the
        payment (402). The caller then owns the slot and the payment, and must ``_close``."""
        level = self._verification_level(headers)
        if self._in_flight >= self._settings.capacity:
            metrics.REQUESTS.labels(model, "rejected").inc()
            raise NodeBusy(
                f"the node is answering {self._in_flight} requests, its capacity; retry shortly",
                code="capacity",
                headers={"Retry-After": "1"},
            )
        self._in_flight += 1
        metrics.IN_FLIGHT.inc()
        try:
            payment = await self._payments.require(headers, model, resource_url)
        except BaseException:
            self._finish(model, "payment_refused", started)
            raise
        return level, payment

    async def _settle(self, payment: VerifiedPayment) -> SettleResponse:
        # Shielded: once the reply is complete it is owed, even if the client leaves now.
        return await asyncio.shield(self._payments.settle(payment))

    async def _close(self, model: str, payment: VerifiedPayment, started: float, outcome: str, settled: bool) -> None:
        if not settled:  # failed, cancelled or abandoned before the end: charge nothing
            await self._payments.release(payment)
        self._finish(model, outcome, started)

    def _decoded(self, raw_body: bytes) -> dict[str, Any]:
        if len(raw_body) > self._settings.max_request_bytes:
            limit = self._settings.max_request_bytes
            raise InvalidRequest(
                f"the body is {len(raw_body)} bytes; the limit is {limit}", param="body", code="request_too_large"
            )
        return decode_body(raw_body)

    def _parse(self, raw_body: bytes) -> ChatRequest:
        request = parse_chat_request(
            self._decoded(raw_body),
            known_models=self._settings.models,
            max_completion_tokens=self._settings.max_completion_tokens,
        )
        if request.tools and self._router.kinds_for(request.model) != {"openai"}:
            raise InvalidRequest(
                f"model {request.model} cannot call tools on this node", param="tools", code="unsupported_value"
            )
        return request

    def _verification_level(self, headers: Mapping[str, str]) -> VerificationLevel:
        asked = headers.get(VERIFICATION_HEADER, self._settings.default_verification).strip().lower()
        if asked not in VerificationLevel.__members__:
            raise InvalidRequest(
                f"{VERIFICATION_HEADER} must be one of {', '.join(VerificationLevel)}",
                param=VERIFICATION_HEADER,
                code="invalid_value",
            )
        level = VerificationLevel(asked)
        if level == "tee" and not self._identity.evidence()["hardware_backed"]:
            raise InvalidRequest(
                "this node has no TEE hardware (its evidence is 'dev'), so it cannot "
                "answer at the 'tee' level; ask for 'signature' or use another node",
                param=VERIFICATION_HEADER,
                code="tee_unavailable",
            )
        return level

    @staticmethod
    def _chunk_head(completion: Completion, object_type: str = "chat.completion.chunk") -> dict[str, Any]:
        return {
            "id": completion.id,
            "object": object_type,
            "created": completion.created,
            "model": completion.request.model,
        }

    def _closing_fields(self, completion: Completion, reply: _Reply) -> dict[str, Any]:
        """Usage, and the attestation unless the client asked for none."""
        fields: dict[str, Any] = {}
        if reply.usage is not None:
            fields["usage"] = reply.usage.as_dict()
            metrics.TOKENS.labels(completion.request.model, "prompt").inc(reply.usage.prompt_tokens)
            metrics.TOKENS.labels(completion.request.model, "completion").inc(reply.usage.completion_tokens)
        if completion.level != "none":
            output = output_for_hash("".join(reply.text), reply.tool_calls, reply.finish_reason)
            fields |= self._identity.sign(completion.request.body, output, int(time.time())).as_fields()
        return fields

    def _finish(self, model: str, outcome: str, started: float) -> None:
        self._in_flight -= 1
        metrics.IN_FLIGHT.dec()
        metrics.REQUESTS.labels(model, outcome).inc()
        metrics.REQUEST_DURATION.labels(model, outcome).observe(time.perf_counter() - started)


def _absorb(reply: _Reply, event: ToolCalls | Usage | Finished) -> None:
    if isinstance(event, ToolCalls):
        reply.tool_calls = event.calls
    elif isinstance(event, Usage):
        reply.usage = event
    elif isinstance(event, Finished):
        reply.finish_reason = event.reason


def _choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "finish_reason": finish_reason}
