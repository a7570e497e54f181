"""What every upstream adapter speaks: a request in, a stream of events out.

An adapter turns its provider's wire format into :data:`UpstreamEvent` values and raises
:class:`UpstreamError` for anything that went wrong, with a reason safe to show a client
(never an API key). Whether an error falls over to the next upstream or ends the reply is
decided by the caller: only errors before the first token can fall over.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import httpx

from app.proxy.node.chat_request import ChatRequest

ERROR_BODY_LIMIT = 2_000


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCalls:
    """The reply's complete tool calls, in OpenAI's shape, sent once they are whole."""

    calls: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


@dataclass(frozen=True, slots=True)
class Finished:
    reason: str  # OpenAI's finish_reason: stop, length, tool_calls, content_filter


UpstreamEvent = TextDelta | ToolCalls | Usage | Finished


class UpstreamError(Exception):
    """An upstream failed; ``reason`` is safe to show (keys redacted, length bounded)."""

    def __init__(self, upstream: str, reason: str, *, status: int | None = None) -> None:
        super().__init__(f"{upstream}: {reason}")
        self.upstream = upstream
        self.reason = reason
        self.status = status


class Upstream(Protocol):
    name: str
    kind: str

    def stream(self, request: ChatRequest, model: str) -> AsyncIterator[UpstreamEvent]:
        """Stream one reply to ``request`` from the provider's ``model``."""
        ...


@dataclass(frozen=True, slots=True)
class Embeddings:
    """One vector per input, in the inputs' order, and the tokens the provider counted."""

    vectors: list[list[float]]
    prompt_tokens: int


@runtime_checkable
class EmbeddingUpstream(Upstream, Protocol):
    """An upstream that also serves ``/embeddings`` (OpenAI's wire format)."""

    async def embed(self, inputs: list[str], model: str, dimensions: int | None) -> Embeddings:
        """The provider's ``model``'s vectors for ``inputs``."""
        ...


_KEY_LIKE = re.compile(r"\b(sk|xai|key|AIza)[-_A-Za-z0-9]{8,}")


def redact(text: str, secret: str | None) -> str:
    """Drop the key itself and anything shaped like one from a provider's error text."""
    if secret:
        text = text.replace(secret, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)[:ERROR_BODY_LIMIT]


async def raise_for_upstream_status(name: str, response: httpx.Response, secret: str | None) -> None:
    """Turn a non-200 provider answer into an UpstreamError carrying its (redacted) message."""
    if response.status_code == 200:
        return
    raw = (await response.aread())[:ERROR_BODY_LIMIT].decode("utf-8", "replace")
    raise UpstreamError(
        name, f"HTTP {response.status_code}: {redact(provider_message(raw), secret)}", status=response.status_code
    )


def provider_message(raw: str) -> str:
    """The human part of an OpenAI/Anthropic/Gemini error body, or the raw text."""
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.strip()
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        kind = error.get("type") or error.get("status") or error.get("code")
        message = error.get("message", "")
        return f"{kind}: {message}" if kind else str(message)
    return raw.strip()
