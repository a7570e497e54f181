"""``/ws/activity`` pushes every new trade and launch, with the avatar's new key price, and the milestones
trades reach, so the marketplace's feed and the figures on any page move when someone trades (the feed:
app/catalog/activity.py)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from litestar import WebSocket, websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect
from litestar.status_codes import WS_1013_TRY_AGAIN_LATER

from app.catalog.activity import ActivityFeed


@websocket("/ws/activity", include_in_schema=False)
async def activity_socket(socket: WebSocket[Any, Any, Any], activity_feed: NamedDependency[ActivityFeed]) -> None:
    """Public and read-only: each message is one trade, launch or milestone (see
    :func:`app.catalog.activity.event_json`)."""
    await socket.accept()
    try:
        with activity_feed.listening() as queue:
            closed = asyncio.create_task(socket.receive_data("text"))  # ends when the client leaves
            try:
                while not closed.done():
                    next_event = asyncio.create_task(queue.get())
                    await asyncio.wait({closed, next_event}, return_when=asyncio.FIRST_COMPLETED)
                    if next_event.done():
                        await socket.send_json(next_event.result())
                    else:
                        next_event.cancel()
            finally:
                closed.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                    await closed
    except OverflowError:
        await socket.close(WS_1013_TRY_AGAIN_LATER, "too many listeners; retry shortly")
    except (WebSocketDisconnect, OSError, RuntimeError):
        pass
