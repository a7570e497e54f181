"""What the chat websocket sends and receives, and what its HTTP routes return.

Client frame: ``{"type": "message", "client_msg_id": "…", "content": "…"}``. Server frames
(``type``): ``queued``, ``token``, ``done``, ``error``. Wei amounts are decimal strings.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from msgspec import Struct


class IncomingMessage(Struct, frozen=True):
    """A fan's message, as validated from a client frame."""

    client_msg_id: str
    content: str


# ---------------------------------------------------------------- server frames


class QueuedFrame(Struct, tag="queued", tag_field="type"):
    """The fan waits for a stream slot: 1-based position and estimated seconds (sent on every change)."""

    client_msg_id: str
    position: int
    eta_s: int


class TokenFrame(Struct, tag="token", tag_field="type"):
    """Provisional reply text: keep it only once ``done`` arrives (an ``error`` means drop it)."""

    client_msg_id: str
    message_id: int
    text: str


class AttestationSummary(Struct):
    verification_level: str
    tee_id: str
    request_hash: str
    output_hash: str
    signature: str
    timestamp: int
    url: str  # everything needed to re-verify it: GET this path (the fan or the creator)


class DoneFrame(Struct, tag="done", tag_field="type"):
    """The reply is complete and (unless the avatar's level is ``none``) its attestation verified."""

    client_msg_id: str
    message_id: int
    reply_to: int
    usage: dict[str, int] | None
    cost_wei: str
    attestation: AttestationSummary | None
    verified: bool
    memories_used: int = 0  # memories of the fan put in this reply's context (0 for a resend's stored reply)
    memory_tokens: int = 0  # their tokens (estimated as characters / 4)


class ErrorFrame(Struct, tag="error", tag_field="type"):
    code: str
    detail: str
    retry_after_s: int | None = None
    client_msg_id: str | None = None
    message_id: int | None = None
    field: str | None = None


ServerFrame = QueuedFrame | TokenFrame | DoneFrame | ErrorFrame


# ---------------------------------------------------------------- HTTP


class ChatMessageOut(Struct):
    id: int
    role: str  # user | assistant
    content: str
    status: str  # user: pending | answered | incomplete | failed; assistant: complete | incomplete | failed
    created_at: datetime
    client_msg_id: str | None = None
    reply_to: int | None = None
    error_code: str | None = None
    model: str | None = None
    usage: dict[str, int] | None = None
    cost_wei: str = "0"
    attested: bool = False  # GET /api/messages/{id}/attestation has what it takes to re-verify it
    completed_at: datetime | None = None


class ReplyAttestationOut(Struct):
    """Everything a third party needs to verify one reply with ``app.proxy.verify.verify_reply``
    (or OpenGradient's ``tee_verify``): the request as sent, the text received, the signature
    and the key of the node that made it, as it publishes it at ``GET /v1/attestation``."""

    message_id: int
    avatar_id: str
    verification_level: str
    request_body: dict[str, Any]
    canonical_request: dict[str, Any]
    output: str
    request_hash: str
    output_hash: str
    signature: str
    timestamp: int
    tee_id: str
    node_endpoint: str
    node_public_key_pem: str
    node_public_key_der_base64: str
    signature_scheme: str
