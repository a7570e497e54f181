"""What the autoscale signal looks like on HTTP and on the operators' websocket. Wei amounts are
decimal strings; rates are per second; streams are concurrent chat streams."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from msgspec import Meta, Struct

DecisionId = Annotated[str, Meta(pattern=r"^[0-9a-f]{32}$", description="a decision_id the server sent")]
OperatorId = Annotated[str, Meta(pattern=r"^[\x21-\x7e]{1,64}$", description="1–64 printable ASCII characters")]


class Latency(Struct):
    """Seconds at the 50th, 95th and 99th percentile over the last minute (null without samples)."""

    p50: float | None
    p95: float | None
    p99: float | None = None


class AvatarSignal(Struct):
    avatar_id: str
    arrivals_per_s: float
    key_buys: int  # in the last five minutes
    new_holders: int  # first buys in the last five minutes
    silent_new_holders: int  # of those, the ones who have not chatted since: chat still to come
    holders: int | None


class ModelSignal(Struct):
    model: str
    desired_nodes: int  # this model's demand alone, before stabilization
    demand_streams: int  # in flight + waiting, now
    forecast_streams: float
    queue_depth: int
    in_flight: int
    arrivals_per_s: float
    forecast_arrivals_per_s: float
    leading_arrivals_per_s: float
    tokens_per_s: float
    mean_service_s: float
    ttft_s: Latency
    queue_wait_s: Latency
    refusals: dict[str, int]  # by reason, in the last minute
    top_avatars: list[AvatarSignal]


class Earnings(Struct):
    """Expected wei per node-hour: paid replies per hour per node serving now, at current demand and at the
    demand forecast a cold start ahead (as far as those nodes' streams can serve it)."""

    current: str
    forecast: str


class Signal(Struct):
    """The autoscaler's current decision: for KEDA's metrics-api scaler, operators and people."""

    decision_id: str
    decided_at: datetime
    desired_nodes: int
    current_nodes: int
    previous_nodes: int
    direction: str  # up, down or hold
    reason: str
    demand_streams: int
    forecast_streams: float
    streams_per_node: int
    expected_earnings_wei_per_node_hour: Earnings
    acks: dict[str, int]  # operators' acknowledgements of this decision, by action
    models: list[ModelSignal]


class DecisionFrame(Signal, tag="decision", tag_field="type"):
    """Pushed to every operator on the websocket for each new decision (and the current one on connect)."""


class HistoryPoint(Struct):
    """One tick: demand and forecast in concurrent streams, desired and current in nodes."""

    timestamp: datetime
    demand: int
    forecast: float
    desired: int
    current: int


class History(Struct):
    interval_s: float
    points: list[HistoryPoint]  # oldest first


class AckAction(StrEnum):
    joining = "joining"  # bringing nodes up for this decision
    leaving = "leaving"  # taking nodes down for it
    declined = "declined"  # not acting on it
    seen = "seen"


class AckFrame(Struct, forbid_unknown_fields=True):
    """An operator's acknowledgement of a decision."""

    type: Literal["ack"]
    decision_id: DecisionId
    operator: OperatorId
    action: AckAction
    nodes: Annotated[int, Meta(ge=0, le=10_000)] = 0


class AckRecordedFrame(Struct, tag="ack_recorded", tag_field="type"):
    decision_id: str
    operator: str
    action: AckAction


class OperatorErrorFrame(Struct, tag="error", tag_field="type"):
    code: str
    detail: str
    field: str | None = None
