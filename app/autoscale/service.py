"""The autoscaler of one backend process: each tick feeds the meter from the market, asks the
forecaster for a decision, records it for the history chart and Prometheus, and publishes each new
decision to operators through Litestar channels (memory, or Redis with ``TWIN_REDIS_URL``).

Operators acknowledge decisions on the websocket; :func:`parse_operator_frame` checks what they
send and :class:`AckBook` keeps the acknowledgements of recent decisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import msgspec
import structlog
from litestar.channels import ChannelsPlugin, Subscriber
from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.autoscale.forecast import Decision, Forecaster, ModelForecast, ScalingPolicy
from app.autoscale.meter import LEAD_WINDOW_S, DemandMeter
from app.autoscale.schemas import (
    AckFrame,
    AvatarSignal,
    DecisionFrame,
    Earnings,
    History,
    HistoryPoint,
    Latency,
    ModelSignal,
    OperatorErrorFrame,
    Signal,
)
from app.autoscale.shared_meter import SharedMeter
from app.autoscale.shared_signal import SharedSignal, as_frame, narrowed, shared_signal
from app.avatars.service import avatars_by_ids
from app.cluster.leader import Leadership
from app.config import Settings
from app.errors import NotFound
from app.market import service as market

log = structlog.get_logger()

OPERATOR_BACKLOG = 16  # decisions held for an operator who reads slower than they come; older ones are dropped
HISTORY_POINTS = 720  # an hour at the default tick
RECENT_DECISIONS = 64  # decisions operators may still acknowledge
ACKS_PER_DECISION = 1_000  # operators remembered per decision (the earliest are forgotten first)
MAX_OPERATOR_FRAME_BYTES = 4_096
ACK_EXAMPLE = '{"type": "ack", "decision_id": …, "operator": …, "action": …}'
TOP_AVATARS = 5
SECONDS_PER_HOUR = 3_600

DESIRED_NODES = Gauge("twin_autoscale_desired_nodes", "Inference nodes the autoscaler asks for")
CURRENT_NODES = Gauge("twin_autoscale_current_nodes", "Inference nodes serving, per the registry")
FORECAST_STREAMS = Gauge(
    "twin_autoscale_forecast_streams", "Concurrent chat streams forecast a cold start ahead", ["model"]
)
QUEUE_DEPTH = Gauge("twin_autoscale_queue_depth", "Chat messages waiting for a stream slot (this worker)", ["model"])
DECISIONS = Counter(
    "twin_autoscale_decisions", "Decisions that changed the desired node count", ["direction"]
)  # direction: up, down
ACKS = Counter("twin_autoscale_acks", "Operators' acknowledgements of decisions", ["action"])
OPERATORS = Gauge("twin_autoscale_operators", "Operators' websockets subscribed to decisions (this worker)")


class OperatorFrameError(Exception):
    """A frame from an operator that cannot be used; answered with an error frame, the socket stays open."""

    def __init__(self, code: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.frame = OperatorErrorFrame(code=code, detail=detail, field=field)


def parse_operator_frame(raw: str | bytes | None) -> AckFrame:
    """An operator's frame as an acknowledgement, or :class:`OperatorFrameError` saying what is wrong."""
    if not isinstance(raw, str):
        raise OperatorFrameError("bad_frame", "frames are JSON text; binary frames are not accepted")
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_OPERATOR_FRAME_BYTES:
        raise OperatorFrameError("frame_too_large", f"a frame may hold at most {MAX_OPERATOR_FRAME_BYTES} bytes")
    try:
        return msgspec.json.decode(raw, type=AckFrame)
    except msgspec.ValidationError as error:
        # msgspec names the field as "… field `name`" or "… - at `$.name`"; none when the frame is no object.
        named = re.search(r"field `([^`]+)`|`\$\.([^`]+)`", str(error))
        field = next(filter(None, named.groups())) if named else None
        if field is None:
            raise OperatorFrameError("bad_frame", f"a frame is a JSON object: {ACK_EXAMPLE}") from None
        if field == "type":
            raise OperatorFrameError("unknown_type", 'the only frame type is "ack"', field="type") from None
        raise OperatorFrameError("invalid_ack", str(error), field=field) from None
    except (msgspec.DecodeError, RecursionError):  # RecursionError: nested past the decoder's depth guard
        raise OperatorFrameError("bad_frame", f"not JSON: send {ACK_EXAMPLE}") from None


class AckBook:
    """Acknowledgements of the last ``RECENT_DECISIONS`` decisions, the latest per operator."""

    def __init__(self) -> None:
        self._decisions: OrderedDict[str, OrderedDict[str, AckFrame]] = OrderedDict()

    def open(self, decision_id: str) -> None:
        self._decisions[decision_id] = OrderedDict()
        while len(self._decisions) > RECENT_DECISIONS:
            self._decisions.popitem(last=False)

    def record(self, ack: AckFrame) -> None:
        acks = self._decisions.get(ack.decision_id)
        if acks is None:
            raise OperatorFrameError(
                "unknown_decision",
                f"no recent decision {ack.decision_id}; acknowledge one of the last {RECENT_DECISIONS} pushed",
                field="decision_id",
            )
        acks.pop(ack.operator, None)
        acks[ack.operator] = ack
        while len(acks) > ACKS_PER_DECISION:
            acks.popitem(last=False)
        ACKS.labels(action=ack.action.value).inc()
        log.info(
            "autoscale_ack",
            decision_id=ack.decision_id,
            operator=ack.operator,
            action=ack.action.value,
            nodes=ack.nodes,
        )

    def counts(self, decision_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for ack in self._decisions.get(decision_id, {}).values():
            counts[ack.action.value] = counts.get(ack.action.value, 0) + 1
        return counts


def _moment(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def _per_node_hour(models: Iterable[tuple[float, int | None]], nodes: int) -> str:
    """Wei per node-hour when ``(arrivals per second, mean price)`` pairs are served by ``nodes`` nodes."""
    wei_per_hour = sum(round(rate * SECONDS_PER_HOUR) * price for rate, price in models if price)
    return str(wei_per_hour // max(nodes, 1))


def expected_earnings(decision: Decision) -> Earnings:
    """Wei per node-hour now, and a cold start ahead for each node serving now. The forecast is shared by
    the nodes serving now, not by those asked for: ahead of a peak it rises before the nodes join, which is
    when an operator has to start one to be there in time. A node earns at most the replies its streams can
    serve, so a shortage shows as full nodes, not as an unbounded figure."""
    nodes = max(decision.current_nodes, 1)
    forecast_streams = sum(m.rate_streams for m in decision.models)
    served = min(1.0, nodes * decision.policy.streams_per_node / forecast_streams) if forecast_streams else 1.0
    return Earnings(
        current=_per_node_hour(
            ((m.demand.figures.arrivals_per_s, m.demand.figures.price_wei) for m in decision.models),
            decision.current_nodes,
        ),
        forecast=_per_node_hour(
            ((m.forecast_arrivals_per_s * served, m.demand.figures.price_wei) for m in decision.models), nodes
        ),
    )


def _model_signal(forecast: ModelForecast, policy: ScalingPolicy) -> ModelSignal:
    demand = forecast.demand
    figures = demand.figures
    leaders = sorted(
        demand.avatars, key=lambda avatar: (avatar.new_holders, avatar.figures.arrivals_short), reverse=True
    )[:TOP_AVATARS]
    return ModelSignal(
        model=forecast.model,
        desired_nodes=policy.nodes_wanted(forecast.forecast_streams),
        demand_streams=forecast.demand_streams,
        forecast_streams=round(forecast.forecast_streams, 3),
        queue_depth=figures.queue_depth,
        in_flight=figures.in_flight,
        arrivals_per_s=round(figures.arrivals_per_s, 4),
        forecast_arrivals_per_s=round(forecast.forecast_arrivals_per_s, 4),
        leading_arrivals_per_s=round(forecast.leading_arrivals_per_s, 4),
        tokens_per_s=round(figures.tokens_per_s, 3),
        mean_service_s=round(forecast.mean_service_s, 3),
        ttft_s=Latency(figures.ttft_p50_s, figures.ttft_p95_s),
        queue_wait_s=Latency(figures.wait_p50_s, figures.wait_p95_s, figures.wait_p99_s),
        refusals=figures.refusals,
        top_avatars=[
            AvatarSignal(
                avatar.avatar_id,
                round(avatar.figures.arrivals_per_s, 4),
                avatar.key_buys,
                avatar.new_holders,
                avatar.silent_new_holders,
                avatar.holders,
            )
            for avatar in leaders
        ],
    )


class AutoscaleService:
    """Meter, forecaster, history and publication of one backend process (``Services.autoscale``)."""

    def __init__(
        self,
        meter: DemandMeter,
        forecaster: Forecaster,
        channels: ChannelsPlugin,
        channel: str,
        *,
        sessions: async_sessionmaker[AsyncSession],
        current_nodes: Callable[[], Awaitable[int]],
        known_models: Iterable[str],
        tick_s: float,
    ) -> None:
        self.meter = meter
        self.forecaster = forecaster
        self.acks = AckBook()
        self._channels = channels
        self.channel = channel
        self._sessions = sessions
        self._current_nodes = current_nodes
        self._known_models = set(known_models)
        self._tick_s = tick_s
        self._history: deque[HistoryPoint] = deque(maxlen=HISTORY_POINTS)
        self.operators: set[Subscriber] = set()  # their backlogs are bounded by the channels plugin
        self._buys_after: int | None = None  # the last trade id fed to the meter
        self._gauged_models: set[str] = set()
        self._tick_lock = asyncio.Lock()
        self.shared: SharedSignal | None = None  # with several workers: the leader's signal, for followers
        self.shared_meter: SharedMeter | None = None  # with Redis: every worker's demand, for the leader

    async def run(self) -> None:
        """Tick every ``tick_s`` until cancelled (the lifespan task); a failed tick is logged and retried."""
        while True:
            try:
                await self.tick()
            except Exception as error:  # noqa: BLE001 - the next tick retries; the signal keeps its last decision
                log.warning("autoscale_tick_failed", error=repr(error))
            await asyncio.sleep(self._tick_s)

    async def tick(self) -> Decision:
        """Feed the meter from the market, decide, record and publish; the decision is returned."""
        async with self._tick_lock:
            await self._feed_market()
            current = await self._current_nodes()
            previous = self.forecaster.last
            snapshot = self.meter.snapshot()
            if self.shared_meter is not None:
                snapshot = await self.shared_meter.combined(snapshot)
            decision = self.forecaster.decide(snapshot, current)
            self._record(decision)
            if self.shared is not None:
                await self.shared.store(self._signal(decision, None))
            if previous is None or decision.decision_id != previous.decision_id:
                self.acks.open(decision.decision_id)
                if decision.direction != "hold":
                    DECISIONS.labels(direction=decision.direction).inc()
                log.info(
                    "autoscale_decision",
                    decision_id=decision.decision_id,
                    desired=decision.desired_nodes,
                    current=current,
                    reason=decision.reason,
                )
                await self._channels.wait_published(msgspec.json.encode(self._frame(decision)), self.channel)
            return decision

    async def latest(self) -> Decision:
        """The current decision (the first one is made on demand)."""
        return self.forecaster.last or await self.tick()

    async def signal(self, model: str | None = None) -> Signal:
        """The current decision as JSON; ``model`` narrows the breakdown to one model (404 for unknown ones)."""
        leaders = await self.shared.leaders() if self.shared is not None else None  # a follower's answer
        decision = None if leaders is not None else await self.latest()
        metered = leaders.models if leaders is not None else decision.models  # type: ignore[union-attr]
        if model is not None and model not in self._known_models | {m.model for m in metered}:
            raise NotFound(
                f"unknown model {model!r}; known: {', '.join(sorted(self._known_models))}", code="unknown_model"
            )
        return narrowed(leaders, model) if leaders is not None else self._signal(decision, model)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def operator(self, subscriber: Subscriber) -> Iterator[None]:
        """Count an operator's subscription while it lasts."""
        self.operators.add(subscriber)
        OPERATORS.inc()
        try:
            yield
        finally:
            self.operators.discard(subscriber)
            OPERATORS.dec()

    async def current_frame(self) -> bytes:
        if self.shared is not None and (leaders := await self.shared.leaders()) is not None:
            return as_frame(leaders)
        return msgspec.json.encode(self._frame(await self.latest()))

    def history(self, limit: int) -> History:
        points = list(self._history)[-limit:]
        return History(interval_s=self._tick_s, points=points)

    def _frame(self, decision: Decision) -> DecisionFrame:
        return DecisionFrame(**msgspec.structs.asdict(self._signal(decision, None)))

    def _signal(self, decision: Decision, model: str | None) -> Signal:
        per_node = decision.policy.streams_per_node
        models = [forecast for forecast in decision.models if model is None or forecast.model == model]
        earnings = expected_earnings(decision)
        return Signal(
            decision_id=decision.decision_id,
            decided_at=_moment(decision.at),
            desired_nodes=decision.desired_nodes,
            current_nodes=decision.current_nodes,
            previous_nodes=decision.previous_nodes,
            direction=decision.direction,
            reason=decision.reason,
            demand_streams=decision.demand_streams,
            forecast_streams=round(decision.forecast_streams, 3),
            streams_per_node=per_node,
            expected_earnings_wei_per_node_hour=earnings,
            acks=self.acks.counts(decision.decision_id),
            models=[_model_signal(forecast, decision.policy) for forecast in models],
        )

    def _record(self, decision: Decision) -> None:
        self._history.append(
            HistoryPoint(
                timestamp=_moment(decision.at),
                demand=decision.demand_streams,
                forecast=round(decision.forecast_streams, 3),
                desired=decision.desired_nodes,
                current=decision.current_nodes,
            )
        )
        DESIRED_NODES.set(decision.desired_nodes)
        CURRENT_NODES.set(decision.current_nodes)
        metered = {forecast.model for forecast in decision.models}
        for model in self._gauged_models - metered:  # a model gone idle leaves the exposition
            FORECAST_STREAMS.remove(model)
            QUEUE_DEPTH.remove(model)
        self._gauged_models = metered
        for forecast in decision.models:
            FORECAST_STREAMS.labels(model=forecast.model).set(forecast.forecast_streams)
            QUEUE_DEPTH.labels(model=forecast.model).set(forecast.demand.figures.queue_depth)

    async def _feed_market(self) -> None:
        """Key buys since the last tick (the last five minutes' at the first), and holder counts."""
        async with self._sessions() as session:
            if self._buys_after is None:
                since = datetime.now(UTC) - timedelta(seconds=LEAD_WINDOW_S)
                self._buys_after = await market.trade_id_before(session, since)
            while True:
                buys = await market.key_buys_after(session, self._buys_after)
                if not buys:
                    break
                models = await avatars_by_ids(session, sorted({buy.avatar_id for buy in buys}))
                for buy in buys:
                    avatar = models.get(buy.avatar_id)
                    if avatar is not None:
                        self.meter.key_bought(avatar.model, buy.avatar_id, buy.trader, new_holder=buy.first_buy)
                self._buys_after = buys[-1].trade_id
            for avatar_id, holders in (await market.holder_counts(session, self.meter.avatar_ids())).items():
                self.meter.set_holders(avatar_id, holders)


def decisions_channel(settings: Settings) -> str:
    """The channel decisions are published on; named per deployment, as Redis pub/sub channels are global."""
    return f"{settings.redis_namespace}:autoscale:decisions"


def policy_from(settings: Settings) -> ScalingPolicy:
    return ScalingPolicy(
        streams_per_node=settings.chat_streams_per_node,
        headroom=settings.autoscale_headroom,
        min_nodes=settings.autoscale_min_nodes,
        max_nodes=settings.autoscale_max_nodes,
        cold_start_s=settings.autoscale_cold_start_s,
        stabilization_s=settings.autoscale_stabilization_s,
    )


@asynccontextmanager
async def running_autoscaler(
    settings: Settings,
    channels: ChannelsPlugin,
    sessions: async_sessionmaker[AsyncSession],
    current_nodes: Callable[[], Awaitable[int]],
    known_models: Iterable[str],
    leadership: Leadership | None = None,
) -> AsyncIterator[AutoscaleService]:
    """The process's autoscaler, ticking every ``TWIN_AUTOSCALE_TICK_S`` (never at 0: tests tick it themselves)."""
    autoscale = AutoscaleService(
        DemandMeter(),
        Forecaster(policy_from(settings)),
        channels,
        decisions_channel(settings),
        sessions=sessions,
        current_nodes=current_nodes,
        known_models=known_models,
        tick_s=settings.autoscale_tick_s,
    )
    task = None
    if leadership is not None:  # one worker decides (app/cluster/leader.py); the others show its signal
        autoscale.shared = shared_signal(settings, leadership)
        if settings.autoscale_tick_s:
            leadership.singleton("autoscale", autoscale.run)
        if autoscale.shared.redis is not None and settings.autoscale_tick_s:
            autoscale.shared_meter = SharedMeter(
                autoscale.shared.redis, settings.redis_namespace, autoscale.meter, tick_s=settings.autoscale_tick_s
            )
            task = asyncio.create_task(autoscale.shared_meter.run(), name="autoscale-meter")
    elif settings.autoscale_tick_s:
        task = asyncio.create_task(autoscale.run(), name="autoscale")
    try:
        yield autoscale
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if autoscale.shared is not None:
            await autoscale.shared.aclose()
