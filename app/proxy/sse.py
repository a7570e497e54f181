"""Server-sent events, read from and written to the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx


async def read_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """Yield ``(event, data)`` for each event of an SSE body (event defaults to ``message``)."""
    event = "message"
    data = list[str]()
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event, "\n".join(data)
            event = "message"
            data = list[str]()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield event, "\n".join(data)


def data_frame(payload: bytes) -> bytes:
    """One ``data:`` event carrying an already-encoded JSON payload."""
    return b"data: " + payload + b"\n\n"


DONE_FRAME = b"data: [DONE]\n\n"
