"""Reach an ASGI app in the same process as if over HTTP: a streaming httpx transport and a
lifespan runner. The backend talks to its embedded node through these, with exactly the code it
uses for a remote node.

``httpx.ASGITransport`` buffers a whole response before returning it, which would turn every
stream into one late chunk; :class:`StreamingASGITransport` hands each body chunk on as the app
sends it, and closing the response tells the app the client disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, MutableMapping
from typing import Any
from urllib.parse import unquote

import httpx
from litestar.types import ASGIApp

Message = MutableMapping[str, Any]
_END = b""
CLOSE_GRACE_S = 5.0


class StreamingASGITransport(httpx.AsyncBaseTransport):
    def __init__(self, app: ASGIApp, client: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self._app = app
        self._client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": request.url.scheme,
            "path": unquote(request.url.path),
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "root_path": "",
            "headers": [(key.lower(), value) for key, value in request.headers.raw],
            "server": (request.url.host, request.url.port or (443 if request.url.scheme == "https" else 80)),
            "client": self._client,
            "state": {},
        }
        exchange = _Exchange(body)
        exchange.task = asyncio.create_task(exchange.run(self._app, scope))
        start = await exchange.started()
        return httpx.Response(
            start["status"], headers=start.get("headers", []), stream=_ResponseStream(exchange), request=request
        )


class _Exchange:
    """One request/response between the transport and the app."""

    def __init__(self, body: bytes) -> None:
        self._body: bytes | None = body
        self._start: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.chunks: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self.disconnected = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self, app: ASGIApp, scope: Message) -> None:
        try:
            await app(scope, self.receive, self.send)  # type: ignore[arg-type]
        except BaseException as error:
            if not self._start.done():
                self._start.set_exception(error)
            self.chunks.put_nowait(error if isinstance(error, Exception) else ConnectionError("app cancelled"))
            if not isinstance(error, Exception):
                raise
        else:
            if not self._start.done():
                self._start.set_exception(RuntimeError("the app returned without a response"))
            self.chunks.put_nowait(_END)

    async def started(self) -> Message:
        return await self._start

    async def receive(self) -> Message:
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self.disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._start.set_result(message)
        elif message["type"] == "http.response.body":
            if chunk := message.get("body", b""):
                self.chunks.put_nowait(chunk)
            if not message.get("more_body", False):
                self.disconnected.set()  # as a server does once the response is complete
                self.chunks.put_nowait(_END)


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, exchange: _Exchange) -> None:
        self._exchange = exchange

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self._exchange.chunks.get()
            if isinstance(chunk, BaseException):
                raise httpx.ReadError(f"the app failed mid-response: {chunk!r}") from chunk
            if chunk is _END or not chunk:
                return
            yield chunk

    async def aclose(self) -> None:
        """The client is done (or gone): tell the app, and let it finish its cleanup."""
        self._exchange.disconnected.set()
        task = self._exchange.task
        if task is not None and not task.done():
            # The app's own failure, if any, was already reported to the reader: only wait here.
            await asyncio.wait({task}, timeout=CLOSE_GRACE_S)
            if not task.done():
                task.cancel()


@contextlib.asynccontextmanager
async def running_lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Run the app's ASGI lifespan: startup on enter, shutdown on exit."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    task: asyncio.Task[None] = asyncio.create_task(app(scope, inbox.get, outbox.put))  # type: ignore[arg-type]

    async def step(message_type: str) -> None:
        await inbox.put({"type": message_type})
        reply = asyncio.create_task(outbox.get())
        await asyncio.wait({reply, task}, return_when=asyncio.FIRST_COMPLETED)
        if not reply.done():
            reply.cancel()
            task.result()  # raises the app's own error
            raise RuntimeError(f"the app ended during {message_type}")
        if reply.result()["type"].endswith(".failed"):
            raise RuntimeError(f"{message_type} failed: {reply.result().get('message', '')}")

    await step("lifespan.startup")
    try:
        yield
    finally:
        await step("lifespan.shutdown")
        await task
