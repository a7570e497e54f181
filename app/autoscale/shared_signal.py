"""One autoscale signal for every worker: the leader decides and stores its signal in Redis; the
followers answer ``GET /api/autoscale/signal`` (KEDA asks whichever replica the Service picks) and
greet operators with the leader's signal, never one of their own."""

from __future__ import annotations

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.autoscale.schemas import DecisionFrame, Signal
from app.cluster.leader import Leadership
from app.config import Settings
from app.lib.redis import redis_client

SIGNAL_TTL_S = 3_600  # a leader gone for that long leaves followers to decide on their own


class SharedSignal:
    """The leader's latest signal, through Redis (without Redis there is one worker: nothing to share)."""

    def __init__(self, redis: Redis | None, key: str, leadership: Leadership) -> None:
        self.redis = redis
        self._redis = redis
        self._key = key
        self._leadership = leadership

    @property
    def follows(self) -> bool:
        """Whether another worker decides: this one campaigns for the lease and does not hold it."""
        return self._redis is not None and self._leadership.campaigning_now and not self._leadership.is_leader

    async def store(self, signal: Signal) -> None:
        if self._redis is not None and self._leadership.is_leader:
            await self._redis.set(self._key, msgspec.json.encode(signal), ex=SIGNAL_TTL_S)

    async def leaders(self) -> Signal | None:
        """The leader's signal when this worker follows and one is stored (else None: decide here)."""
        if not self.follows:
            return None
        assert self._redis is not None
        try:
            raw = await self._redis.get(self._key)
        except RedisError:
            return None
        return None if raw is None else msgspec.json.decode(raw, type=Signal)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


def narrowed(signal: Signal, model: str | None) -> Signal:
    """The signal with its per-model breakdown narrowed to ``model`` (all of it for None)."""
    if model is None:
        return signal
    return msgspec.structs.replace(signal, models=[entry for entry in signal.models if entry.model == model])


def as_frame(signal: Signal) -> bytes:
    return msgspec.json.encode(DecisionFrame(**msgspec.structs.asdict(signal)))


def shared_signal(settings: Settings, leadership: Leadership) -> SharedSignal:
    redis = redis_client(settings.redis_url) if settings.redis_url else None
    return SharedSignal(redis, f"{settings.redis_namespace}:autoscale:signal", leadership)
