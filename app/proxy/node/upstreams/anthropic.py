"""Anthropic's Messages API, streamed (``POST /v1/messages`` with ``stream: true``).

System and developer messages become the top-level ``system`` field; the rest keep their
order. Usage comes from ``message_start`` (input tokens) and ``message_delta`` (the running
output total); ``event: error`` (e.g. ``overloaded_error``) ends the stream with an error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec

from app.proxy.node.chat_request import ChatRequest, content_text
from app.proxy.node.upstreams.base import (
    Finished,
    TextDelta,
    UpstreamError,
    UpstreamEvent,
    Usage,
    raise_for_upstream_status,
    redact,
)
from app.proxy.sse import read_events

ANTHROPIC_VERSION = "2023-06-01"
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class AnthropicUpstream:
    kind = "anthropic"

    def __init__(
        self, name: str, base_url: str, api_key: str | None, client: httpx.AsyncClient, *, default_max_tokens: int
    ) -> None:
        self.name = name
        self._url = base_url.rstrip("/") + "/v1/messages"
        self._api_key = api_key
        self._client = client
        self._default_max_tokens = default_max_tokens

    def _body(self, request: ChatRequest, model: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": request.max_tokens or self._default_max_tokens,  # Anthropic requires it
            "messages": [
                {"role": m["role"], "content": content_text(m.get("content"))}
                for m in request.messages
                if m["role"] in ("user", "assistant")
            ],
            "stream": True,
        }
        if request.system_prompt:
            body["system"] = request.system_prompt
        if request.temperature is not None:
            body["temperature"] = min(request.temperature, 1.0)  # Anthropic's range is 0 to 1
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop_sequences"] = request.stop
        return body

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[UpstreamEvent]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        prompt_tokens = completion_tokens = 0
        finish_reason = "stop"
        async with self._client.stream("POST", self._url, json=self._body(request, model), headers=headers) as response:
            await raise_for_upstream_status(self.name, response, self._api_key)
            async for event, data in read_events(response):
                payload = self._decode(data)
                kind = payload.get("type", event)
                if kind == "content_block_delta":
                    delta = payload.get("delta") or {}
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        yield TextDelta(delta["text"])
                elif kind == "message_start":
                    usage = (payload.get("message") or {}).get("usage") or {}
                    prompt_tokens = int(usage.get("input_tokens") or 0)
                    completion_tokens = int(usage.get("output_tokens") or 0)
                elif kind == "message_delta":
                    # output_tokens here is the running total, not an increment
                    usage = payload.get("usage") or {}
                    completion_tokens = int(usage.get("output_tokens") or completion_tokens)
                    stop_reason = (payload.get("delta") or {}).get("stop_reason")
                    finish_reason = _FINISH_REASONS.get(stop_reason, "stop") if stop_reason else finish_reason
                elif kind == "error":
                    error = payload.get("error") or {}
                    raise UpstreamError(
                        self.name, redact(f"{error.get('type', 'error')}: {error.get('message', '')}", self._api_key)
                    )
                elif kind == "message_stop":
                    break
            else:
                raise UpstreamError(self.name, "the stream ended before message_stop")
        yield Usage(prompt_tokens, completion_tokens)
        yield Finished(finish_reason)

    def _decode(self, data: str) -> dict[str, Any]:
        try:
            payload = msgspec.json.decode(data)
        except msgspec.DecodeError:
            raise UpstreamError(self.name, f"unreadable event: {redact(data[:200], self._api_key)}") from None
        if not isinstance(payload, dict):
            raise UpstreamError(self.name, "an event is not a JSON object")
        return payload
