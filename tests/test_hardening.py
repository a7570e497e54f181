"""Process-wide guards (app/hardening.py): no input, however nested, crashes a process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from litestar import Litestar, WebSocket, post, websocket
from litestar.params import JSONBody
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.config import Settings
from app.hardening import BodyReadTimeout
from app.serving import uvicorn_config
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_deeply_nested_json_at_every_entry_point_is_a_400_not_a_crash() -> None:
    """100,000 levels of nesting after a dependency (py_ecc) raised the recursion limit used to segfault (exit -11)."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "deep_json_cases.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout


def test_frame_parsers_refuse_nesting_past_the_depth_guard() -> None:
    """4 KiB of brackets fits an operator's frame and nests past the recursion limit once it is sane."""
    from app.autoscale.service import OperatorFrameError, parse_operator_frame
    from app.chat.frames import FrameError, parse_frame
    from app.hardening import keep_recursion_limit_sane

    keep_recursion_limit_sane()
    deep = "[" * 2000 + "]" * 2000
    with pytest.raises(OperatorFrameError) as operator:
        parse_operator_frame(deep)
    with pytest.raises(FrameError) as chat:
        parse_frame(deep, max_frame_bytes=16_384, max_message_chars=100)

    assert operator.value.frame.code == chat.value.code == "bad_frame"


# ---------------------------------------------------------------- transport limits (twin serve, twin proxy serve)


def _limits_app() -> Litestar:
    @post("/echo", status_code=200)
    async def echo(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        return data

    @websocket("/ws")
    async def lengths(socket: WebSocket[Any, Any, Any]) -> None:
        await socket.accept()
        while True:
            await socket.send_text(str(len(await socket.receive_text())))

    return Litestar(route_handlers=[echo, lengths])


@asynccontextmanager
async def _served(settings: Settings) -> AsyncIterator[int]:
    """A small app under the uvicorn configuration `twin serve` uses, in this event loop."""
    port = free_port()
    server = uvicorn.Server(uvicorn_config(_limits_app(), settings, "127.0.0.1", port))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no started event
                await asyncio.sleep(0.02)
        yield port
    finally:
        server.should_exit = True
        await task


async def test_a_body_that_never_arrives_is_answered_408_in_time() -> None:
    async with _served(Settings(body_read_timeout_s=0.5)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"a": '
        )
        await writer.drain()
        async with asyncio.timeout(5):
            answer = await reader.read()  # the server closes the connection after its answer
        writer.close()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            whole = await client.post("/echo", json={"a": 1})

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    assert json.loads(body) == {"error": "request_timeout", "detail": "the request body did not arrive in time"}
    assert whole.json() == {"a": 1}


async def test_body_read_timeout_leaves_reads_after_the_body_alone() -> None:
    """A streamed response waits on receive() for the disconnect: no deadline applies to it."""
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((await receive())["type"])
        seen.append((await receive())["type"])

    messages = iter([{"type": "http.request", "body": b"{}", "more_body": False}, {"type": "http.disconnect"}])

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.2)
        return next(messages)

    async def send(message: Any) -> None:
        seen.append(message["type"])

    await BodyReadTimeout(app, 0.5)({"type": "http"}, receive, send)

    assert seen == ["http.request", "http.disconnect"]


async def test_websocket_messages_are_capped_by_the_protocol() -> None:
    async with _served(Settings(chat_max_frame_bytes=1024)) as port, connect(f"ws://127.0.0.1:{port}/ws") as ws:
        await ws.send("x" * 4 * 1024)
        fits = await ws.recv()
        await ws.send("x" * (4 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()

    assert fits == str(4 * 1024)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009  # message too big
