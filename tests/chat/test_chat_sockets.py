"""Caps on the chat websockets one session and one client address hold open (app/chat/sockets.py)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from websockets.exceptions import ConnectionClosed

from app.chain.client import Chain
from app.config import Settings
from tests.chat.conftest import Served, receive, reply_frames, send_message, serving
from tests.helpers import launch

TRY_AGAIN_LATER = 1013


async def chat_when_admitted(served: Served, avatar_id: str, http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """A reply over a new socket, retrying while the server still counts a socket the client closed."""
    async with asyncio.timeout(10):
        while True:
            try:
                async with served.chat(avatar_id, http) as ws:
                    await send_message(ws, "m1", "Hello")
                    return await reply_frames(ws)
            except ConnectionClosed as closed:
                if closed.rcvd is None or closed.rcvd.code != TRY_AGAIN_LATER:
                    raise
                await asyncio.sleep(0.05)


async def test_sockets_beyond_the_session_and_address_caps_are_refused(
    settings: Settings, chain: Chain, creator: LocalAccount
) -> None:
    capped = settings.model_copy(update={"chat_max_sockets_per_session": 2, "chat_max_sockets_per_address": 3})
    async with serving(capped, chain) as served, AsyncExitStack() as sockets:
        first = await served.signed_in(creator)
        avatar_id = await launch(first, chain, creator, "ada")  # type: ignore[arg-type]
        await served.index()
        second = await served.signed_in(creator)  # another session of the same wallet, from the same address

        open_ones = [await sockets.enter_async_context(served.chat(avatar_id, first)) for _ in range(2)]
        async with served.chat(avatar_id, first) as third_of_session:
            with pytest.raises(ConnectionClosed) as session_refusal:
                await receive(third_of_session)
        open_ones.append(await sockets.enter_async_context(served.chat(avatar_id, second)))
        async with served.chat(avatar_id, second) as fourth_of_address:
            with pytest.raises(ConnectionClosed) as address_refusal:
                await receive(fourth_of_address)

        await open_ones.pop(0).close()  # a socket closed frees its place (once the server has seen it close)
        frames = await chat_when_admitted(served, avatar_id, first)

    assert session_refusal.value.rcvd is not None
    assert address_refusal.value.rcvd is not None
    assert session_refusal.value.rcvd.code == address_refusal.value.rcvd.code == TRY_AGAIN_LATER
    assert "per session" in session_refusal.value.rcvd.reason
    assert "per address" in address_refusal.value.rcvd.reason
    assert frames[-1]["type"] == "done"
