"""Demand metered on every worker, forecast on the leader.

Each worker meters the chats it serves (:class:`~app.autoscale.meter.DemandMeter`). With Redis,
every worker publishes its snapshot every tick under ``{namespace}:autoscale:meter:<worker>``
(expiring after three ticks, so a dead worker's chats stop counting), and the leader's forecast
reads its own snapshot combined with the others'::

    shared = SharedMeter(redis, namespace, meter, tick_s=5.0)
    task = asyncio.create_task(shared.run())         # every worker
    snapshot = await shared.combined(meter.snapshot())  # the leader, at each tick

How snapshots combine (:func:`combine`): counts, rates and refusals add up (per-second arrival
series second by second, aligned on the latest second); stream durations and prices are averaged
over the workers that measured them; latency percentiles take the worst worker's, an upper bound.
Key buys and holders come from the market feed, which only the leader runs: the largest reported.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import msgspec
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.autoscale.meter import AvatarDemand, DemandFigures, DemandMeter, DemandSnapshot, ModelDemand

log = structlog.get_logger()

T = TypeVar("T")
SNAPSHOT_TTL_TICKS = 3


def _present(values: Iterable[T | None]) -> list[T]:
    return [value for value in values if value is not None]


def _mean_or_none(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _worst(values: Sequence[float]) -> float | None:
    return max(values) if values else None


def _series(all_series: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
    length = max((len(series) for series in all_series), default=0)
    padded = [(0,) * (length - len(series)) + series for series in all_series]
    return tuple(sum(column) for column in zip(*padded, strict=True)) if padded else ()


def combine_figures(figures: Sequence[DemandFigures]) -> DemandFigures:
    refusals: defaultdict[str, int] = defaultdict(int)
    for one in figures:
        for reason, count in one.refusals.items():
            refusals[reason] += count
    prices = _present(one.price_wei for one in figures)

    def worst(read: Callable[[DemandFigures], float | None]) -> float | None:
        return _worst(_present(read(one) for one in figures))

    return DemandFigures(
        queue_depth=sum(one.queue_depth for one in figures),
        in_flight=sum(one.in_flight for one in figures),
        arrivals_short=sum(one.arrivals_short for one in figures),
        arrivals_series=_series([one.arrivals_series for one in figures]),
        arrivals_earlier=sum(one.arrivals_earlier for one in figures),
        tokens_per_s=sum(one.tokens_per_s for one in figures),
        mean_service_s=_mean_or_none(_present(one.mean_service_s for one in figures)),
        price_wei=sum(prices) // len(prices) if prices else None,
        ttft_p50_s=worst(lambda one: one.ttft_p50_s),
        ttft_p95_s=worst(lambda one: one.ttft_p95_s),
        wait_p50_s=worst(lambda one: one.wait_p50_s),
        wait_p95_s=worst(lambda one: one.wait_p95_s),
        wait_p99_s=worst(lambda one: one.wait_p99_s),
        refusals=dict(refusals),
    )


def _combine_avatars(avatar_id: str, avatars: Sequence[AvatarDemand]) -> AvatarDemand:
    holders = _present(avatar.holders for avatar in avatars)
    return AvatarDemand(
        avatar_id,
        combine_figures([avatar.figures for avatar in avatars]),
        key_buys=max(avatar.key_buys for avatar in avatars),
        new_holders=max(avatar.new_holders for avatar in avatars),
        silent_new_holders=max(avatar.silent_new_holders for avatar in avatars),
        new_holders_per_s=max(avatar.new_holders_per_s for avatar in avatars),
        holders=max(holders) if holders else None,
    )


def combine(snapshots: Sequence[DemandSnapshot]) -> DemandSnapshot:
    """Every worker's demand as one snapshot, dated by the first (the leader's own)."""
    by_model: defaultdict[str, list[ModelDemand]] = defaultdict(list)
    for snapshot in snapshots:
        for model, demand in snapshot.models.items():
            by_model[model].append(demand)
    models = {}
    for model, demands in by_model.items():
        by_avatar: defaultdict[str, list[AvatarDemand]] = defaultdict(list)
        for demand in demands:
            for avatar in demand.avatars:
                by_avatar[avatar.avatar_id].append(avatar)
        models[model] = ModelDemand(
            model,
            combine_figures([demand.figures for demand in demands]),
            tuple(_combine_avatars(avatar_id, avatars) for avatar_id, avatars in by_avatar.items()),
        )
    return DemandSnapshot(snapshots[0].at, models)


class SharedMeter:
    """This worker's meter published to Redis, and the others' read back for the leader's forecast."""

    def __init__(self, redis: Redis, namespace: str, meter: DemandMeter, *, tick_s: float) -> None:
        self._redis = redis
        self._prefix = f"{namespace}:autoscale:meter:"
        self._worker = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._meter = meter
        self._tick_s = tick_s

    async def publish(self) -> None:
        snapshot = msgspec.json.encode(self._meter.snapshot())
        await self._redis.set(self._prefix + self._worker, snapshot, px=int(SNAPSHOT_TTL_TICKS * self._tick_s * 1000))

    async def others(self) -> list[DemandSnapshot]:
        keys = [
            key
            async for key in self._redis.scan_iter(match=self._prefix + "*")
            if (key.decode() if isinstance(key, bytes) else key) != self._prefix + self._worker
        ]
        raws = await self._redis.mget(keys) if keys else []
        return [msgspec.json.decode(raw, type=DemandSnapshot) for raw in raws if raw is not None]

    async def combined(self, own: DemandSnapshot) -> DemandSnapshot:
        """``own`` with every other live worker's demand; ``own`` alone when Redis does not answer."""
        try:
            return combine([own, *await self.others()])
        except RedisError as error:
            log.warning("autoscale_shared_meter_unread", error=str(error)[:200])
            return own

    async def run(self) -> None:
        """Publish every tick until cancelled (a lifespan task on every worker)."""
        while True:
            try:
                await self.publish()
            except RedisError as error:
                log.warning("autoscale_shared_meter_unpublished", error=str(error)[:200])
            await asyncio.sleep(self._tick_s)
