"""What stands between a fan's message and a stream: the per-fan rate limit, then a slot in the
admission queue, in the chat service's terms (``ChatRefused`` with a time to retry).

One gate per process, built at start from settings: in memory by default, shared by every worker
through Redis when ``TWIN_REDIS_URL`` is set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from app.chat.admission import (
    AdmissionPolicy,
    AdmissionQueue,
    AdmissionRefused,
    Load,
    MemoryAdmission,
    RedisAdmission,
    Slot,
    Ticket,
    Waiting,
    band_for,
)
from app.chat.frames import ChatRefused
from app.chat.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from app.config import Settings
from app.lib.redis import redis_client

_REFUSAL_DETAILS = {
    "full": ("queue_full", "every stream is busy and the queue is full"),
    "expired": ("queue_expired", "your place in the queue was lost (a worker restarted); send the message again"),
    "rate_limited": ("rate_limited", "too many messages; wait before sending the next one"),
}


def _refused(refusal: AdmissionRefused) -> ChatRefused:
    code, detail = _REFUSAL_DETAILS[refusal.reason]
    return ChatRefused(code, detail, retry_after_s=refusal.retry_after_s)


class ChatGate:
    """The chat service's admission (``Services.chat_gate``) and the autoscaler's view of the queue."""

    def __init__(
        self, queue: AdmissionQueue, limiter: RateLimiter, *, large_holder_keys: int, streams_per_node: int
    ) -> None:
        self.queue = queue
        self.limiter = limiter
        self.streams_per_node = streams_per_node
        self._large_holder_keys = large_holder_keys

    async def check_rate(self, fan: str) -> None:
        """Count one new message of ``fan`` against the rate limit, or refuse it (counting nothing)."""
        try:
            await self.limiter.check(fan)
        except AdmissionRefused as refusal:
            raise _refused(refusal) from None

    @asynccontextmanager
    async def admit(
        self, *, fan: str, is_creator: bool, keys_held: int, on_wait: Callable[[int, int], Awaitable[None]]
    ) -> AsyncIterator[Slot]:
        """A stream slot for the block, after waiting in the fan's band if every slot is taken."""

        async def waiting(place: Waiting) -> None:
            await on_wait(place.position, place.eta_s)

        band = band_for(is_creator=is_creator, keys_held=keys_held, large_holder_keys=self._large_holder_keys)
        ticket = Ticket(fan, band, est_tokens=self.queue.policy.default_reply_tokens)
        try:
            async with self.queue.admit(ticket, on_wait=waiting) as slot:
                yield slot
        except AdmissionRefused as refusal:
            raise _refused(refusal) from None

    async def load(self) -> Load:
        return await self.queue.load()

    async def busy(self) -> bool:
        """Whether fans wait for a stream or every stream is taken: background calls to the nodes wait then."""
        load = await self.queue.load()
        return load.waiting > 0 or load.in_flight >= load.capacity

    async def set_nodes(self, nodes: int) -> None:
        """Size the queue's capacity to ``nodes`` inference nodes (the registry's or autoscaler's count)."""
        await self.queue.set_capacity(nodes * self.streams_per_node)


@asynccontextmanager
async def open_gate(settings: Settings, nodes: int) -> AsyncIterator[ChatGate]:
    """The process's gate, sized for ``nodes`` nodes; closed (and its Redis connection too) on exit."""
    policy = AdmissionPolicy(
        max_waiting=settings.chat_max_waiting, fairness_half_life_s=settings.chat_fairness_half_life_s
    )
    capacity = nodes * settings.chat_streams_per_node
    redis = redis_client(settings.redis_url) if settings.redis_url else None
    queue: AdmissionQueue
    limiter: RateLimiter
    if redis is None:
        queue = MemoryAdmission(capacity, policy)
        limiter = MemoryRateLimiter(settings.chat_messages_per_minute)
    else:
        prefix = f"{settings.redis_namespace}:chat"
        queue = RedisAdmission(redis, capacity, policy, prefix=prefix, lease_s=settings.chat_slot_lease_s)
        limiter = RedisRateLimiter(redis, settings.chat_messages_per_minute, prefix=prefix)
    try:
        yield ChatGate(
            queue,
            limiter,
            large_holder_keys=settings.chat_large_holder_keys,
            streams_per_node=settings.chat_streams_per_node,
        )
    finally:
        await queue.aclose()
        if redis is not None:
            await redis.aclose()
