"""OpenAI chat completions and embeddings, and every server that speaks them: xAI, vLLM, Ollama, llama.cpp.

The client's body is forwarded as sent (so provider-specific options pass through), with the
upstream's model name, streaming on, and ``stream_options.include_usage`` so the provider
reports token usage in its last chunk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec

from app.proxy.node.chat_request import ChatRequest
from app.proxy.node.upstreams.base import (
    Embeddings,
    Finished,
    TextDelta,
    ToolCalls,
    UpstreamError,
    UpstreamEvent,
    Usage,
    raise_for_upstream_status,
    redact,
)
from app.proxy.sse import read_events

# Fields the node owns; the rest of the client's body goes upstream unchanged.
_NODE_OWNED_FIELDS = ("model", "stream", "stream_options")


class OpenAIUpstream:
    kind = "openai"

    def __init__(self, name: str, base_url: str, api_key: str | None, client: httpx.AsyncClient) -> None:
        self.name = name
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._embeddings_url = base_url.rstrip("/") + "/embeddings"
        self._api_key = api_key
        self._client = client

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[UpstreamEvent]:
        body = {key: value for key, value in request.body.items() if key not in _NODE_OWNED_FIELDS}
        body |= {"model": model, "stream": True, "stream_options": {"include_usage": True}}
        tool_calls: dict[int, dict[str, Any]] = {}
        finish_reason: str | None = None
        async with self._client.stream("POST", self._url, json=body, headers=self._headers) as response:
            await raise_for_upstream_status(self.name, response, self._api_key)
            async for _, data in read_events(response):
                if data == "[DONE]":
                    break
                chunk = self._decode(data)
                if usage := chunk.get("usage"):
                    yield Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        yield TextDelta(delta["content"])
                    for fragment in delta.get("tool_calls") or ():
                        _merge_tool_call(tool_calls, fragment)
                    finish_reason = choice.get("finish_reason") or finish_reason
            else:
                raise UpstreamError(self.name, "the stream ended before [DONE]")
        if tool_calls:
            yield ToolCalls([tool_calls[index] for index in sorted(tool_calls)])
        yield Finished(finish_reason or "stop")

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    async def embed(self, inputs: list[str], model: str, dimensions: int | None) -> Embeddings:
        """``POST /embeddings`` as floats; the node re-encodes them as its client asked."""
        body: dict[str, Any] = {"model": model, "input": inputs, "encoding_format": "float"}
        if dimensions is not None:
            body["dimensions"] = dimensions
        response = await self._client.post(self._embeddings_url, json=body, headers=self._headers)
        await raise_for_upstream_status(self.name, response, self._api_key)
        try:
            reply = msgspec.json.decode(response.content)
            rows = sorted(reply["data"], key=lambda row: row["index"])
            vectors = [[float(value) for value in row["embedding"]] for row in rows]
            prompt_tokens = int((reply.get("usage") or {}).get("prompt_tokens") or 0)
        except (msgspec.DecodeError, KeyError, TypeError, ValueError, AttributeError):
            raise UpstreamError(self.name, "unreadable embeddings reply") from None
        if len(vectors) != len(inputs) or len({len(vector) for vector in vectors}) != 1:
            raise UpstreamError(self.name, f"{len(vectors)} vectors of unequal or no length for {len(inputs)} inputs")
        return Embeddings(vectors, prompt_tokens)

    def _decode(self, data: str) -> dict[str, Any]:
        try:
            chunk = msgspec.json.decode(data)
        except msgspec.DecodeError:
            raise UpstreamError(self.name, f"unreadable chunk: {redact(data[:200], self._api_key)}") from None
        if not isinstance(chunk, dict):
            raise UpstreamError(self.name, "a chunk is not a JSON object")
        if error := chunk.get("error"):
            message = error.get("message", error) if isinstance(error, dict) else error
            raise UpstreamError(self.name, f"error mid-stream: {redact(str(message), self._api_key)}")
        return chunk


def _merge_tool_call(calls: dict[int, dict[str, Any]], fragment: dict[str, Any]) -> None:
    """Tool calls stream in pieces (id and name first, arguments in fragments): join them."""
    call = calls.setdefault(
        fragment.get("index", 0), {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
    )
    if fragment.get("id"):
        call["id"] = fragment["id"]
    function = fragment.get("function") or {}
    if function.get("name"):
        call["function"]["name"] = function["name"]
    call["function"]["arguments"] += function.get("arguments") or ""
