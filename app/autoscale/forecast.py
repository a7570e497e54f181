"""The forecaster: from metered demand to a number of inference nodes, one decision per tick.

**Forecast** (per model, ``horizon`` = the nodes' cold start ahead, since a node asked for now serves
no sooner). The arrival rate is the larger of:

- *recent demand with its trend*: the last minute's arrivals, or — when a straight line fitted to
  the last two minutes' arrivals per second climbs or falls beyond Poisson noise (2.5 standard
  errors: a steady load seldom passes it, and what a trend adds is let go as soon as it is gone) —
  that line extended over the horizon;
- *the leading indicator*: the last minute's arrivals plus, per avatar, the new holders whose chat
  is still to come times how much its past holders chatted each. Still to come: *silent* new
  holders (first buy in the last five minutes, no message since), and those a buying spree will
  bring within the horizon at the last minute's pace of first buys. How much past holders chatted:
  their messages per second over the ten minutes before those five, per holder (an avatar with
  few holders borrows the average of all, ``prior_holders`` strong). Buys by existing holders add
  no chatter and are only reported. *As far as the evidence goes*: new holders of the last minute
  count in full (none could have chatted yet); older silent ones and those still to buy count for
  the ``warm_pool_share`` of them while none of their cohort chats, rising with the share who do,
  in full once ``evidence_share`` of them did — speculators who never chat cost a small warm pool,
  not a fleet. On top, each of those new holders sends a first message within the lead window: the
  silent ones' arrive over it (``LEAD_WINDOW_S``), as far as the cohort's chat backs them beyond the
  warm pool (nothing for a cohort none of whom chatted).

Concurrent streams needed = rate x mean stream duration, plus what it takes to drain the fans
already waiting within the horizon. Desired nodes = ceil(streams x (1 + headroom) / streams per
node), within [min, max].

**Decision.** Never fewer nodes than a reactive HPA asks for now — streams in flight and waiting at
the same utilization, its 10 % tolerance kept below the count but not above it (the HPA reading the
signal applies its own: two in a row would react later than one) — so that with nothing to foresee
the signal reacts to the queue as fast as the HPA, at every tick. Up at once, to the larger of that
and the forecast. Down only to the highest count wanted over the stabilization window (longer than a cold
start), counting there the reactive count and the *proven* forecast (the recent rate, or new
holders' chat as far as their cohort's chat backs it, and the backlog): what is only foreseen — a
trend's extension, new holders' warm pool — is asked for while it is foreseen, and let go (joining
nodes first) once it is not, instead of being held through the window; but no node goes while fans
wait for a stream. While a scale-up's nodes are still joining, the fans who queued meanwhile raise
the count only as far as the reactive count does, or the arrival rate alone beyond the joining count
and its headroom. A decision keeps its ``decision_id`` while the count holds; every change gets a
new one, with its reason.
"""

from __future__ import annotations

import math
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from app.autoscale.meter import LEAD_WINDOW_S, SHORT_WINDOW_S, AvatarDemand, DemandSnapshot, ModelDemand

DEFAULT_SERVICE_S = 20.0  # assumed stream duration before any stream of the model completed
# A slow ramp (a diurnal rise, a surge building over minutes) passes 2.5 standard errors a minute or two
# before it passes four, which is most of a cold start; a steady load that passes it by chance costs
# nodes only while it does, since a trend's extension is not remembered through stabilization.
NOISE_SIGMAS = 2.5

Direction = Literal["up", "down", "hold"]


@dataclass(frozen=True)
class ScalingPolicy:
    streams_per_node: int = 8
    headroom: float = 0.2
    min_nodes: int = 1
    max_nodes: int = 100
    cold_start_s: float = 120.0  # from asking for a node to its first stream: the horizon
    stabilization_s: float = 300.0  # scale down only to the highest count wanted this long
    prior_holders: float = 50.0  # how many holders' worth the all-avatar chat average weighs
    warm_pool_share: float = 0.2  # of the chat new holders promise, provisioned before any of them chats
    evidence_share: float = 0.1  # of an avatar's new holders chatting: their whole cohort is believed
    tolerance: float = 0.1  # the HPA's: a count within this share of what demand needs is kept

    def __post_init__(self) -> None:
        if self.streams_per_node < 1 or self.min_nodes < 0 or self.max_nodes < max(1, self.min_nodes):
            raise ValueError("streams_per_node >= 1, min_nodes >= 0 and max_nodes >= max(1, min_nodes)")
        if self.headroom < 0 or self.cold_start_s <= 0 or self.prior_holders < 0:
            raise ValueError("headroom and prior_holders must be >= 0, cold_start_s > 0")
        if not 0 <= self.warm_pool_share <= 1 or not 0 < self.evidence_share <= 1:
            raise ValueError("warm_pool_share within [0, 1], evidence_share within (0, 1]")
        if self.stabilization_s <= self.cold_start_s:
            raise ValueError("stabilization_s must exceed cold_start_s")

    def nodes_wanted(self, streams: float) -> int:
        """Nodes that serve ``streams`` with headroom, before the [min, max] bounds."""
        return math.ceil(round(streams * (1 + self.headroom) / self.streams_per_node, 9))

    def nodes_for(self, streams: float) -> int:
        return min(self.max_nodes, max(self.min_nodes, self.nodes_wanted(streams)))

    def reactive_nodes(self, streams: int, current_nodes: int) -> int:
        """What Kubernetes' HPA asks for on ``streams`` (in flight and waiting) at this utilization: the
        current count while demand is within its tolerance below it. Above it, no tolerance: the HPA
        reading the signal applies its own, and two in a row would react later than the HPA alone."""
        wanted = streams * (1 + self.headroom) / self.streams_per_node
        if current_nodes and 0 <= 1 - wanted / current_nodes <= self.tolerance:
            return min(self.max_nodes, max(self.min_nodes, current_nodes))
        return self.nodes_for(streams)


@dataclass(frozen=True)
class ModelForecast:
    """One model's demand now and ahead; rates in arrivals per second, streams concurrent."""

    model: str
    demand: ModelDemand
    mean_service_s: float
    trend_arrivals_per_s: float  # recent rate extrapolated over the horizon (the rate itself without a clear trend)
    leading_arrivals_per_s: float  # recent arrivals plus what silent new holders will add
    unproven_arrivals_per_s: float  # of that, what new holders add beyond what their cohort's chat backs
    forecast_arrivals_per_s: float
    rate_streams: float  # forecast rate x mean stream duration
    backlog_streams: float  # to drain the waiting fans within the horizon

    @property
    def demand_streams(self) -> int:
        """Streams asked for now: in flight and waiting."""
        return self.demand.figures.in_flight + self.demand.figures.queue_depth

    @property
    def forecast_streams(self) -> float:
        return self.rate_streams + self.backlog_streams

    @property
    def proven_streams(self) -> float:
        """The forecast without what is only foreseen: the recent rate, or the new holders' chat as far as
        the evidence goes, and the backlog."""
        proven_rate = max(
            self.demand.figures.arrivals_per_s, self.leading_arrivals_per_s - self.unproven_arrivals_per_s
        )
        return min(self.forecast_arrivals_per_s, proven_rate) * self.mean_service_s + self.backlog_streams


@dataclass(frozen=True)
class Decision:
    decision_id: str
    at: float
    desired_nodes: int
    current_nodes: int
    previous_nodes: int
    direction: Direction
    reason: str
    policy: ScalingPolicy
    models: tuple[ModelForecast, ...]

    @property
    def demand_streams(self) -> int:
        return sum(model.demand_streams for model in self.models)

    @property
    def forecast_streams(self) -> float:
        return sum(model.forecast_streams for model in self.models)


def trend_rate(arrivals: Sequence[int], horizon_s: float) -> float | None:
    """Arrivals per second ``horizon_s`` after the last of ``arrivals`` (counts per second), on the least-squares
    line through them; None unless its slope is beyond Poisson noise at a constant rate."""
    n = len(arrivals)
    if n < 2:
        return None
    mean = sum(arrivals) / n
    middle = (n - 1) / 2
    spread = n * (n * n - 1) / 12  # sum of (i - middle)^2
    slope = sum((i - middle) * count for i, count in enumerate(arrivals)) / spread
    if abs(slope) <= NOISE_SIGMAS * math.sqrt(mean / spread):
        return None
    return max(0.0, mean + slope * (n - 1 - middle + horizon_s))


def confidence(avatar: AvatarDemand, policy: ScalingPolicy) -> float:
    """How far the chat an avatar's new holders promise is believed: ``warm_pool_share`` before any of
    them chats, rising with the share who did, in full once ``evidence_share`` of them did."""
    if not avatar.new_holders:
        return policy.warm_pool_share
    chatting = max(0, avatar.new_holders - avatar.silent_new_holders) / avatar.new_holders
    return min(1.0, policy.warm_pool_share + (1 - policy.warm_pool_share) * chatting / policy.evidence_share)


def forecast_model(demand: ModelDemand, policy: ScalingPolicy, engagement_prior: float) -> ModelForecast:
    """Arrivals and streams this model will need a cold start from now; see the module docstring."""
    figures = demand.figures
    service_s = figures.mean_service_s or DEFAULT_SERVICE_S
    trend = trend_rate(figures.arrivals_series, policy.cold_start_s)
    if trend is None:
        trend = figures.arrivals_per_s
    leading = figures.arrivals_per_s
    unproven_rate = 0.0
    for avatar in demand.avatars:
        weight = avatar.holders_before + policy.prior_holders
        per_holder = (
            (avatar.figures.earlier_arrivals_per_s + engagement_prior * policy.prior_holders) / weight
            if weight
            else 0.0
        )
        # New holders of the last minute are believed in full: none of them could have chatted yet. Older
        # silent ones, and those a buying spree goes on to bring, as far as the evidence goes.
        young = min(avatar.silent_new_holders, avatar.new_holders_per_s * SHORT_WINDOW_S)
        unproven = avatar.silent_new_holders - young + avatar.new_holders_per_s * policy.cold_start_s
        believed = confidence(avatar, policy)
        promised = (young + unproven * believed) * per_holder
        # Each new holder who goes on to chat sends a first message within the lead window: silent ones'
        # arrive over what is left of it (about all of it for a fresh cohort), as far as their cohort's chat
        # backs it, so that speculators who never chat add nothing here.
        backed = (
            (believed - policy.warm_pool_share) / (1 - policy.warm_pool_share) if policy.warm_pool_share < 1 else 1.0
        )
        first_messages = (avatar.silent_new_holders + avatar.new_holders_per_s * policy.cold_start_s) * backed
        leading += promised + first_messages / LEAD_WINDOW_S
        # Only what the cohort's chat backs is remembered through the stabilization window: the warm pool
        # held for silent buyers goes with them (speculators cost a lead window, not a lead window and more).
        unproven_rate += promised * (1 - backed)
    rate = max(trend, leading)
    return ModelForecast(
        model=demand.model,
        demand=demand,
        mean_service_s=service_s,
        trend_arrivals_per_s=trend,
        leading_arrivals_per_s=leading,
        unproven_arrivals_per_s=unproven_rate,
        forecast_arrivals_per_s=rate,
        rate_streams=rate * service_s,
        backlog_streams=figures.queue_depth * service_s / policy.cold_start_s,
    )


@dataclass(frozen=True)
class _ScaleUp:
    nodes: int
    until: float  # its nodes are waited for until then


class Forecaster:
    """Turns demand snapshots into decisions; holds what stabilization and joining need to remember."""

    def __init__(self, policy: ScalingPolicy) -> None:
        self.policy = policy
        self._wanted: deque[tuple[float, int]] = deque()  # (at, nodes wanted) over the stabilization window
        self._last: Decision | None = None
        self._scale_up: _ScaleUp | None = None

    @property
    def last(self) -> Decision | None:
        return self._last

    def decide(self, demand: DemandSnapshot, current_nodes: int) -> Decision:
        now = demand.at
        policy = self.policy
        prior = demand.engagement_per_holder()
        models = tuple(forecast_model(model, policy, prior) for model in demand.models.values())
        forecast = sum(model.forecast_streams for model in models)
        # What a reactive HPA asks for now (streams in flight and waiting): never fewer, at any tick, and
        # remembered over the stabilization window as the HPA does (it holds the peaks of Poisson traffic).
        reactive = policy.reactive_nodes(sum(model.demand_streams for model in models), current_nodes)
        wanted = max(policy.nodes_for(forecast), reactive)
        # What is only foreseen — a trend's extension, chat of new holders beyond the evidence — is asked for
        # while foreseen but not remembered: when the ramp levels off or the buying stops, its nodes go (the
        # joining ones first) instead of being held through the stabilization window.
        proven = policy.nodes_for(sum(model.proven_streams for model in models))
        if self._last is None:  # as if the nodes serving now had been wanted: no scale-down in the first window
            previous = min(policy.max_nodes, max(policy.min_nodes, current_nodes))
            self._wanted.append((now, previous))
        else:
            previous = self._last.desired_nodes
        self._wanted.append((now, max(proven, reactive)))
        while self._wanted[0][0] < now - policy.stabilization_s:
            self._wanted.popleft()
        joining = self._scale_up is not None and current_nodes < self._scale_up.nodes and now < self._scale_up.until
        desired = previous
        reason = f"steady: {forecast:.1f} streams forecast need {wanted} nodes"
        if wanted > previous and not joining:
            desired = wanted
            reason = f"up: {self._why(models, forecast, reactive)} need {wanted} nodes"
        elif wanted > previous:
            by_rate = policy.nodes_for(sum(model.rate_streams for model in models))
            if by_rate > previous * (1 + policy.headroom) and by_rate >= reactive:
                desired = by_rate
                reason = (
                    f"up again: the arrival rate alone now needs {by_rate} nodes, more than "
                    f"the {previous} still joining"
                )
            elif reactive > previous:
                desired = reactive
                reason = (
                    f"up again: {sum(model.demand_streams for model in models)} streams "
                    f"in flight and waiting need {reactive} nodes now"
                )
            else:
                reason = (
                    f"hold: {previous - current_nodes} of {previous} nodes still joining will serve the "
                    f"{sum(model.demand.figures.queue_depth for model in models)} fans queued meanwhile"
                )
        elif wanted < previous:
            highest = max(nodes for _, nodes in self._wanted)
            waiting = sum(model.demand.figures.queue_depth for model in models)
            if waiting:  # fans are waiting for a stream: no node goes, joining ones least of all
                reason = f"hold: {waiting} fans wait for a stream"
            elif highest < previous:
                desired = highest
                reason = (
                    f"down: {forecast:.1f} streams forecast; {highest} nodes were the most "
                    f"wanted in the last {policy.stabilization_s:g} s"
                )
            else:
                reason = (
                    f"hold: {wanted} nodes would do now, but {highest} were wanted within the last "
                    f"{policy.stabilization_s:g} s"
                )
        if desired > previous:
            self._scale_up = _ScaleUp(desired, now + policy.cold_start_s)
        direction: Direction = "up" if desired > previous else "down" if desired < previous else "hold"
        same = self._last is not None and direction == "hold"
        decision = Decision(
            decision_id=self._last.decision_id if same and self._last else uuid.uuid4().hex,
            at=now,
            desired_nodes=desired,
            current_nodes=current_nodes,
            previous_nodes=previous,
            direction=direction,
            reason=reason,
            policy=policy,
            models=models,
        )
        self._last = decision
        return decision

    def _why(self, models: tuple[ModelForecast, ...], forecast: float, reactive: int) -> str:
        """The forecast's main driver, in words."""
        parts = [f"{forecast:.1f} streams forecast in {self.policy.cold_start_s:g} s"]
        if reactive > self.policy.nodes_for(forecast):
            parts.append(f"{sum(model.demand_streams for model in models)} streams in flight and waiting now")
        for model in models:
            if model.forecast_arrivals_per_s <= model.demand.figures.arrivals_per_s:
                continue
            driver = "new key holders" if model.leading_arrivals_per_s >= model.trend_arrivals_per_s else "the trend"
            parts.append(
                f"{model.model} {model.demand.figures.arrivals_per_s:.2f} → "
                f"{model.forecast_arrivals_per_s:.2f} arrivals/s from {driver}"
            )
        return "; ".join(parts)
