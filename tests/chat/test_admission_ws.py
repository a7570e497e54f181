"""Admission through the real websocket, on the in-memory queue and on the real Redis: a burst
beyond capacity waits with falling positions and estimates, the creator's band goes first, a full
queue and the rate limit refuse with a time to retry and keep nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from app.chain.client import Chain
from app.config import Settings
from tests.chat.conftest import Served, holding_fan, receive, reply_frames, send_message, serving
from tests.helpers import launch
from tests.redis_namespace import isolated_redis

SLOW_TOKENS_PER_S = 15  # replies last a few seconds: longer than the in-memory queue's 1 s look at its waiters


@pytest.fixture(params=["memory", "redis"])
async def gated(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Settings]:
    """Settings for one stream at a time, with the queue in memory or in a Redis namespace of this test's own."""
    overrides: dict[str, Any] = {"chat_streams_per_node": 1}
    if request.param == "memory":
        yield settings.model_copy(update=overrides)
        return
    async with isolated_redis() as redis:
        yield settings.model_copy(update={**overrides, "redis_url": redis.url, "redis_namespace": redis.namespace})


async def launched(served: Served, creator: LocalAccount) -> str:
    http = await served.signed_in(creator)
    avatar_id = await launch(http, served.chain, creator, "ada")  # type: ignore[arg-type]
    await served.index()
    return avatar_id


async def test_a_burst_beyond_capacity_waits_with_falling_positions_and_estimates(
    gated: Settings, chain: Chain, creator: LocalAccount
) -> None:
    fans = chain.dev_accounts[2:6]
    async with serving(gated, chain, tokens_per_second=SLOW_TOKENS_PER_S) as served:
        avatar_id = await launched(served, creator)
        sockets = []
        for fan in fans:
            http = await holding_fan(served, fan, avatar_id)
            sockets.append(await served.chat(avatar_id, http))
        try:
            first_frames = []
            for number, ws in enumerate(sockets):  # one after another, so arrival order is known
                await send_message(ws, f"m{number}", "Tell me about yourself")
                first_frames.append(await receive(ws))
            replies = await asyncio.gather(*(reply_frames(ws) for ws in sockets))
        finally:
            for ws in sockets:
                await ws.close()

    assert first_frames[0]["type"] == "token"  # the free slot
    assert [frame["position"] for frame in first_frames[1:]] == [1, 2, 3]
    for waiter, frames in zip(first_frames[1:], replies[1:], strict=True):
        queued = [waiter, *(frame for frame in frames if frame["type"] == "queued")]
        positions = [frame["position"] for frame in queued]
        etas = [frame["eta_s"] for frame in queued]
        assert positions == sorted(positions, reverse=True)
        assert positions[-1] == 1
        assert etas == sorted(etas, reverse=True)
        assert frames[-1]["type"] == "done"
    assert replies[0][-1]["type"] == "done"


async def test_the_creator_is_served_before_fans_who_waited_longer(
    gated: Settings, chain: Chain, creator: LocalAccount
) -> None:
    first_fan, waiting_fan = chain.dev_accounts[2:4]
    async with serving(gated, chain, tokens_per_second=SLOW_TOKENS_PER_S) as served:
        avatar_id = await launched(served, creator)
        streaming_http = await holding_fan(served, first_fan, avatar_id)
        waiting_http = await holding_fan(served, waiting_fan, avatar_id)
        creator_http = await served.signed_in(creator)
        async with (
            served.chat(avatar_id, streaming_http) as streaming,
            served.chat(avatar_id, waiting_http) as waiting,
            served.chat(avatar_id, creator_http) as own,
        ):
            await send_message(streaming, "a", "Hello")
            assert (await receive(streaming))["type"] == "token"
            await send_message(waiting, "b", "Hello")
            assert (await receive(waiting))["position"] == 1
            await send_message(own, "c", "Hello")
            assert (await receive(own))["position"] == 1  # ahead of the fan who came first

            finished: list[str] = []

            async def finish(name: str, ws: Any) -> list[dict[str, Any]]:
                frames = await reply_frames(ws)
                finished.append(name)
                return frames

            _, waited, _ = await asyncio.gather(
                finish("first fan", streaming), finish("waiting fan", waiting), finish("creator", own)
            )

    assert finished == ["first fan", "creator", "waiting fan"]
    assert next(frame["position"] for frame in waited if frame["type"] == "queued") == 2  # pushed back once


async def test_a_full_queue_refuses_at_once_with_a_time_to_retry_and_keeps_nothing(
    gated: Settings, chain: Chain, creator: LocalAccount
) -> None:
    settings = gated.model_copy(update={"chat_max_waiting": 1})
    fans = chain.dev_accounts[2:5]
    async with serving(settings, chain, tokens_per_second=SLOW_TOKENS_PER_S) as served:
        avatar_id = await launched(served, creator)
        https = [await holding_fan(served, fan, avatar_id) for fan in fans]
        async with (
            served.chat(avatar_id, https[0]) as streaming,
            served.chat(avatar_id, https[1]) as waiting,
            served.chat(avatar_id, https[2]) as refused,
        ):
            await send_message(streaming, "a", "Hello")
            assert (await receive(streaming))["type"] == "token"
            await send_message(waiting, "b", "Hello")
            assert (await receive(waiting))["type"] == "queued"
            await send_message(refused, "c", "Hello")
            error = await receive(refused)
            kept = (await https[2].get(f"/api/avatars/{avatar_id}/messages")).json()["items"]
            await asyncio.gather(reply_frames(streaming), reply_frames(waiting))
            await send_message(refused, "c", "Hello")  # the same message, once there is room
            retried = await reply_frames(refused)

    assert (error["type"], error["code"], error["client_msg_id"]) == ("error", "queue_full", "c")
    assert error["retry_after_s"] >= 1
    assert kept == []
    assert retried[-1]["type"] == "done"


async def test_a_fan_over_the_rate_limit_is_refused_with_a_time_to_retry(
    gated: Settings, chain: Chain, creator: LocalAccount
) -> None:
    settings = gated.model_copy(update={"chat_messages_per_minute": 2})
    async with serving(settings, chain) as served:
        avatar_id = await launched(served, creator)
        http = await holding_fan(served, chain.dev_accounts[2], avatar_id)
        async with served.chat(avatar_id, http) as ws:
            answered = []
            for number in range(2):
                await send_message(ws, f"m{number}", "Hello")
                answered.append((await reply_frames(ws))[-1]["type"])
            await send_message(ws, "m2", "Hello")
            limited = await receive(ws)
            await send_message(ws, "m0", "Hello")  # a resend of an answered message is not a new message
            resent = await reply_frames(ws)
        thread = (await http.get(f"/api/avatars/{avatar_id}/messages")).json()["items"]

    assert answered == ["done", "done"]
    assert (limited["code"], limited["client_msg_id"]) == ("rate_limited", "m2")
    assert 1 <= limited["retry_after_s"] <= 30
    assert resent[-1]["type"] == "done"
    assert len(thread) == 4  # two exchanges; the limited message was not kept
