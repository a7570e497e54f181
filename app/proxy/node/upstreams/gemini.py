"""Google Gemini, streamed (``models/{model}:streamGenerateContent?alt=sse``).

Assistant turns become ``model`` turns, system and developer messages the
``systemInstruction``. Each event's ``usageMetadata`` carries the running token counts; the
last one seen is the reply's usage (thinking tokens are billed as output, so they count).
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

_FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
}


class GeminiUpstream:
    kind = "gemini"

    def __init__(self, name: str, base_url: str, api_key: str | None, client: httpx.AsyncClient) -> None:
        self.name = name
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._client = client

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "contents": [
                {
                    "role": "model" if m["role"] == "assistant" else "user",
                    "parts": [{"text": content_text(m.get("content"))}],
                }
                for m in request.messages
                if m["role"] in ("user", "assistant")
            ],
        }
        if request.system_prompt:
            body["systemInstruction"] = {"parts": [{"text": request.system_prompt}]}
        config: dict[str, Any] = {}
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if request.top_p is not None:
            config["topP"] = request.top_p
        if request.max_tokens is not None:
            config["maxOutputTokens"] = request.max_tokens
        if request.stop:
            config["stopSequences"] = request.stop
        if config:
            body["generationConfig"] = config
        return body

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[UpstreamEvent]:
        url = f"{self._base_url}/v1beta/models/{model}:streamGenerateContent"
        headers = {"x-goog-api-key": self._api_key} if self._api_key else {}
        usage: Usage | None = None
        finish_reason: str | None = None
        async with self._client.stream(
            "POST", url, params={"alt": "sse"}, json=self._body(request), headers=headers
        ) as response:
            await raise_for_upstream_status(self.name, response, self._api_key)
            async for _, data in read_events(response):
                payload = self._decode(data)
                for candidate in (payload.get("candidates") or ())[:1]:
                    for part in (candidate.get("content") or {}).get("parts") or ():
                        if part.get("text") and not part.get("thought"):
                            yield TextDelta(part["text"])
                    if candidate.get("finishReason"):
                        finish_reason = _FINISH_REASONS.get(candidate["finishReason"], "stop")
                if metadata := payload.get("usageMetadata"):
                    usage = Usage(
                        int(metadata.get("promptTokenCount") or 0),
                        int(metadata.get("candidatesTokenCount") or 0) + int(metadata.get("thoughtsTokenCount") or 0),
                    )
        if finish_reason is None:
            raise UpstreamError(self.name, "the stream ended without a finishReason")
        if usage is not None:
            yield usage
        yield Finished(finish_reason)

    def _decode(self, data: str) -> dict[str, Any]:
        try:
            payload = msgspec.json.decode(data)
        except msgspec.DecodeError:
            raise UpstreamError(self.name, f"unreadable event: {redact(data[:200], self._api_key)}") from None
        if not isinstance(payload, dict):
            raise UpstreamError(self.name, "an event is not a JSON object")
        if error := payload.get("error"):
            if isinstance(error, dict):
                message = f"{error.get('status', 'error')}: {error.get('message', '')}"
            else:
                message = str(error)
            raise UpstreamError(self.name, f"error mid-stream: {redact(message, self._api_key)}")
        return payload
