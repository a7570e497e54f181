"""Caps on the chat websockets one session and one client address hold open (app/chat/sockets.py)."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest
from eth_account.signers.local import LocalAccount
from websockets.exceptions import ConnectionClosed

from app.chain.client import Chain
from app.config import Settings
from tests.chat.conftest import receive, reply_frames, send_message, serving
from tests.helpers import launch

TRY_AGAIN_LATER = 1013


async def test_sockets_beyond_the_session_and_address_caps_are_refused(settings: Settings, chain: Chain,
                                                                       creator: LocalAccount) -> None:
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

        await open_ones.pop(0).close()  # a socket closed frees its place
        async with served.chat(avatar_id, first) as again:
            await send_message(again, "m1", "Hello")
            frames = await reply_frames(again)

    assert session_refusal.value.rcvd is not None
    assert address_refusal.value.rcvd is not None
    assert session_refusal.value.rcvd.code == address_refusal.value.rcvd.code == TRY_AGAIN_LATER
    assert "per session" in session_refusal.value.rcvd.reason
    assert "per address" in address_refusal.value.rcvd.reason
    assert frames[-1]["type"] == "done"
