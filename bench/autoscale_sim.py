"""The autoscale signal against reactive scaling, on replayed demand traces, in one run.

    ./dev.sh bench autoscale_sim [--seed N] [--traces viral_spike,slow_ramp,false_alarm]

Each trace is a seeded stream of chat messages and key buys over an hour (twenty minutes of steady
chat first, so the meter knows how much holders chat). It is replayed twice, through the same real
parts, on simulated nodes:

- the real admission queue (``MemoryAdmission``) in front of the nodes' streams, on simulated time:
  an event loop whose clock jumps to the next timer, so an hour runs in seconds and every queue
  wait is exact;
- nodes serving ``STREAMS_PER_NODE`` streams each; a node asked for serves after an operator's
  joining delay (0–30 s) and a cold start (60–120 s), drawn per node in the order nodes are asked
  for, the same in both runs;
- an HPA (Kubernetes' algorithm: 15 s sync, 10 % tolerance, stabilization windows, rate policies)
  sizing the nodes from its metrics.

**Ours**: the real ``DemandMeter`` and ``Forecaster`` (ticking every 5 s), read through the HPA as
infra/keda-scaledobject.yaml configures it: its behavior, the signal's ``desired_nodes`` at
AverageValue 1, and the queue-depth trigger as second opinion. **Reactive**: an HPA with
Kubernetes' default behavior on the queue as it is now (streams in flight plus fans waiting), one
node per ``STREAMS_PER_NODE / (1 + headroom)`` of it: the same utilization target as ours.

Printed per trace and strategy: the share of messages that waited longer than the 5 s SLO for a
stream (refused ones count as misses), p99 queue wait of the served, refusals, and node-seconds
(from asking for a node to letting it go, cold start included); then ours / reactive.
Goals: viral spike at most 0.5x the reactive SLO misses with no more node-seconds; false alarm at
most 1.1x the reactive node-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import selectors
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from app.autoscale.forecast import Forecaster, ScalingPolicy
from app.autoscale.meter import DemandMeter
from app.chat.admission import AdmissionPolicy, AdmissionRefused, Band, MemoryAdmission, Ticket

SCALED_OBJECT = Path(__file__).resolve().parent.parent / "infra" / "keda-scaledobject.yaml"
MODEL = "sim-model"
STREAMS_PER_NODE = 8
HEADROOM = 0.2
SLO_WAIT_S = 5.0
MAX_WAITING = 1_000  # TWIN_CHAT_MAX_WAITING's default
PRICE_WEI = 10**15
FORECAST_TICK_S = 5.0
HPA_SYNC_S = 15.0
HPA_TOLERANCE = 0.1
JOIN_DELAY_S = (0.0, 30.0)
COLD_START_S = (60.0, 120.0)
WARM_UP_S = 1_200.0
DURATION_S = 3_600.0
MEAN_SERVICE_S = 20.0
SERVICE_SIGMA = 0.5  # lognormal spread of a stream's duration
TOKENS_PER_S = 25
# Kubernetes' default HPA behavior (autoscaling/v2), the reactive baseline's.
DEFAULT_BEHAVIOR: dict[str, Any] = {
    "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                             {"type": "Percent", "value": 100, "periodSeconds": 15}]},
    "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Max",
                  "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
}


# ---------------------------------------------------------------- simulated time


class _Clock:
    now = 0.0


class _FastForwardSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """Never sleeps: when nothing is ready, the clock jumps to the next timer instead."""

    def __init__(self, clock: _Clock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if not ready and timeout is None:
            raise RuntimeError("simulation deadlocked: every task waits and no timer is set")
        if not ready and timeout:
            self._clock.now += timeout
        return ready


class SimulatedTimeLoop(asyncio.SelectorEventLoop):
    """asyncio on simulated time: ``sleep``, ``timeout`` and ``loop.time()`` all follow ``_Clock``."""

    def __init__(self) -> None:
        self._simulated = _Clock()
        super().__init__(_FastForwardSelector(self._simulated))

    def time(self) -> float:
        return self._simulated.now


def now() -> float:
    return asyncio.get_running_loop().time()


# ---------------------------------------------------------------- traces


@dataclass(frozen=True)
class Chat:
    at: float
    avatar: str
    fan: str
    service_s: float
    tokens: int


@dataclass(frozen=True)
class Buy:
    at: float
    avatar: str
    buyer: str
    new_holder: bool


@dataclass
class Trace:
    name: str
    description: str
    holders: dict[str, int]  # at the start
    steady_rate: float  # messages per second before anything happens
    chats: list[Chat] = field(default_factory=list)
    buys: list[Buy] = field(default_factory=list)


def _message(rng: random.Random, at: float, avatar: str, fan: str) -> Chat:
    """A message with a lognormal stream duration (mean MEAN_SERVICE_S)."""
    service_s = rng.lognormvariate(math.log(MEAN_SERVICE_S) - SERVICE_SIGMA**2 / 2, SERVICE_SIGMA)
    return Chat(at, avatar, fan, service_s, round(service_s * TOKENS_PER_S))


def _holders_chat(rng: random.Random, trace: Trace, avatar: str, holders: int, rate: float) -> None:
    """An avatar's holders from the start, sending ``rate`` messages per second in all (Poisson)."""
    trace.holders[avatar] = holders
    at = rng.expovariate(rate)
    while at < DURATION_S:
        trace.chats.append(_message(rng, at, avatar, f"{avatar}-holder-{rng.randrange(holders)}"))
        at += rng.expovariate(rate)


def _buy_burst(rng: random.Random, trace: Trace, avatar: str, new_holders: int, repeat_buys: int,
               over_s: float) -> list[Buy]:
    """Key buys from ``WARM_UP_S`` on, spread over ``over_s``: first buys of new holders, and more keys
    bought by holders from the start."""
    buys = [Buy(WARM_UP_S + rng.random() * over_s, avatar, f"{avatar}-new-{i}", True) for i in range(new_holders)]
    buys += [Buy(WARM_UP_S + rng.random() * over_s, avatar, f"{avatar}-holder-{rng.randrange(trace.holders[avatar])}",
                 False) for _ in range(repeat_buys)]
    trace.buys = sorted(buys, key=lambda buy: buy.at)
    return trace.buys


def _new_holders_chat(rng: random.Random, trace: Trace, buys: list[Buy], rate: float, *, onset_mean_s: float,
                      interest: Callable[[float], float] = lambda at: 1.0) -> None:
    """Each new holder starts chatting an exponential delay after their first buy (mean ``onset_mean_s``),
    then sends ``rate`` messages per second (Poisson), each sent with probability ``interest(t)``."""
    for buy in buys:
        if not buy.new_holder:
            continue
        at = buy.at + rng.expovariate(1 / onset_mean_s) + rng.expovariate(rate)
        while at < DURATION_S:
            if rng.random() < interest(at):
                trace.chats.append(_message(rng, at, buy.avatar, buy.buyer))
            at += rng.expovariate(rate)


# The steady world of every trace: two avatars whose holders chat, 0.7 messages/s together.
STEADY = {"ada": (300, 0.4), "ben": (200, 0.3)}  # holders, messages per second
STEADY_RATE = sum(rate for _, rate in STEADY.values())
ONSET_MEAN_S = 90.0  # from a new holder's first buy to their chatting


def _trace(rng: random.Random, name: str, description: str, avatar: str, holders: int, rate: float) -> Trace:
    trace = Trace(name, description, {}, STEADY_RATE + rate)
    for steady, (steady_holders, steady_rate) in STEADY.items():
        _holders_chat(rng, trace, steady, steady_holders, steady_rate)
    _holders_chat(rng, trace, avatar, holders, rate)
    return trace


def viral_spike(seed: int) -> Trace:
    """@vira (120 holders, 0.3 messages/s) goes viral: 2,400 new holders buy within 2.5 minutes, then
    chat like her holders do, half again as keen at first; chat peaks near 10x the whole baseline
    and fades after a quarter hour."""
    rng = random.Random(seed)
    trace = _trace(rng, "viral_spike", "burst of key buys, then ~10x chat", "vira", 120, 0.3)
    buys = _buy_burst(rng, trace, "vira", new_holders=2_400, repeat_buys=600, over_s=150)
    fade_from = WARM_UP_S + 900
    _new_holders_chat(rng, trace, buys, 1.5 * 0.3 / 120, onset_mean_s=ONSET_MEAN_S,
                      interest=lambda at: 0.5 ** (max(0.0, at - fade_from) / 300))
    return trace


def slow_ramp(seed: int) -> Trace:
    """@ramp gains holders steadily for 40 minutes (100 → 1,300) and they chat as the first did:
    its chat grows from 0.3 to 3.9 messages/s."""
    rng = random.Random(seed)
    trace = _trace(rng, "slow_ramp", "holders and chat grow steadily over 40 min", "ramp", 100, 0.3)
    buys = _buy_burst(rng, trace, "ramp", new_holders=1_200, repeat_buys=300, over_s=2_400)
    _new_holders_chat(rng, trace, buys, 0.3 / 100, onset_mean_s=ONSET_MEAN_S)
    return trace


def false_alarm(seed: int) -> Trace:
    """@spec (400 holders who hardly chat: 0.05 messages/s) is bought by 2,400 speculators within
    2.5 minutes, as many as @vira's spike; they chat as little as its holders always did."""
    rng = random.Random(seed)
    trace = _trace(rng, "false_alarm", "the same burst of key buys, little chat", "spec", 400, 0.05)
    buys = _buy_burst(rng, trace, "spec", new_holders=2_400, repeat_buys=600, over_s=150)
    _new_holders_chat(rng, trace, buys, 0.05 / 400, onset_mean_s=ONSET_MEAN_S)
    return trace


TRACES: dict[str, Callable[[int], Trace]] = {
    "viral_spike": viral_spike, "slow_ramp": slow_ramp, "false_alarm": false_alarm,
}


# ---------------------------------------------------------------- nodes and the HPA


@dataclass
class Node:
    asked_at: float
    ready_at: float
    gone_at: float | None = None


class Cluster:
    """Nodes asked for, joining and serving; the queue's capacity follows the serving ones."""

    def __init__(self, admission: MemoryAdmission, seed: int, initial: int) -> None:
        self._admission = admission
        self._delays = random.Random(seed)  # the n-th node asked for joins as late in both runs
        self.nodes = [Node(0.0, 0.0) for _ in range(initial)]
        self.joining: set[asyncio.Task[None]] = set()

    @property
    def alive(self) -> list[Node]:
        return [node for node in self.nodes if node.gone_at is None]

    def serving(self) -> int:
        return sum(1 for node in self.alive if node.ready_at <= now())

    async def scale_to(self, replicas: int) -> None:
        alive = self.alive
        for _ in range(replicas - len(alive)):
            delay = self._delays.uniform(*JOIN_DELAY_S) + self._delays.uniform(*COLD_START_S)
            node = Node(now(), now() + delay)
            self.nodes.append(node)
            joins = asyncio.create_task(self._joins(node))
            self.joining.add(joins)
            joins.add_done_callback(self.joining.discard)
        # Scaling down lets go of the nodes still joining first, then the newest.
        surplus = max(0, len(alive) - replicas)
        for node in sorted(alive, key=lambda node: (node.ready_at <= now(), -node.asked_at))[:surplus]:
            node.gone_at = now()
        await self._admission.set_capacity(self.serving() * STREAMS_PER_NODE)

    def node_seconds(self, end: float) -> float:
        return sum((node.gone_at if node.gone_at is not None else end) - node.asked_at for node in self.nodes)

    async def _joins(self, node: Node) -> None:
        await asyncio.sleep(node.ready_at - now())
        if node.gone_at is None:
            await self._admission.set_capacity(self.serving() * STREAMS_PER_NODE)


Metric = Callable[[], Coroutine[Any, Any, float]]


@dataclass(frozen=True)
class HpaMetric:
    """An External metric at an AverageValue target: the HPA proposes ceil(value / target) replicas."""

    value: Metric
    target: float


class Hpa:
    """Kubernetes' HPA replica calculation for AverageValue external metrics, with ``behavior``."""

    def __init__(self, metrics: list[HpaMetric], behavior: dict[str, Any], *, min_replicas: int,
                 max_replicas: int, settled_at: int) -> None:
        self._metrics = metrics
        self._up, self._down = behavior["scaleUp"], behavior["scaleDown"]
        self._min, self._max = min_replicas, max_replicas
        # As if it had run at ``settled_at`` replicas until now: no scale-down before a whole window.
        self._recommendations: deque[tuple[float, int]] = deque([(now(), settled_at)])
        self._replicas_at: deque[tuple[float, int]] = deque([(now(), settled_at)])  # for the rate policies

    async def replicas(self, current: int) -> int:
        proposals = []
        for metric in self._metrics:
            value = await metric.value()
            ratio = value / (metric.target * current) if current else math.inf
            proposals.append(current if abs(ratio - 1) <= HPA_TOLERANCE else math.ceil(value / metric.target))
        wanted = min(self._max, max(self._min, *proposals))
        at = now()
        self._recommendations.append((at, wanted))
        window = max(self._up["stabilizationWindowSeconds"], self._down["stabilizationWindowSeconds"])
        while self._recommendations[0][0] < at - window:
            self._recommendations.popleft()
        desired = current
        up_floor = min(n for t, n in self._recommendations if t >= at - self._up["stabilizationWindowSeconds"])
        down_ceiling = max(n for t, n in self._recommendations if t >= at - self._down["stabilizationWindowSeconds"])
        if up_floor > current:
            desired = min(up_floor, self._limit(self._up, current, at, up=True))
        elif down_ceiling < current:
            desired = max(down_ceiling, self._limit(self._down, current, at, up=False))
        self._replicas_at.append((at, desired))
        return desired

    def _limit(self, rules: dict[str, Any], current: int, at: float, *, up: bool) -> int:
        limits = []
        for policy in rules["policies"]:
            since = at - policy["periodSeconds"]
            earlier = [n for t, n in self._replicas_at if t <= since]
            base = earlier[-1] if earlier else current
            if policy["type"] == "Pods":
                limits.append(base + policy["value"] if up else base - policy["value"])
            else:
                change = base * policy["value"] / 100
                limits.append(math.ceil(base + change) if up else math.floor(base - change))
        if rules.get("selectPolicy", "Max") == "Min":
            return min(limits) if up else max(limits)
        return max(limits) if up else min(limits)


# ---------------------------------------------------------------- one run


@dataclass
class Outcome:
    waits: list[float] = field(default_factory=list)
    refused: int = 0
    node_seconds: float = 0.0

    @property
    def messages(self) -> int:
        return len(self.waits) + self.refused

    @property
    def slo_misses(self) -> float:
        missed = sum(1 for wait in self.waits if wait > SLO_WAIT_S) + self.refused
        return missed / self.messages

    @property
    def p99_wait_s(self) -> float:
        ordered = sorted(self.waits) or [math.inf]
        return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def _initial_nodes(trace: Trace) -> int:
    """What the steady chat needs, so that both runs start settled."""
    return math.ceil(trace.steady_rate * MEAN_SERVICE_S * (1 + HEADROOM) / STREAMS_PER_NODE)


def _scaled_object() -> dict[str, Any]:
    return yaml.safe_load(SCALED_OBJECT.read_text())


def _triggers(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {trigger["name"]: trigger["metadata"] for trigger in spec["triggers"]}


async def _replay(chat: Chat, admission: MemoryAdmission, meter: DemandMeter, outcome: Outcome) -> None:
    await asyncio.sleep(chat.at - now())
    with meter.track(MODEL, chat.avatar, chat.fan) as stream:
        try:
            async with admission.admit(Ticket(chat.fan, Band.HOLDER, chat.tokens)) as slot:
                stream.admitted()
                outcome.waits.append(now() - chat.at)
                await asyncio.sleep(chat.service_s)
                slot.tokens_used = chat.tokens
                stream.finished(tokens=chat.tokens, paid_wei=PRICE_WEI)
        except AdmissionRefused as refusal:
            stream.refused(refusal.reason)
            outcome.refused += 1


async def _buys(trace: Trace, meter: DemandMeter, holders: dict[str, int]) -> None:
    """Key buys as the indexer reports them, and the holder counts they leave."""
    for buy in trace.buys:
        await asyncio.sleep(buy.at - now())
        holders[buy.avatar] += buy.new_holder
        meter.key_bought(MODEL, buy.avatar, buy.buyer, new_holder=buy.new_holder)


async def _every(period_s: float, step: Callable[[], Coroutine[Any, Any, None]]) -> None:
    while True:
        await step()
        await asyncio.sleep(period_s)


async def run(trace: Trace, strategy: str, seed: int) -> Outcome:
    """Replay ``trace`` with ``strategy`` ("ours" or "reactive") sizing the nodes."""
    admission = MemoryAdmission(0, AdmissionPolicy(max_waiting=MAX_WAITING, refresh_s=60.0), clock=now)
    meter = DemandMeter(clock=now)
    holders = dict(trace.holders)
    initial = _initial_nodes(trace)
    cluster = Cluster(admission, seed, initial)
    await admission.set_capacity(initial * STREAMS_PER_NODE)
    spec = _scaled_object()["spec"]
    forecaster = Forecaster(ScalingPolicy(streams_per_node=STREAMS_PER_NODE, headroom=HEADROOM, min_nodes=1,
                                          max_nodes=spec["maxReplicaCount"],
                                          cold_start_s=JOIN_DELAY_S[1] + COLD_START_S[1], stabilization_s=300.0))

    async def desired_nodes() -> float:
        return float(forecaster.last.desired_nodes if forecaster.last else initial)

    async def queue_depth() -> float:
        return float((await admission.load()).waiting)

    async def queue_and_streams() -> float:
        load = await admission.load()
        return float(load.in_flight + load.waiting)

    async def forecast() -> None:  # as the backend's tick: holder counts from the index, then a decision
        for avatar in meter.avatar_ids():
            meter.set_holders(avatar, holders[avatar])
        forecaster.decide(meter.snapshot(), cluster.serving())

    if strategy == "ours":
        triggers = _triggers(spec)
        hpa = Hpa([HpaMetric(desired_nodes, float(triggers["autoscale-signal"]["targetValue"])),
                   HpaMetric(queue_depth, float(triggers["queue-depth"]["threshold"]))],
                  spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"],
                  min_replicas=spec["minReplicaCount"], max_replicas=spec["maxReplicaCount"], settled_at=initial)
    else:
        hpa = Hpa([HpaMetric(queue_and_streams, STREAMS_PER_NODE / (1 + HEADROOM))], DEFAULT_BEHAVIOR,
                  min_replicas=1, max_replicas=spec["maxReplicaCount"], settled_at=initial)

    async def sync() -> None:
        await cluster.scale_to(await hpa.replicas(len(cluster.alive)))

    outcome = Outcome()
    loops = [asyncio.create_task(_every(HPA_SYNC_S, sync)), asyncio.create_task(_buys(trace, meter, holders))]
    if strategy == "ours":
        loops.append(asyncio.create_task(_every(FORECAST_TICK_S, forecast)))
    await asyncio.gather(*(_replay(chat, admission, meter, outcome) for chat in trace.chats))
    for task in [*loops, *cluster.joining]:
        task.cancel()
    for result in await asyncio.gather(*loops, *cluster.joining, return_exceptions=True):
        if isinstance(result, Exception):
            raise RuntimeError("a simulation loop failed") from result
    outcome.node_seconds = cluster.node_seconds(now())
    return outcome


def simulate(trace: Trace, strategy: str, seed: int) -> Outcome:
    loop = SimulatedTimeLoop()
    try:
        return loop.run_until_complete(run(trace, strategy, seed))
    finally:
        loop.close()


# ---------------------------------------------------------------- report


def _ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x" if theirs else ("1.00x" if not ours else "inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--traces", default=",".join(TRACES))
    args = parser.parse_args()
    print(f"SLO: queue wait <= {SLO_WAIT_S:g} s; {STREAMS_PER_NODE} streams per node; nodes join in "
          f"{JOIN_DELAY_S[0]:g}-{JOIN_DELAY_S[1]:g} s + cold start {COLD_START_S[0]:g}-{COLD_START_S[1]:g} s; "
          f"seed {args.seed}")
    header = f"{'trace':<12} {'strategy':<9} {'messages':>8} {'SLO miss':>9} {'p99 wait':>9} {'refused':>8} " \
             f"{'node-s':>8}"
    print(header)
    for name in args.traces.split(","):
        trace = TRACES[name](args.seed)
        started = time.perf_counter()
        results = {strategy: simulate(trace, strategy, args.seed) for strategy in ("ours", "reactive")}
        for strategy, outcome in results.items():
            print(f"{name:<12} {strategy:<9} {outcome.messages:>8} {outcome.slo_misses:>9.2%} "
                  f"{outcome.p99_wait_s:>8.1f}s {outcome.refused:>8} {outcome.node_seconds:>8.0f}")
        ours, theirs = results["ours"], results["reactive"]
        print(f"{name:<12} {'ratio':<9} {'':>8} {_ratio(ours.slo_misses, theirs.slo_misses):>9} "
              f"{_ratio(ours.p99_wait_s, theirs.p99_wait_s):>9} {'':>8} "
              f"{_ratio(ours.node_seconds, theirs.node_seconds):>8}   ({trace.description}; "
              f"{time.perf_counter() - started:.0f} s to simulate)")


if __name__ == "__main__":
    main()
