"""The operators' websocket: the current decision on connect, each new one pushed (through memory or the
real Redis), acknowledgements recorded, malformed frames answered, and a subscriber that never reads
holding a bounded backlog."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.channels import ChannelsPlugin
from websockets.asyncio.client import ClientConnection, connect

from app.autoscale.service import OPERATOR_BACKLOG, AutoscaleService
from app.chain.client import Chain
from app.config import Settings
from tests.autoscale.conftest import MODEL
from tests.chat.conftest import RECEIVE_TIMEOUT_S, Served, serving
from tests.redis_namespace import isolated_redis

AVATAR = "0x" + "ab" * 16


@pytest.fixture(params=["memory", "redis"])
async def served(request: pytest.FixtureRequest, settings: Settings, chain: Chain) -> AsyncIterator[Served]:
    """The backend with its channels in memory, or on the real Redis under a namespace of this test's own
    (deleted afterwards)."""
    if request.param == "memory":
        async with serving(settings, chain) as running:
            yield running
        return
    async with (
        isolated_redis() as redis,
        serving(
            settings.model_copy(update={"redis_url": redis.url, "redis_namespace": redis.namespace}), chain
        ) as running,
    ):
        yield running


@contextlib.asynccontextmanager
async def operator(served: Served) -> AsyncIterator[ClientConnection]:
    async with connect(f"{served.ws_base}/ws/autoscale", open_timeout=10, close_timeout=5) as socket:
        yield socket


async def receive(socket: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(RECEIVE_TIMEOUT_S):
        return json.loads(await socket.recv())


def autoscale_of(served: Served) -> AutoscaleService:
    return served.app.state.services.autoscale


async def test_an_operator_gets_the_current_decision_then_each_new_one(served: Served) -> None:
    async with operator(served) as socket:
        current = await receive(socket)
        assert current["type"] == "decision"
        assert current["decision_id"] == (await autoscale_of(served).latest()).decision_id
        with contextlib.ExitStack() as waiting:
            for fan in range(60):
                waiting.enter_context(autoscale_of(served).meter.track(MODEL, AVATAR, f"0xfan{fan}"))
            decision = await autoscale_of(served).tick()
            pushed = await receive(socket)
    assert pushed["type"] == "decision"
    assert pushed["decision_id"] == decision.decision_id != current["decision_id"]
    assert (pushed["direction"], pushed["desired_nodes"]) == ("up", decision.desired_nodes)
    assert set(pushed["expected_earnings_wei_per_node_hour"]) == {"current", "forecast"}
    assert pushed["models"][0]["queue_depth"] == 60


async def test_acknowledgements_are_recorded_per_operator(served: Served) -> None:
    http = await served.signed_in(served.chain.dev_accounts[3])
    async with operator(served) as socket:
        decision_id = (await receive(socket))["decision_id"]
        for name, action in (("op-1", "joining"), ("op-2", "declined"), ("op-1", "seen"), ("op-3", "joining")):
            await socket.send(
                json.dumps({"type": "ack", "decision_id": decision_id, "operator": name, "action": action, "nodes": 2})
            )
            assert await receive(socket) == {
                "type": "ack_recorded",
                "decision_id": decision_id,
                "operator": name,
                "action": action,
            }
    signal = (await http.get("/api/autoscale/signal")).json()
    assert signal["acks"] == {"declined": 1, "seen": 1, "joining": 1}  # op-1's latest word replaced its first
    metrics = (await http.get("/metrics")).text
    assert 'twin_autoscale_acks_total{action="joining"}' in metrics


MALFORMED = [
    (b"\x00binary", "bad_frame", None),
    ("not json", "bad_frame", None),
    ("[1, 2]", "bad_frame", None),
    (json.dumps({"type": "subscribe"}), "unknown_type", "type"),
    (json.dumps({"type": "ack"}), "invalid_ack", "decision_id"),
    (
        json.dumps({"type": "ack", "decision_id": "zz", "operator": "op", "action": "seen"}),
        "invalid_ack",
        "decision_id",
    ),
    (
        json.dumps({"type": "ack", "decision_id": "0" * 32, "operator": "op", "action": "maybe"}),
        "invalid_ack",
        "action",
    ),
    (
        json.dumps({"type": "ack", "decision_id": "0" * 32, "operator": "o" * 65, "action": "seen"}),
        "invalid_ack",
        "operator",
    ),
    (
        json.dumps({"type": "ack", "decision_id": "0" * 32, "operator": "op", "action": "seen", "nodes": -1}),
        "invalid_ack",
        "nodes",
    ),
    (
        json.dumps({"type": "ack", "decision_id": "0" * 32, "operator": "op", "action": "seen", "extra": 1}),
        "invalid_ack",
        "extra",
    ),
    (
        json.dumps({"type": "ack", "decision_id": "0" * 32, "operator": "op", "action": "seen"}),
        "unknown_decision",
        "decision_id",
    ),
    (json.dumps({"type": "ack", "padding": "x" * 5000}), "frame_too_large", None),
]


async def test_malformed_frames_get_error_frames_and_the_socket_stays_open(served: Served) -> None:
    async with operator(served) as socket:
        decision_id = (await receive(socket))["decision_id"]
        for frame, code, field in MALFORMED:
            await socket.send(frame)
            error = await receive(socket)
            assert (error["type"], error["code"], error["field"]) == ("error", code, field), frame
            assert error["detail"]
        await socket.send(json.dumps({"type": "ack", "decision_id": decision_id, "operator": "op", "action": "seen"}))
        assert (await receive(socket))["type"] == "ack_recorded"
    assert autoscale_of(served).acks.counts(decision_id) == {"seen": 1}


class StalledOperator:
    """An operator's websocket at the ASGI level that takes the first frame, then never reads another:
    every later send blocks, as it does once a client that stopped reading has filled the TCP buffers."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.first_frame = asyncio.Event()
        self.reading = asyncio.Event()
        self.leave = asyncio.Event()
        self._connected = False

    async def receive(self) -> dict[str, Any]:
        if not self._connected:
            self._connected = True
            return {"type": "websocket.connect"}
        await self.leave.wait()
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] != "websocket.send":
            return
        if self.frames:
            await self.reading.wait()
        self.frames.append(json.loads(message["text"]))
        self.first_frame.set()


async def test_an_operator_who_never_reads_keeps_only_the_newest_decisions(settings: Settings, chain: Chain) -> None:
    async with serving(settings, chain) as served:  # the backlog is the subscription's, whatever the backend
        await stalled_operator_keeps_the_newest(served)


async def stalled_operator_keeps_the_newest(served: Served) -> None:
    autoscale = autoscale_of(served)
    stalled = StalledOperator()
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": "/ws/autoscale",
        "raw_path": b"/ws/autoscale",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "subprotocols": [],
    }
    connection = asyncio.create_task(served.app(scope, stalled.receive, stalled.send))
    async with asyncio.timeout(RECEIVE_TIMEOUT_S):
        await stalled.first_frame.wait()
    channels = served.app.plugins.get(ChannelsPlugin)
    published = [uuid.uuid4().hex for _ in range(10 * OPERATOR_BACKLOG)]
    for decision_id in published:
        await channels.wait_published(
            json.dumps({"type": "decision", "decision_id": decision_id}).encode(), autoscale.channel
        )
    (subscriber,) = autoscale.operators
    async with asyncio.timeout(RECEIVE_TIMEOUT_S):  # the decisions reach the subscription, which keeps the newest
        while subscriber.qsize < OPERATOR_BACKLOG - 1:  # noqa: ASYNC110 - the backlog is a queue inside Litestar
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # had it been unbounded, the rest would pile up now
    assert subscriber.qsize <= OPERATOR_BACKLOG
    stalled.reading.set()
    async with asyncio.timeout(RECEIVE_TIMEOUT_S):
        while stalled.frames[-1]["decision_id"] != published[-1]:  # noqa: ASYNC110 - the sends are the signal
            await asyncio.sleep(0.01)
    pushed = [published.index(frame["decision_id"]) for frame in stalled.frames[1:]]
    # The decision being sent when the operator stalled, then the newest ones the backlog held; the rest dropped.
    assert len(pushed) <= OPERATOR_BACKLOG + 1
    assert pushed == sorted(pushed)
    assert pushed[-(OPERATOR_BACKLOG - 1) :] == list(range(len(published) - OPERATOR_BACKLOG + 1, len(published)))
    stalled.leave.set()
    await connection
    assert autoscale.operators == set()
