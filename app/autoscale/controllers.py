"""The autoscale signal on HTTP (KEDA, the operations page) and the operators' websocket; the logic is in
:mod:`app.autoscale.service`."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import msgspec
from litestar import Controller, WebSocket, get, websocket
from litestar.channels import ChannelsPlugin
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect
from litestar.params import Parameter
from litestar.status_codes import WS_1008_POLICY_VIOLATION

from app.auth.origins import origin_allowed
from app.autoscale.schemas import AckRecordedFrame, History, OperatorErrorFrame, Signal
from app.autoscale.service import (
    HISTORY_POINTS,
    AutoscaleService,
    OperatorFrameError,
    parse_operator_frame,
)
from app.config import Settings
from app.errors import error_responses
from app.lib.websocket import LockedSender, SocketClosed

ModelQuery = Annotated[str | None, Parameter(description="narrow the breakdown to this model", max_length=128)]
PointsQuery = Annotated[int, Parameter(description=f"most recent points, 1–{HISTORY_POINTS}", ge=1, le=HISTORY_POINTS)]


class _DecisionId(msgspec.Struct):
    decision_id: str


class _OperatorSocket:
    """Frames out through one lock: decisions come from the subscription's task, replies from the receive loop."""

    def __init__(self, socket: WebSocket[Any, Any, Any]) -> None:
        self._sender = LockedSender(socket)
        self._last_decision: str | None = None

    async def decision(self, frame: bytes) -> None:
        """Each decision once: one made as the operator connects can also come through the subscription."""
        decision_id = msgspec.json.decode(frame, type=_DecisionId).decision_id
        if decision_id != self._last_decision:
            self._last_decision = decision_id
            await self.send(frame)

    async def send(self, frame: bytes) -> None:
        with contextlib.suppress(SocketClosed):  # closed under us: the receive loop ends
            await self._sender.send_text(frame.decode())


class AutoscaleController(Controller):
    tags = ["autoscale"]

    @get(
        "/api/autoscale/signal",
        summary="The autoscaler's decision: desired and current nodes, per-model "
        "breakdown, decision id and reason (KEDA metrics-api: desired_nodes)",
        responses=error_responses(400, 404),
    )
    async def signal(self, autoscale: NamedDependency[AutoscaleService], model: ModelQuery = None) -> Signal:
        return await autoscale.signal(model)

    @get(
        "/api/autoscale/history",
        summary="Recent demand, forecast, desired and current nodes, oldest first",
        responses=error_responses(400),
    )
    async def history(
        self, autoscale: NamedDependency[AutoscaleService], points: PointsQuery = HISTORY_POINTS
    ) -> History:
        return autoscale.history(points)

    @websocket("/ws/autoscale")
    async def operators(
        self,
        socket: WebSocket[Any, Any, Any],
        settings: NamedDependency[Settings],
        autoscale: NamedDependency[AutoscaleService],
        channels: NamedDependency[ChannelsPlugin],
    ) -> None:
        """Each decision as it is made (the current one first); operators acknowledge them (README: "Autoscale")."""
        await socket.accept()
        if not origin_allowed(socket.headers, settings):  # a foreign page may not listen in
            await socket.close(WS_1008_POLICY_VIOLATION, "origin not allowed")
            return
        out = _OperatorSocket(socket)
        async with channels.start_subscription([autoscale.channel]) as subscriber:
            with autoscale.operator(subscriber):
                await out.decision(await autoscale.current_frame())  # decisions made meanwhile wait in the backlog
                async with subscriber.run_in_background(out.decision, join=False):
                    with contextlib.suppress(WebSocketDisconnect):
                        while (event := await socket.receive())["type"] != "websocket.disconnect":
                            await out.send(msgspec.json.encode(self._answer(autoscale, event)))

    @staticmethod
    def _answer(autoscale: AutoscaleService, event: Any) -> AckRecordedFrame | OperatorErrorFrame:
        try:
            ack = parse_operator_frame(event.get("text") if event.get("text") is not None else event.get("bytes"))
            autoscale.acks.record(ack)
        except OperatorFrameError as error:
            return error.frame
        return AckRecordedFrame(decision_id=ack.decision_id, operator=ack.operator, action=ack.action)
