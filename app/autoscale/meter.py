"""The demand meter: what fans ask of the inference nodes, per model and per avatar.

Chat records each message's life through :meth:`DemandMeter.track`; the market feed records key
buys and holder counts. :meth:`DemandMeter.snapshot` turns both into the figures the forecaster
reads::

    with meter.track(model, avatar_id, fan) as stream:  # the message asks for a stream
        async with admission.admit(...):
            stream.admitted()                          # queue wait ends
            ...first delta...
            stream.first_token()
            ...
            stream.finished(tokens=120, paid_wei=10**15)
    # leaving the block any other way (refusal, disconnect, failure) releases what it held;
    # stream.refused(reason) also counts the refusal.

Counts are integers in one-second buckets, kept for ``LONG_WINDOW_S``; latencies are the last
``LATENCY_SAMPLES`` samples. New holders are remembered by address for ``LEAD_WINDOW_S`` after
their first buy, until they chat: the *silent* new holders, whose chat is still to come (never
exported). Avatars and models with nothing to report are forgotten, so memory follows what is
active, not everything that ever was. One meter serves one process.
"""

from __future__ import annotations

import itertools
import math
import time
from bisect import bisect_left, bisect_right
from collections import OrderedDict, defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from types import TracebackType

from app.lib.time import Clock

SHORT_WINDOW_S = 60  # current rates
TREND_WINDOW_S = 120  # per-second arrivals the trend is fitted to
LONG_WINDOW_S = 900  # the mean price of a reply; before its last LEAD_WINDOW_S, how much holders chat
LEAD_WINDOW_S = 300  # new holders still expected to start chatting; later, their chats are measured demand
LATENCY_SAMPLES = 256
SERVICE_SAMPLES = 50  # completed streams the mean stream duration is taken over


class EventCounts:
    """Integer counts in one-second buckets over the last ``horizon_s`` seconds."""

    def __init__(self, horizon_s: int) -> None:
        self._horizon_s = horizon_s
        # [second, count, everything added before it], oldest first: a window's total is two look-ups
        self._buckets: deque[list[int]] = deque()
        self._added = 0

    def add(self, now: float, amount: int = 1) -> None:
        second = math.floor(now)
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += amount
        else:
            self._buckets.append([second, amount, self._added])
        self._added += amount
        self._forget(second)

    def total(self, now: float, newest_s: float, oldest_s: float = 0.0) -> int:
        """The count in the seconds from ``oldest_s`` to ``newest_s`` ago (``oldest_s`` > ``newest_s``)."""
        second = math.floor(now)
        self._forget(second)
        return self._added_before(second - newest_s) - self._added_before(second - oldest_s)

    def _added_before(self, after: float) -> int:
        """Everything added up to the second ``after`` (the buckets are in order of their second)."""
        index = bisect_right(self._buckets, after, key=itemgetter(0))
        return self._buckets[index][2] if index < len(self._buckets) else self._added

    def last(self, now: float, seconds: float) -> int:
        return self.total(now, 0.0, seconds)

    def series(self, now: float, seconds: int) -> tuple[int, ...]:
        """The count of each of the last ``seconds`` whole seconds before ``now``, oldest first."""
        second = math.floor(now)
        self._forget(second)
        counts = [0] * seconds
        first = bisect_left(self._buckets, second - seconds, key=itemgetter(0))
        for at, count, _ in itertools.islice(self._buckets, first, None):
            if at < second:
                counts[at - second + seconds] = count
        return tuple(counts)

    def idle(self, now: float) -> bool:
        self._forget(math.floor(now))
        return not self._buckets

    def _forget(self, second: int) -> None:
        while self._buckets and self._buckets[0][0] <= second - self._horizon_s:
            self._buckets.popleft()


def percentile(values: Iterable[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None without values."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


class _Stats:
    """Everything metered for one model or one avatar."""

    def __init__(self) -> None:
        self.waiting = 0
        self.in_flight = 0
        self.arrivals = EventCounts(LONG_WINDOW_S)
        self.served = EventCounts(LONG_WINDOW_S)
        self.tokens = EventCounts(SHORT_WINDOW_S)
        self.paid_wei = EventCounts(LONG_WINDOW_S)
        self.refusals: defaultdict[str, EventCounts] = defaultdict(lambda: EventCounts(SHORT_WINDOW_S))
        self.ttft: deque[tuple[float, float]] = deque(maxlen=LATENCY_SAMPLES)  # (at, seconds)
        self.waits: deque[tuple[float, float]] = deque(maxlen=LATENCY_SAMPLES)
        self.service: deque[float] = deque(maxlen=SERVICE_SAMPLES)

    def idle(self, now: float) -> bool:
        return not (self.waiting or self.in_flight) and self.arrivals.idle(now) and self.paid_wei.idle(now)

    def figures(self, now: float, covered_s: float) -> DemandFigures:
        """Rates over the nominal windows (low while the meter is younger: it never asks for nodes early)."""
        recent = now - SHORT_WINDOW_S
        waits = [seconds for at, seconds in self.waits if at >= recent]
        ttfts = [seconds for at, seconds in self.ttft if at >= recent]
        served_long = self.served.last(now, LONG_WINDOW_S)
        refusals = {
            reason: count for reason, counts in self.refusals.items() if (count := counts.last(now, SHORT_WINDOW_S))
        }
        return DemandFigures(
            queue_depth=self.waiting,
            in_flight=self.in_flight,
            arrivals_short=self.arrivals.last(now, SHORT_WINDOW_S),
            # Before a whole window has run, its empty start would read as a climb.
            arrivals_series=self.arrivals.series(now, TREND_WINDOW_S) if covered_s > TREND_WINDOW_S else (),
            arrivals_earlier=self.arrivals.total(now, LEAD_WINDOW_S, LONG_WINDOW_S),
            tokens_per_s=self.tokens.last(now, SHORT_WINDOW_S) / SHORT_WINDOW_S,
            mean_service_s=sum(self.service) / len(self.service) if self.service else None,
            price_wei=self.paid_wei.last(now, LONG_WINDOW_S) // served_long if served_long else None,
            ttft_p50_s=percentile(ttfts, 0.5),
            ttft_p95_s=percentile(ttfts, 0.95),
            wait_p50_s=percentile(waits, 0.5),
            wait_p95_s=percentile(waits, 0.95),
            wait_p99_s=percentile(waits, 0.99),
            refusals=refusals,
        )


class _Avatar(_Stats):
    def __init__(self) -> None:
        super().__init__()
        self.model: str | None = None
        self.buys = EventCounts(LEAD_WINDOW_S)
        self.new_holders = EventCounts(LEAD_WINDOW_S)
        self.silent: OrderedDict[str, float] = OrderedDict()  # new holder → first buy, oldest first
        self.holders: int | None = None

    def idle(self, now: float) -> bool:
        return super().idle(now) and self.buys.idle(now)

    def silent_new_holders(self, now: float) -> int:
        while self.silent and next(iter(self.silent.values())) <= now - LEAD_WINDOW_S:
            self.silent.popitem(last=False)
        return len(self.silent)


@dataclass(frozen=True)
class DemandFigures:
    """What was metered for one model or avatar: counts now, and events over the windows."""

    queue_depth: int
    in_flight: int
    arrivals_short: int  # in the last SHORT_WINDOW_S
    arrivals_series: tuple[int, ...]  # per second over the last TREND_WINDOW_S (empty while the meter is younger)
    arrivals_earlier: int  # from LONG_WINDOW_S to LEAD_WINDOW_S ago: before anyone now a new holder bought
    tokens_per_s: float
    mean_service_s: float | None  # of recently completed streams
    price_wei: int | None  # mean paid per reply over the long window
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    wait_p50_s: float | None
    wait_p95_s: float | None
    wait_p99_s: float | None
    refusals: dict[str, int]  # by reason, in the last SHORT_WINDOW_S

    @property
    def arrivals_per_s(self) -> float:
        return self.arrivals_short / SHORT_WINDOW_S

    @property
    def earlier_arrivals_per_s(self) -> float:
        """The rate before the lead window."""
        return self.arrivals_earlier / (LONG_WINDOW_S - LEAD_WINDOW_S)


@dataclass(frozen=True)
class AvatarDemand:
    avatar_id: str
    figures: DemandFigures
    key_buys: int  # in the last LEAD_WINDOW_S
    new_holders: int  # first buys in the last LEAD_WINDOW_S
    silent_new_holders: int  # of those, the ones who have not chatted with the avatar since
    new_holders_per_s: float  # first buys per second over the last SHORT_WINDOW_S
    holders: int | None  # as last reported by the market

    @property
    def holders_before(self) -> int:
        """Holders before the lead window: those whose chat ``figures.arrivals_earlier`` counts."""
        return max(0, (self.holders or 0) - self.new_holders)


@dataclass(frozen=True)
class ModelDemand:
    model: str
    figures: DemandFigures
    avatars: tuple[AvatarDemand, ...]


@dataclass(frozen=True)
class DemandSnapshot:
    at: float
    models: dict[str, ModelDemand] = field(default_factory=dict)

    def engagement_per_holder(self) -> float:
        """Messages per second per holder before the lead window, across every avatar with known holders."""
        avatars = [avatar for model in self.models.values() for avatar in model.avatars if avatar.holders_before]
        holders = sum(avatar.holders_before for avatar in avatars)
        return sum(avatar.figures.earlier_arrivals_per_s for avatar in avatars) / holders if holders else 0.0


class MeteredStream:
    """One message's way through queue and stream; see the module's example."""

    def __init__(self, meter: DemandMeter, model: str, avatar_id: str, fan: str) -> None:
        self._meter = meter
        avatar = meter._avatar(avatar_id, model)
        avatar.silent.pop(fan.lower(), None)
        self._stats = (meter._model(model), avatar)
        self._arrived = meter.clock()
        self._admitted_at: float | None = None
        self._done = False

    def __enter__(self) -> MeteredStream:
        now = self._arrived
        for stats in self._stats:
            stats.waiting += 1
            stats.arrivals.add(now)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._release()

    def admitted(self) -> None:
        """The stream got its slot: the wait ends, the stream is in flight."""
        if self._admitted_at is not None or self._done:
            return
        now = self._admitted_at = self._meter.clock()
        for stats in self._stats:
            stats.waiting -= 1
            stats.in_flight += 1
            stats.waits.append((now, now - self._arrived))

    def first_token(self) -> None:
        """The first token arrived; time to first token is counted from the slot."""
        if self._admitted_at is None:
            return
        now = self._meter.clock()
        for stats in self._stats:
            stats.ttft.append((now, now - self._admitted_at))

    def finished(self, *, tokens: int, paid_wei: int) -> None:
        """The reply completed: its tokens, its payment and its duration count."""
        if self._admitted_at is None or self._done:
            return
        now = self._meter.clock()
        for stats in self._stats:
            stats.tokens.add(now, tokens)
            stats.paid_wei.add(now, paid_wei)
            stats.served.add(now)
            stats.service.append(now - self._admitted_at)
        self._release()

    def refused(self, reason: str) -> None:
        """The message gets no stream (queue full, rate limited, no node…)."""
        now = self._meter.clock()
        for stats in self._stats:
            stats.refusals[reason].add(now)
        self._release()

    def _release(self) -> None:
        if self._done:
            return
        self._done = True
        for stats in self._stats:
            if self._admitted_at is None:
                stats.waiting -= 1
            else:
                stats.in_flight -= 1


class DemandMeter:
    """Demand per model and per avatar in this process; see the module docstring."""

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self._started = clock()
        self._models: dict[str, _Stats] = {}
        self._avatars: dict[str, _Avatar] = {}

    def track(self, model: str, avatar_id: str, fan: str) -> MeteredStream:
        """A message of ``fan`` asking for a stream; use it as a context manager around the message's whole life."""
        return MeteredStream(self, model, avatar_id, fan)

    def key_bought(self, model: str, avatar_id: str, buyer: str, *, new_holder: bool) -> None:
        """A key buy of the avatar, from the indexed trades; ``new_holder`` when it was the buyer's first."""
        now = self.clock()
        avatar = self._avatar(avatar_id, model)
        self._model(model)
        avatar.buys.add(now)
        if new_holder:
            avatar.new_holders.add(now)
            avatar.silent[buyer.lower()] = now

    def set_holders(self, avatar_id: str, holders: int) -> None:
        """The avatar's holder count per the index (ignored for avatars the meter does not follow)."""
        avatar = self._avatars.get(avatar_id)
        if avatar is not None:
            avatar.holders = holders

    def avatar_ids(self) -> list[str]:
        return list(self._avatars)

    def snapshot(self) -> DemandSnapshot:
        """The figures now, per model with its avatars; forgets what has gone idle."""
        now = self.clock()
        covered = max(1.0, now - self._started)
        for avatar_id in [avatar_id for avatar_id, avatar in self._avatars.items() if avatar.idle(now)]:
            del self._avatars[avatar_id]
        by_model: defaultdict[str, list[AvatarDemand]] = defaultdict(list)
        for avatar_id, avatar in self._avatars.items():
            if avatar.model is not None:
                by_model[avatar.model].append(
                    AvatarDemand(
                        avatar_id,
                        avatar.figures(now, covered),
                        key_buys=avatar.buys.last(now, LEAD_WINDOW_S),
                        new_holders=avatar.new_holders.last(now, LEAD_WINDOW_S),
                        silent_new_holders=avatar.silent_new_holders(now),
                        new_holders_per_s=avatar.new_holders.last(now, SHORT_WINDOW_S) / SHORT_WINDOW_S,
                        holders=avatar.holders,
                    )
                )
        for model in [model for model, stats in self._models.items() if stats.idle(now) and model not in by_model]:
            del self._models[model]
        return DemandSnapshot(
            now,
            {
                model: ModelDemand(model, stats.figures(now, covered), tuple(by_model[model]))
                for model, stats in self._models.items()
            },
        )

    def _model(self, model: str) -> _Stats:
        stats = self._models.get(model)
        if stats is None:
            stats = self._models[model] = _Stats()
        return stats

    def _avatar(self, avatar_id: str, model: str) -> _Avatar:
        avatar = self._avatars.get(avatar_id)
        if avatar is None:
            avatar = self._avatars[avatar_id] = _Avatar()
        avatar.model = model  # an avatar's model can change; its demand goes where it is served now
        return avatar
