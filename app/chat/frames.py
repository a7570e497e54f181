"""What goes over the chat socket: the client's frame parsed and checked, the server's error and done frames, and
the exceptions that end a message in a frame (:class:`ChatRefused`) or end the socket (:class:`ClientGone`)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from app.chat.models import ChatMessage, ReplyAttestation
from app.chat.schemas import AttestationSummary, DoneFrame, ErrorFrame, IncomingMessage, ServerFrame

MAX_CLIENT_MSG_ID = 64

Send = Callable[[ServerFrame], Awaitable[None]]


class FrameError(Exception):
    """A client frame that cannot be used; the fan gets an error frame and may go on."""

    def __init__(self, code: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.field = field

    def frame(self) -> ErrorFrame:
        return ErrorFrame(code=self.code, detail=self.detail, field=self.field)


class ChatRefused(Exception):
    """A message that gets no reply now (no key, queue full, rate limited…), with when to retry."""

    def __init__(self, code: str, detail: str, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.retry_after_s = retry_after_s


class ClientGone(Exception):
    """The fan's socket closed while frames were being sent."""


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_frame(raw: str | bytes | None, *, max_frame_bytes: int, max_message_chars: int) -> IncomingMessage:
    """A client frame as a message, or :class:`FrameError` saying what is wrong with it."""
    if raw is None or isinstance(raw, bytes):
        raise FrameError("bad_frame", "frames are JSON text; binary frames are not accepted")
    size = len(raw.encode("utf-8", "surrogatepass"))
    if size > max_frame_bytes:
        raise FrameError("frame_too_large", f"a frame may hold at most {max_frame_bytes} bytes (got {size})")
    try:
        frame = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested past the decoder's depth guard
        raise FrameError("bad_frame", 'not JSON: send {"type": "message", "client_msg_id": …, "content": …}') from None
    if not isinstance(frame, dict):
        raise FrameError("bad_frame", 'a frame is a JSON object with a "type"')
    if frame.get("type") != "message":
        raise FrameError(
            "unknown_type", f'unknown frame type {frame.get("type")!r}; the only one is "message"', field="type"
        )
    client_msg_id = frame.get("client_msg_id")
    if (
        not isinstance(client_msg_id, str)
        or not 1 <= len(client_msg_id) <= MAX_CLIENT_MSG_ID
        or not client_msg_id.isprintable()
        or not _encodable(client_msg_id)
    ):
        raise FrameError(
            "invalid_message",
            f"client_msg_id: a string of 1–{MAX_CLIENT_MSG_ID} printable characters",
            field="client_msg_id",
        )
    content = frame.get("content")
    if not isinstance(content, str) or not content.strip():
        raise FrameError("invalid_message", "content: a non-empty string", field="content")
    if not _encodable(content):  # "\ud800" is valid JSON but no text: storing or sending it would fail
        raise FrameError("invalid_message", "content: not valid Unicode text (a lone surrogate)", field="content")
    if len(content) > max_message_chars:
        raise FrameError(
            "invalid_message", f"content: at most {max_message_chars} characters (got {len(content)})", field="content"
        )
    return IncomingMessage(client_msg_id=client_msg_id, content=content)


def usage_of(reply: ChatMessage) -> dict[str, int] | None:
    if reply.prompt_tokens is None and reply.completion_tokens is None:
        return None
    prompt_tokens, completion_tokens = reply.prompt_tokens or 0, reply.completion_tokens or 0
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def done_frame(reply: ChatMessage, client_msg_id: str, attestation: ReplyAttestation | None) -> DoneFrame:
    assert reply.id is not None
    assert reply.reply_to is not None
    summary = None
    if attestation is not None:
        summary = AttestationSummary(
            verification_level=attestation.verification_level,
            tee_id=attestation.tee_id,
            request_hash=attestation.request_hash,
            output_hash=attestation.output_hash,
            signature=attestation.signature,
            timestamp=attestation.timestamp,
            url=f"/api/messages/{reply.id}/attestation",
        )
    return DoneFrame(
        client_msg_id=client_msg_id,
        message_id=reply.id,
        reply_to=reply.reply_to,
        usage=usage_of(reply),
        cost_wei=str(reply.cost_wei),
        attestation=summary,
        verified=attestation is not None,
    )
