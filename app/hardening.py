"""Process-wide guards that keep one request from crashing or stalling a process, shared by the
backend (:func:`app.main.create_app`) and the proxy node (:func:`app.proxy.node.app.create_proxy_app`).

- The recursion limit: C decoders (msgspec, ``json``) guard their depth with Python's recursion
  limit. py_ecc (which Ethereum libraries may import) raises it to 100,000 when first imported; then
  ~50,000 levels of nested JSON overflow the C stack and the process dies with SIGSEGV instead
  of raising :class:`RecursionError`. :func:`keep_recursion_limit_sane` puts it back.
- JSON bodies: :class:`GuardedRequest` answers a body that is not UTF-8 or nests too deeply with
  a 400 naming the body, rather than a decoder's exception.
- Slow bodies: :class:`BodyReadTimeout` answers 408 when a request's body does not arrive in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Any

from litestar import Request
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

from app.validation import BadInput

# Python's own default: deep enough for the app, shallow enough that no C decoder can
# recurse past a thread's stack before it raises RecursionError.
SANE_RECURSION_LIMIT = 1_000

TOO_DEEP = "nests too deeply (at most a few hundred levels of arrays and objects)"


def keep_recursion_limit_sane() -> None:
    """Import what raises the recursion limit (so it cannot raise it later, at its first use),
    then lower the limit again. Both app factories call this."""
    with contextlib.suppress(ImportError):
        import py_ecc  # noqa: F401  (sets the limit to 100,000 as it is first imported)
    if sys.getrecursionlimit() > SANE_RECURSION_LIMIT:
        sys.setrecursionlimit(SANE_RECURSION_LIMIT)


class GuardedRequest(Request[Any, Any, Any]):
    """Litestar's request, whose JSON body is first checked to be UTF-8 and not too deep, so that
    every route that reads JSON (``data`` parameters and ``request.json()`` alike) answers
    ``400 invalid_request`` naming the body."""

    async def json(self) -> Any:
        body = await self.body()
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadInput("body", f"not UTF-8 (byte {error.start})") from None
        try:
            return await super().json()
        except RecursionError:
            raise BadInput("body", TOO_DEEP) from None


_TIMEOUT_BODY = b'{"error":"request_timeout","detail":"the request body did not arrive in time"}'


class BodyReadTimeout:
    """ASGI middleware: a request's whole body must arrive within ``timeout_s`` of the first read.

    uvicorn's ``timeout_keep_alive`` covers idle connections between requests, not a request that
    announces a longer body than it sends: that one would hold its connection (and a task) for as
    long as the client likes. On time-out the client gets 408 and the app sees a disconnect.
    """

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        state = _BodyRead(receive, send, self.timeout_s)
        await self.app(scope, state.receive, state.send)


class _BodyRead:
    """One request's reads under the deadline, and its responses held back once we answered 408."""

    def __init__(self, receive: Receive, send: Send, timeout_s: float) -> None:
        self._receive = receive
        self._send = send
        self._timeout_s = timeout_s
        self._deadline: float | None = None
        self._body_done = False
        self._response_started = False
        self._timed_out = False

    async def receive(self) -> ReceiveMessage:
        if self._timed_out:
            return {"type": "http.disconnect"}
        if self._body_done:
            return await self._receive()  # past the body only a disconnect comes (streams wait for it)
        if self._deadline is None:
            self._deadline = time.monotonic() + self._timeout_s
        try:
            message = await asyncio.wait_for(self._receive(), max(0.0, self._deadline - time.monotonic()))
        except TimeoutError:
            await self._answer_timeout()
            return {"type": "http.disconnect"}
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._body_done = True
        return message

    async def send(self, message: Message) -> None:
        if self._timed_out:
            return  # we answered already; what the app says after the disconnect goes nowhere
        if message["type"] == "http.response.start":
            self._response_started = True
        await self._send(message)

    async def _answer_timeout(self) -> None:
        self._timed_out = True
        if self._response_started:
            return
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 408,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_TIMEOUT_BODY)).encode()),
                (b"connection", b"close"),
            ],
        }
        body: HTTPResponseBodyEvent = {"type": "http.response.body", "body": _TIMEOUT_BODY, "more_body": False}
        await self._send(start)
        await self._send(body)
