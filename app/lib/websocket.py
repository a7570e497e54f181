"""One websocket, several senders: frames out through one lock, so that two tasks sending on the same socket
(a reply streaming while the receive loop answers, a subscription beside the loop) never interleave."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect


class SocketClosed(Exception):
    """The socket closed under a send."""


class LockedSender:
    def __init__(self, socket: WebSocket[Any, Any, Any]) -> None:
        self.socket = socket
        self._lock = asyncio.Lock()

    async def send_text(self, text: str) -> None:
        """Send one text frame, or raise :class:`SocketClosed` when the socket is gone."""
        try:
            async with self._lock:
                await self.socket.send_text(text)
        except (WebSocketDisconnect, OSError, RuntimeError) as error:  # closed under us
            raise SocketClosed(str(error)) from None
