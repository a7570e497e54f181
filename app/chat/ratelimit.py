"""Per-fan message rate limit, checked before a message joins the admission queue.

GCRA (a token bucket kept as one number per fan, the *theoretical arrival time*): a fan may send
``per_minute`` messages at once, then one every ``60 / per_minute`` seconds. A refused message
costs nothing, and ``retry_after_s`` is exactly when the next one would pass::

    try:
        await rate_limiter.check(fan)
    except RateLimited as refused:
        await socket.send_json({"type": "error", "error": refused.reason, "retry_after_s": refused.retry_after_s})

``MemoryRateLimiter`` serves one process; ``RedisRateLimiter`` shares the counts among workers.
Both run ``gcra`` here and only store its result, with a compare-and-set so that two workers
checking the same fan at once cannot both spend the last message.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections import OrderedDict

from redis.asyncio import Redis

from app.chat.admission import REFUSALS, AdmissionRefused
from app.lib.time import Clock


class RateLimited(AdmissionRefused):
    """The fan sent more than ``per_minute`` messages in a burst; retry when the bucket has refilled one."""

    reason = "rate_limited"


def gcra(tat: float | None, now: float, per_minute: int) -> float:
    """The fan's next theoretical arrival time if a message may pass at ``now``; else raise ``RateLimited``."""
    interval = 60.0 / per_minute
    start = now if tat is None else max(tat, now)
    wait_s = start - (60.0 - interval) - now
    if wait_s > 0:
        raise RateLimited(wait_s)
    return start + interval


class RateLimiter(ABC):
    """At most ``per_minute`` messages per fan in a burst, refilled evenly over a minute."""

    def __init__(self, per_minute: int, clock: Clock) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be >= 1")
        self.per_minute = per_minute
        self._clock = clock

    async def check(self, fan: str) -> None:
        """Count one message of ``fan``, or raise ``RateLimited`` (counting nothing)."""
        fan = fan.lower()
        while True:
            seen = await self._load(fan)
            now = self._clock()
            try:
                tat = gcra(seen, now, self.per_minute)
            except RateLimited:
                REFUSALS.labels(reason=RateLimited.reason).inc()
                raise
            if await self._swap(fan, seen, tat, now):
                return

    @abstractmethod
    async def _load(self, fan: str) -> float | None:
        """The fan's stored theoretical arrival time, if any."""

    @abstractmethod
    async def _swap(self, fan: str, seen: float | None, tat: float, now: float) -> bool:
        """Store ``tat`` if the fan's value is still ``seen``; it may be forgotten once ``now`` reaches it."""


class MemoryRateLimiter(RateLimiter):
    """Counts in this process's memory."""

    def __init__(self, per_minute: int, *, clock: Clock = time.time) -> None:
        super().__init__(per_minute, clock)
        self._tats: OrderedDict[str, float] = OrderedDict()  # least recently counted first

    async def _load(self, fan: str) -> float | None:
        return self._tats.get(fan)

    async def _swap(self, fan: str, seen: float | None, tat: float, now: float) -> bool:
        if self._tats.get(fan) != seen:
            return False
        self._tats[fan] = tat
        self._tats.move_to_end(fan)
        while next(iter(self._tats.values())) <= now:  # stops at the latest: it lies in the future
            self._tats.popitem(last=False)
        return True


_LUA_SWAP = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


class RedisRateLimiter(RateLimiter):
    """Counts shared by every worker; a fan's key expires when its bucket is full again."""

    def __init__(self, redis: Redis, per_minute: int, *, prefix: str = "twin:chat", clock: Clock = time.time) -> None:
        super().__init__(per_minute, clock)
        self._redis = redis
        self._namespace = f"{{{prefix}}}"
        self._swap_script = redis.register_script(_LUA_SWAP)

    async def _load(self, fan: str) -> float | None:
        raw = await self._redis.get(self._key(fan))
        return None if raw is None else float(raw)

    async def _swap(self, fan: str, seen: float | None, tat: float, now: float) -> bool:
        # repr() round-trips a float exactly, so the stored text compares equal to what was read.
        expected = "" if seen is None else repr(seen)
        expires_ms = max(1, math.ceil((tat - now) * 1000))
        return bool(await self._swap_script(keys=[self._key(fan)], args=[expected, repr(tat), expires_ms]))

    def _key(self, fan: str) -> str:
        return f"{self._namespace}:rate:{fan}"
