"""Fake LLM providers speaking each real wire format, on a real HTTP server, and server helpers.

One ASGI app answers OpenAI (``/v1/chat/completions``; ``/v1/embeddings`` with :func:`fake_embedding`),
Anthropic (``/v1/messages``) and Gemini
(``/v1beta/models/{model}:streamGenerateContent``). The upstream model name picks the behaviour:

* ``ok`` — a short reply with usage;
* ``fail`` — HTTP 500 (529 for Anthropic) before anything is streamed;
* ``midstream`` — two tokens, then the provider's own mid-stream error event;
* ``hang`` — one token, then silence until the client goes away (recorded in ``disconnects``);
* ``slow`` — waits ``slow_seconds`` before the first token;
* ``tools`` — (OpenAI) a tool call streamed in fragments.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import math
import socket
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn

REPLY_TOKENS = ["Hello", " from", " the", " fake", " upstream."]
REPLY_TEXT = "".join(REPLY_TOKENS)
PROMPT_TOKENS = 17
EMBEDDING_DIMENSIONS = 16


@dataclass
class FakeProviders:
    """The fake's memory: what it was asked, and which streams lost their client."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    disconnects: list[str] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    slow_seconds: float = 2.0

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = json.loads(body or b"{}")
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        path = scope["path"]
        if path.startswith("/v1beta/models/"):
            provider, model = "gemini", path.removeprefix("/v1beta/models/").partition(":")[0]
        elif path == "/v1/messages":
            provider, model = "anthropic", request.get("model", "")
        else:
            provider, model = "openai", request.get("model", "")
        self.requests.append({"provider": provider, "model": model, "body": request, "headers": headers})
        if model == "fail":
            status = 529 if provider == "anthropic" else 500
            error = {"type": "error", "error": {"type": "overloaded_error", "message": "fake outage"}}
            await _respond(send, status, json.dumps(error).encode(), "application/json")
            return
        if path == "/v1/embeddings":
            await _respond(send, 200, json.dumps(_openai_embeddings(model, request)).encode(), "application/json")
            return
        frames = {"openai": _openai_frames, "anthropic": _anthropic_frames, "gemini": _gemini_frames}[provider]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        streaming = asyncio.create_task(self._stream(send, frames(model, request), model))
        watching = asyncio.create_task(_wait_for_disconnect(receive))
        done, _ = await asyncio.wait({streaming, watching}, return_when=asyncio.FIRST_COMPLETED)
        if watching in done and not streaming.done():
            streaming.cancel()
            self.disconnects.append(f"{provider}:{model}")
            self.disconnected.set()
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await streaming

    async def _stream(self, send: Callable[..., Any], frames: list[bytes | float | None], model: str) -> None:
        if model == "slow":
            await asyncio.sleep(self.slow_seconds)
        for frame in frames:
            if frame is None:  # hang until the client leaves
                await asyncio.Event().wait()
            elif isinstance(frame, float):
                await asyncio.sleep(frame)
            else:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _respond(send: Callable[..., Any], status: int, body: bytes, content_type: str) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type.encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _wait_for_disconnect(receive: Callable[..., Any]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _data(payload: Any, event: str | None = None) -> bytes:
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {json.dumps(payload)}\n\n".encode()


def _tokens_for(model: str) -> list[str]:
    return REPLY_TOKENS[:2] if model in ("midstream", "hang") else REPLY_TOKENS


def fake_embedding(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A unit vector from the text's words (each word hashed to one axis): texts sharing words point alike."""
    vector = [0.0] * dimensions
    for word in text.lower().split():
        vector[int(hashlib.sha256(word.strip(".,!?").encode()).hexdigest(), 16) % dimensions] += 1.0
    norm = math.sqrt(sum(value * value for value in vector)) or 1.0
    return [value / norm for value in vector]


def _openai_embeddings(model: str, request: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's ``/v1/embeddings`` reply, floats or base64 float32 as asked."""
    inputs = request["input"] if isinstance(request["input"], list) else [request["input"]]
    data = []
    for index, text in enumerate(inputs):
        vector = fake_embedding(text, request.get("dimensions") or EMBEDDING_DIMENSIONS)
        encoded: Any = vector
        if request.get("encoding_format") == "base64":
            encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(len(text.split()) for text in inputs)
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _openai_frames(model: str, request: dict[str, Any]) -> list[bytes | float | None]:
    head = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model}
    frames: list[bytes | float | None] = []
    if model == "tools":
        first = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}
        for fragment in (
            first,
            {"index": 0, "function": {"arguments": '{"q": '}},
            {"index": 0, "function": {"arguments": '"weather"}'}},
        ):
            frames.append(
                _data(head | {"choices": [{"index": 0, "delta": {"tool_calls": [fragment]}, "finish_reason": None}]})
            )
        frames.append(_data(head | {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}))
    else:
        for token in _tokens_for(model):
            frames.append(_data(head | {"choices": [{"index": 0, "delta": {"content": token}, "finish_reason": None}]}))
        if model == "midstream":
            return [*frames, _data({"error": {"message": "fake failure mid-stream", "type": "server_error"}})]
        if model == "hang":
            return [*frames, None]
        frames.append(_data(head | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    if (request.get("stream_options") or {}).get("include_usage"):
        completion = 3 if model == "tools" else len(REPLY_TOKENS)
        frames.append(
            _data(
                head
                | {
                    "choices": [],
                    "usage": {
                        "prompt_tokens": PROMPT_TOKENS,
                        "completion_tokens": completion,
                        "total_tokens": PROMPT_TOKENS + completion,
                    },
                }
            )
        )
    return [*frames, b"data: [DONE]\n\n"]


def _anthropic_frames(model: str, request: dict[str, Any]) -> list[bytes | float | None]:
    frames: list[bytes | float | None] = [
        _data(
            {
                "type": "message_start",
                "message": {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": model,
                    "stop_reason": None,
                    "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1},
                },
            },
            "message_start",
        ),
        _data(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            "content_block_start",
        ),
        _data({"type": "ping"}, "ping"),
    ]
    for token in _tokens_for(model):
        frames.append(
            _data(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": token}},
                "content_block_delta",
            )
        )
    if model == "midstream":
        return [
            *frames,
            _data({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error"),
        ]
    if model == "hang":
        return [*frames, None]
    return [
        *frames,
        _data({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        _data(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(REPLY_TOKENS)},
            },
            "message_delta",
        ),
        _data({"type": "message_stop"}, "message_stop"),
    ]


def _gemini_frames(model: str, request: dict[str, Any]) -> list[bytes | float | None]:
    tokens = _tokens_for(model)
    frames: list[bytes | float | None] = []
    for index, token in enumerate(tokens):
        last = index == len(tokens) - 1 and model not in ("midstream", "hang")
        chunk: dict[str, Any] = {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": token}]}, **({"finishReason": "STOP"} if last else {})}
            ],
            "usageMetadata": {"promptTokenCount": PROMPT_TOKENS, "candidatesTokenCount": index + 1},
        }
        frames.append(_data(chunk))
    if model == "midstream":
        return [*frames, _data({"error": {"code": 503, "message": "fake overload", "status": "UNAVAILABLE"}})]
    if model == "hang":
        return [*frames, None]
    return frames


class _QuietServer(uvicorn.Server):
    """uvicorn inside the test's event loop, leaving signal handling to pytest."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override]
        yield


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def serving(make_app: Callable[[str], Any]) -> AsyncIterator[str]:
    """Serve ``make_app(base_url)`` on a free 127.0.0.1 port (lifespan included); yield the base URL."""
    sock = free_socket()
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = _QuietServer(
        uvicorn.Config(make_app(base_url), lifespan="on", log_level="warning", timeout_graceful_shutdown=2)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield base_url
    finally:
        server.should_exit = True
        await task
        sock.close()
