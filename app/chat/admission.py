"""Admission control for chat streams: a bounded priority queue in front of the nodes' capacity.

Every reply is one LLM stream through a paid proxy node, and the nodes together run at most
``capacity`` streams at once. ``admit()`` hands a fan a slot when one is free; otherwise the fan
waits in a queue, hears their position and an estimated wait whenever either changes, and gets the
slot when their turn comes. A full queue refuses at once, with a time to retry::

    async def queued(waiting: Waiting) -> None:
        await socket.send_json({"type": "queued", "position": waiting.position, "eta_s": waiting.eta_s})

    try:
        async with admission.admit(Ticket(fan, band, est_tokens), on_wait=queued) as slot:
            async for chunk in stream:
                ...
            slot.tokens_used = usage.completion_tokens
    except AdmissionRefused as refused:
        await socket.send_json({"type": "error", "error": refused.reason, "retry_after_s": refused.retry_after_s})

Cancelling the caller at any point is safe: a waiting ticket leaves the queue, a held slot is
released, and that cleanup finishes even if the caller is cancelled again.

**Order.** Bands first (``Band``: the avatar's creator, then holders of many keys, then other
holders); inside a band, by arrival, pushed back by the tokens the fan was served recently
(``fairness_delay_s``), so fairness is counted in tokens, not in messages, and nobody starves
inside a band. Bands are strict: a band waits while any ticket of a sooner band does. A waiter's
position and estimate only fall as the queue drains; they rise only when a ticket that sorts
sooner arrives.

**Estimated wait.** ``estimate_wait_s`` combines the streams in service (how long each has run)
with the mean duration of the last ``SAMPLE_WINDOW`` completed streams.

**Backends.** ``MemoryAdmission`` serves one process; ``RedisAdmission`` shares one queue and one
capacity among every worker. They only store and move tickets atomically; ordering, estimates,
fairness and metrics are this module's shared code, so both behave the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from abc import ABC, abstractmethod
from bisect import bisect_left, insort
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

import structlog
from prometheus_client import Counter, Gauge, Histogram
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.lib.time import Clock

log = structlog.get_logger()

"""Seconds; wall-clock by default because Redis compares leases written by different workers."""

SAMPLE_WINDOW = 20  # completed streams the mean service time and reply length are taken over
FAN_HISTORY = 64  # replies remembered per fan for fairness; a fan with that many is dozens of rounds back already
FORGET_AFTER_HALF_LIVES = 8  # a fan's history weighs under 0.4 % by then, so it is dropped
BAND_SPAN_S = 1e12  # larger than any arrival time plus delay: every band sorts wholly before the next

QUEUE_DEPTH = Gauge("twin_chat_queue_depth", "Fans of this worker waiting for a stream slot (sum over workers)")
IN_FLIGHT = Gauge("twin_chat_streams_in_flight", "Chat streams this worker holds a slot for (sum over workers)")
WAIT_SECONDS = Histogram("twin_chat_queue_wait_seconds", "From asking for a stream slot to getting it",
                         buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800))
REFUSALS = Counter("twin_chat_admission_refusals", "Chat messages refused before streaming",
                   ["reason"])  # reason: full, rate_limited, expired


class Band(IntEnum):
    """Priority of a ticket; a lower band is always served first."""

    CREATOR = 0
    LARGE_HOLDER = 1
    HOLDER = 2


def band_for(*, is_creator: bool, keys_held: int, large_holder_keys: int = 10) -> Band:
    """The band of a fan chatting with an avatar: its creator, or a holder of many keys, or any holder."""
    if is_creator:
        return Band.CREATOR
    return Band.LARGE_HOLDER if keys_held >= large_holder_keys else Band.HOLDER


@dataclass(frozen=True)
class Ticket:
    """One message asking for a stream. ``est_tokens`` is charged to the fan if the stream never reports usage."""

    fan: str
    band: Band
    est_tokens: int

    def __post_init__(self) -> None:
        if self.est_tokens < 0:
            raise ValueError("est_tokens must be >= 0")


@dataclass(frozen=True)
class Waiting:
    """A waiting fan's place: 1-based position across the whole queue and estimated seconds to a slot."""

    position: int
    eta_s: int


@dataclass
class Slot:
    """A stream slot held inside ``admit()``. Set ``tokens_used`` once the reply reports its usage."""

    ticket: Ticket
    waited_s: float
    tokens_used: int | None = None


@dataclass(frozen=True)
class Load:
    """The whole queue as of now (every worker's, with Redis): for the autoscaler and health."""

    capacity: int
    in_flight: int
    waiting: int
    mean_service_s: float


@dataclass(frozen=True)
class AdmissionPolicy:
    """How the queue behaves; the same for every worker of a deployment."""

    max_waiting: int = 1000
    default_service_s: float = 20.0  # assumed stream duration until streams have been measured
    default_reply_tokens: int = 400  # assumed reply length until streams have been measured
    fairness_half_life_s: float = 600.0
    refresh_s: float = 1.0  # how often a waiter re-estimates its wait when nothing moves

    def __post_init__(self) -> None:
        if self.max_waiting < 1:
            raise ValueError("max_waiting must be >= 1")
        if min(self.default_service_s, self.fairness_half_life_s, self.refresh_s) <= 0:
            raise ValueError("default_service_s, fairness_half_life_s and refresh_s must be > 0")
        if self.default_reply_tokens < 1:
            raise ValueError("default_reply_tokens must be >= 1")


class AdmissionRefused(Exception):
    """A message that gets no stream now; ``reason`` and ``retry_after_s`` (whole seconds, >= 1) go to the fan."""

    reason = "refused"

    def __init__(self, retry_after_s: float) -> None:
        self.retry_after_s = max(1, math.ceil(retry_after_s))
        super().__init__(f"{self.reason}: retry after {self.retry_after_s} s")


class QueueFull(AdmissionRefused):
    """The queue holds ``max_waiting`` tickets; retry once its last one would have been served."""

    reason = "full"


class TicketExpired(AdmissionRefused):
    """The ticket was dropped because its worker stopped polling for longer than the lease (a stalled loop)."""

    reason = "expired"


class Status(IntEnum):
    """Where a ticket stands; the numbers are also what the Redis scripts return."""

    GONE = 0
    WAITING = 1
    ADMITTED = 2
    FULL = 3


@dataclass(frozen=True)
class QueueState:
    """One atomic look at the queue, from a ticket's point of view."""

    status: Status
    position: int  # 1-based while waiting, else 0
    depth: int
    capacity: int
    started: tuple[float, ...]  # start times of the streams in service
    samples: tuple[tuple[float, int], ...]  # (seconds, tokens) of recently completed streams


def decayed_tokens(history: Iterable[tuple[float, int]], now: float, half_life_s: float) -> float:
    """Tokens served to a fan, each reply's weight halving every ``half_life_s`` since it was served."""
    return sum(tokens * 0.5 ** (max(0.0, now - at) / half_life_s) for at, tokens in history)


def fairness_delay_s(recent_tokens: float, mean_reply_tokens: float, mean_service_s: float,
                     depth: int, capacity: int) -> float:
    """How much later than its arrival a fan's ticket is placed, for tokens served to it recently.

    A *round* is the time the queue as it stands needs to give everyone in it one stream
    (``mean_service_s * depth / capacity``, at least one stream's time). A fan recently served
    ``k`` average replies' worth of tokens is placed ``k`` rounds back: behind fans who got
    nothing, and ahead of those who arrive more than ``k`` rounds later, so no one starves.
    """
    rounds = recent_tokens / max(mean_reply_tokens, 1.0)
    return rounds * mean_service_s * max(1.0, depth / max(capacity, 1))


def order_score(band: int, arrival: float, delay_s: float) -> float:
    """Sort key of a ticket, lowest first; ties go to the earlier ticket."""
    return band * BAND_SPAN_S + arrival + delay_s


def estimate_wait_s(position: int, capacity: int, elapsed: Sequence[float], mean_service_s: float) -> float:
    """Seconds until the ticket at ``position`` (1-based) gets a slot, assuming streams last ``mean_service_s``.

    Each of the ``c = capacity`` slots frees after its stream's remaining time
    ``max(0, mean_service_s - elapsed)`` (0 for an idle slot; when more streams run than
    capacity allows, only the ``c`` that end last free a slot for the queue), then every
    ``mean_service_s``. With ``remaining`` sorted ascending::

        eta(p) = remaining[(p - 1) mod c] + floor((p - 1) / c) * mean_service_s

    It only falls as time passes, and a stream ending exactly when expected leaves it
    unchanged while the position drops by one. With no capacity, one slot is assumed (nodes
    are being started).
    """
    slots = max(capacity, 1)
    remaining = sorted(max(0.0, mean_service_s - run) for run in elapsed)[-slots:]
    remaining = [0.0] * (slots - len(remaining)) + remaining
    rounds, slot = divmod(position - 1, slots)
    return remaining[slot] + rounds * mean_service_s


def _mean(values: Sequence[float], default: float) -> float:
    return sum(values) / len(values) if values else default


def _checked_capacity(capacity: int) -> int:
    if capacity < 0:
        raise ValueError("capacity must be >= 0")
    return capacity


class AdmissionQueue(ABC):
    """The queue's behaviour; subclasses store tickets and move them atomically."""

    def __init__(self, policy: AdmissionPolicy, clock: Clock) -> None:
        self.policy = policy
        self._clock = clock
        self._cleanups: set[asyncio.Future[None]] = set()

    @asynccontextmanager
    async def admit(self, ticket: Ticket, on_wait: Callable[[Waiting], Awaitable[None]] | None = None,
                    ) -> AsyncIterator[Slot]:
        """Hold a stream slot for the block, waiting for one first if none is free.

        ``on_wait`` hears every change of position or estimated wait (whole seconds), starting
        with the first; it is not called when a slot is free at once. Raises ``QueueFull`` at once
        when the queue is full, ``TicketExpired`` if the ticket was lost while waiting.
        """
        fan = ticket.fan.lower()
        arrived = self._clock()
        ticket_id, state = await self._enter(ticket, fan, arrived)
        slot: Slot | None = None
        admitted_at = arrived
        completed = False
        try:
            await self._wait_turn(ticket_id, state, on_wait)
            admitted_at = self._clock()
            slot = Slot(ticket, waited_s=admitted_at - arrived)
            WAIT_SECONDS.observe(slot.waited_s)
            with IN_FLIGHT.track_inprogress():
                async with self._holding(ticket_id):
                    yield slot
            completed = True
        finally:
            await self._finish(self._close(ticket_id, fan, slot, admitted_at, completed))

    @abstractmethod
    async def set_capacity(self, capacity: int) -> None:
        """Change how many streams may run at once (the autoscaler's or registry's count); waiters fill new slots."""

    async def load(self) -> Load:
        """Capacity, streams in service, tickets waiting and the measured mean stream duration."""
        state = await self._poll(None, self._clock())
        return Load(state.capacity, len(state.started), state.depth, self._mean_service_s(state))

    async def aclose(self) -> None:
        """Let releases still running for cancelled callers finish (call before closing their connection)."""
        await asyncio.gather(*self._cleanups, return_exceptions=True)

    # Storage, atomic per call. Ticket ids are > 0; ``None`` asks about the queue alone.

    @abstractmethod
    async def _join(self, score: float, now: float) -> tuple[int, QueueState]:
        """Queue a ticket and fill free slots; status FULL (and id 0) if ``max_waiting`` are waiting."""

    @abstractmethod
    async def _poll(self, ticket_id: int | None, now: float) -> QueueState:
        """Fill free slots and say where the ticket stands; with Redis, also renew its lease."""

    @abstractmethod
    async def _leave(self, ticket_id: int, now: float) -> None:
        """Take the ticket out of the queue or its slot, and fill free slots."""

    @abstractmethod
    async def _record(self, fan: str, tokens: int, service_s: float | None, now: float) -> None:
        """Remember tokens served to ``fan``, and the stream's duration when it completed."""

    @abstractmethod
    async def _fan_history(self, fan: str) -> list[tuple[float, int]]:
        """(time, tokens) of the fan's recent replies."""

    @abstractmethod
    async def _next_change(self, ticket_id: int, state: QueueState) -> None:
        """Return when the queue may have moved, or ``refresh_s`` later at most."""

    def _holding(self, ticket_id: int) -> AbstractAsyncContextManager[None]:
        """Keep the slot while the stream runs; a process's memory cannot outlive it, so nothing to do here."""
        return contextlib.nullcontext()

    # Shared logic.

    async def _enter(self, ticket: Ticket, fan: str, now: float) -> tuple[int, QueueState]:
        history = await self._fan_history(fan)
        view = await self._poll(None, now)
        recent = decayed_tokens(history, now, self.policy.fairness_half_life_s)
        mean_tokens = _mean([tokens for _, tokens in view.samples], self.policy.default_reply_tokens)
        delay = fairness_delay_s(recent, mean_tokens, self._mean_service_s(view), view.depth, view.capacity)
        ticket_id, state = await self._join(order_score(ticket.band, now, delay), now)
        if state.status is Status.FULL:
            REFUSALS.labels(reason=QueueFull.reason).inc()
            raise QueueFull(self._estimate(state, state.depth, now).eta_s)
        return ticket_id, state

    async def _wait_turn(self, ticket_id: int, state: QueueState,
                         on_wait: Callable[[Waiting], Awaitable[None]] | None) -> None:
        shown: Waiting | None = None
        with QUEUE_DEPTH.track_inprogress():
            while state.status is Status.WAITING:
                waiting = self._estimate(state, state.position, self._clock())
                if on_wait is not None and waiting != shown:
                    await on_wait(waiting)
                    shown = waiting
                await self._next_change(ticket_id, state)
                state = await self._poll(ticket_id, self._clock())
        if state.status is not Status.ADMITTED:
            REFUSALS.labels(reason=TicketExpired.reason).inc()
            raise TicketExpired(self.policy.refresh_s)

    async def _close(self, ticket_id: int, fan: str, slot: Slot | None, admitted_at: float, completed: bool) -> None:
        now = self._clock()
        await self._leave(ticket_id, now)
        if slot is not None:
            tokens = slot.ticket.est_tokens if slot.tokens_used is None else slot.tokens_used
            # Only completed streams say how long a stream takes; a fan who left early still used tokens.
            await self._record(fan, tokens, now - admitted_at if completed else None, now)

    async def _finish(self, cleanup: Coroutine[Any, Any, None]) -> None:
        """Run ``cleanup`` to its end even if the caller is cancelled (again) while it runs."""
        task = asyncio.ensure_future(cleanup)
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)
        await asyncio.shield(task)

    def _mean_service_s(self, state: QueueState) -> float:
        return _mean([seconds for seconds, _ in state.samples], self.policy.default_service_s)

    def _estimate(self, state: QueueState, position: int, now: float) -> Waiting:
        eta = estimate_wait_s(position, state.capacity, [now - start for start in state.started],
                              self._mean_service_s(state))
        return Waiting(position, math.ceil(round(eta, 3)))


class MemoryAdmission(AdmissionQueue):
    """The queue in this process's memory: one worker (the embedded default, tests).

    A ticket given a freed slot is woken at once, so the slot is taken without delay; the others
    look at their position every ``refresh_s`` (waking a thousand waiters at every freed slot,
    each to send a frame, would cost more than the streams they wait for).
    """

    def __init__(self, capacity: int, policy: AdmissionPolicy = AdmissionPolicy(), *, clock: Clock = time.time,
                 ) -> None:
        super().__init__(policy, clock)
        self._capacity = _checked_capacity(capacity)
        self._queue: list[tuple[float, int]] = []  # (score, id), sorted
        self._scores: dict[int, float] = {}
        self._started: dict[int, float] = {}
        self._ids = itertools.count(1)
        self._samples: deque[tuple[float, int]] = deque(maxlen=SAMPLE_WINDOW)
        self._fans: OrderedDict[str, deque[tuple[float, int]]] = OrderedDict()  # least recently served first
        self._wakeups: dict[int, asyncio.Event] = {}

    async def set_capacity(self, capacity: int) -> None:
        self._capacity = _checked_capacity(capacity)
        self._moved(self._clock())

    async def _join(self, score: float, now: float) -> tuple[int, QueueState]:
        if len(self._queue) >= self.policy.max_waiting:
            return 0, replace(self._state(None), status=Status.FULL)
        ticket_id = next(self._ids)
        insort(self._queue, (score, ticket_id))
        self._scores[ticket_id] = score
        self._wakeups[ticket_id] = asyncio.Event()
        self._moved(now)
        return ticket_id, self._state(ticket_id)

    async def _poll(self, ticket_id: int | None, now: float) -> QueueState:
        return self._state(ticket_id)

    async def _leave(self, ticket_id: int, now: float) -> None:
        score = self._scores.pop(ticket_id, None)
        if score is not None:
            del self._queue[bisect_left(self._queue, (score, ticket_id))]
        self._started.pop(ticket_id, None)
        self._wakeups.pop(ticket_id, None)
        self._moved(now)

    async def _record(self, fan: str, tokens: int, service_s: float | None, now: float) -> None:
        if service_s is not None:
            self._samples.appendleft((service_s, tokens))
        history = self._fans.pop(fan, None) or deque(maxlen=FAN_HISTORY)
        history.appendleft((now, tokens))
        self._fans[fan] = history
        horizon = now - FORGET_AFTER_HALF_LIVES * self.policy.fairness_half_life_s
        while next(iter(self._fans.values()))[0][0] < horizon:  # stops at the latest: it was served now
            self._fans.popitem(last=False)

    async def _fan_history(self, fan: str) -> list[tuple[float, int]]:
        return list(self._fans.get(fan, ()))

    async def _next_change(self, ticket_id: int, state: QueueState) -> None:
        wakeup = self._wakeups[ticket_id]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.policy.refresh_s):
                await wakeup.wait()
        wakeup.clear()

    def _moved(self, now: float) -> None:
        """Fill free slots from the head of the queue and wake the tickets admitted."""
        while self._queue and len(self._started) < self._capacity:
            _, head = self._queue.pop(0)
            del self._scores[head]
            self._started[head] = now
            self._wakeups[head].set()

    def _state(self, ticket_id: int | None) -> QueueState:
        status, position = Status.GONE, 0
        if ticket_id in self._started:
            status = Status.ADMITTED
        elif ticket_id is not None and ticket_id in self._scores:
            status = Status.WAITING
            position = bisect_left(self._queue, (self._scores[ticket_id], ticket_id)) + 1
        return QueueState(status, position, len(self._queue), self._capacity, tuple(self._started.values()),
                          tuple(self._samples))


# Redis: one sorted set of waiting tickets by score, members named by a zero-padded sequence number
# so that equal scores keep arrival order; the slots in service as a sorted set by lease expiry, with
# their start times beside; each waiting ticket's own deadline, renewed by its worker's polls. Any
# call first drops what dead workers left and fills free slots from the head, so a ticket of a busy
# worker is admitted by whichever worker acts first.
_LUA_PRELUDE = """
local waiting, alive, active, started = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local capacity_key, samples, seq = KEYS[5], KEYS[6], KEYS[7]
local now, lease_s, default_capacity = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

local function member(id)
  return string.format('%015d', id)
end

local function capacity()
  return tonumber(redis.call('GET', capacity_key) or default_capacity)
end

local function housekeep()
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', active, '-inf', now)) do
    redis.call('ZREM', active, m)
    redis.call('HDEL', started, m)
  end
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', alive, '-inf', now)) do
    redis.call('ZREM', alive, m)
    redis.call('ZREM', waiting, m)
  end
  local free = capacity() - redis.call('ZCARD', active)
  if free > 0 then
    for _, m in ipairs(redis.call('ZRANGE', waiting, 0, free - 1)) do
      redis.call('ZREM', waiting, m)
      redis.call('ZREM', alive, m)
      redis.call('ZADD', active, now + lease_s, m)
      redis.call('HSET', started, m, ARGV[1])
    end
  end
end

local function state(id, status)
  local position = 0
  if status == nil then
    status = 0
    if redis.call('ZSCORE', active, member(id)) then
      status = 2
    else
      local rank = redis.call('ZRANK', waiting, member(id))
      if rank then
        status, position = 1, rank + 1
      end
    end
  end
  return {id, status, position, redis.call('ZCARD', waiting), capacity(), redis.call('HVALS', started),
          redis.call('LRANGE', samples, 0, -1)}
end
"""

_LUA_JOIN = """
housekeep()
if redis.call('ZCARD', waiting) >= tonumber(ARGV[5]) then
  return state(0, 3)
end
local id = redis.call('INCR', seq)
redis.call('ZADD', waiting, ARGV[4], member(id))
redis.call('ZADD', alive, now + lease_s, member(id))
housekeep()
return state(id)
"""

_LUA_POLL = """
local id = tonumber(ARGV[4])
redis.call('ZADD', active, 'XX', now + lease_s, member(id))
redis.call('ZADD', alive, 'XX', now + lease_s, member(id))
housekeep()
return state(id)
"""

_LUA_LEAVE = """
local m = member(tonumber(ARGV[4]))
redis.call('ZREM', waiting, m)
redis.call('ZREM', alive, m)
redis.call('ZREM', active, m)
redis.call('HDEL', started, m)
housekeep()
return 1
"""

_KEY_NAMES = ("waiting", "alive", "active", "started", "capacity", "samples", "seq")


def _raise_dropped_cancellation() -> None:
    """Deliver a cancellation that redis-py dropped, so that a fan who left stops waiting.

    redis-py sends every command inside ``asyncio.wait_for`` (its default socket timeout is 5 s),
    and on Python 3.11 ``wait_for`` returns the result instead of raising when the cancellation
    lands just as the command completes (CPython gh-86296, fixed in 3.12). The task still counts
    the request, so it is raised here, after the atomic call, where the caller's cleanup runs.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _sample(raw: bytes | str) -> tuple[float, int]:
    """``b"<float> <int>"`` as written by ``_record``."""
    first, second = raw.split()
    return float(first), int(second)


class RedisAdmission(AdmissionQueue):
    """One queue and one capacity shared by every worker through Redis.

    Slots and waiting tickets carry leases that their worker renews (a waiter with each poll, a
    stream every ``lease_s / 3``), so what a crashed worker held is freed ``lease_s`` later.
    Workers' clocks must agree to well within ``lease_s`` (NTP does). Waiters near the head poll
    every ``poll_s``; the others every ``refresh_s``, which is as often as their estimate changes.
    Keys live under ``{prefix}:``, one hash slot on a Redis Cluster.
    """

    def __init__(self, redis: Redis, capacity: int, policy: AdmissionPolicy = AdmissionPolicy(), *,
                 prefix: str = "twin:chat", lease_s: float = 30.0, poll_s: float = 0.1, clock: Clock = time.time,
                 ) -> None:
        super().__init__(policy, clock)
        if lease_s <= 3 * max(poll_s, policy.refresh_s) or poll_s <= 0:
            raise ValueError("lease_s must exceed three polls (poll_s and refresh_s), and poll_s be > 0")
        self._redis = redis
        self._default_capacity = _checked_capacity(capacity)
        self._lease_s = lease_s
        self._poll_s = poll_s
        self._namespace = f"{{{prefix}}}"
        self._keys = [f"{self._namespace}:{name}" for name in _KEY_NAMES]
        self._join_script = redis.register_script(_LUA_PRELUDE + _LUA_JOIN)
        self._poll_script = redis.register_script(_LUA_PRELUDE + _LUA_POLL)
        self._leave_script = redis.register_script(_LUA_PRELUDE + _LUA_LEAVE)

    async def set_capacity(self, capacity: int) -> None:
        await self._redis.set(self._key("capacity"), _checked_capacity(capacity))
        await self._poll(None, self._clock())

    async def _join(self, score: float, now: float) -> tuple[int, QueueState]:
        return self._parse(await self._join_script(keys=self._keys,
                                                   args=[*self._args(now), repr(score), self.policy.max_waiting]))

    async def _poll(self, ticket_id: int | None, now: float) -> QueueState:
        state = self._parse(await self._poll_script(keys=self._keys, args=[*self._args(now), ticket_id or 0]))[1]
        _raise_dropped_cancellation()
        return state

    async def _leave(self, ticket_id: int, now: float) -> None:
        await self._leave_script(keys=self._keys, args=[*self._args(now), ticket_id])

    async def _record(self, fan: str, tokens: int, service_s: float | None, now: float) -> None:
        history = self._fan_key(fan)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lpush(history, f"{now!r} {tokens}")
            pipe.ltrim(history, 0, FAN_HISTORY - 1)
            pipe.expire(history, math.ceil(FORGET_AFTER_HALF_LIVES * self.policy.fairness_half_life_s))
            if service_s is not None:
                pipe.lpush(self._key("samples"), f"{service_s!r} {tokens}")
                pipe.ltrim(self._key("samples"), 0, SAMPLE_WINDOW - 1)
            await pipe.execute()

    async def _fan_history(self, fan: str) -> list[tuple[float, int]]:
        return [_sample(raw) for raw in await self._redis.lrange(self._fan_key(fan), 0, -1)]

    async def _next_change(self, ticket_id: int, state: QueueState) -> None:
        near_head = state.position <= 2 * max(state.capacity, 1)
        await asyncio.sleep(self._poll_s if near_head else self.policy.refresh_s)

    @asynccontextmanager
    async def _holding(self, ticket_id: int) -> AsyncIterator[None]:
        renewal = asyncio.create_task(self._renew(ticket_id))
        try:
            yield
        finally:
            renewal.cancel()  # not awaited: a renewal landing after the release renews nothing (ZADD XX)

    async def _renew(self, ticket_id: int) -> None:
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                state = await self._poll(ticket_id, self._clock())
            except RedisError as error:
                log.warning("chat slot lease not renewed", error=str(error))
                continue
            if state.status is not Status.ADMITTED:
                log.warning("chat slot lease lost while streaming; capacity may be exceeded until it ends")
                return

    def _args(self, now: float) -> list[str | float | int]:
        return [repr(now), self._lease_s, self._default_capacity]

    def _key(self, name: str) -> str:
        return f"{self._namespace}:{name}"

    def _fan_key(self, fan: str) -> str:
        return f"{self._namespace}:fan:{fan}"

    @staticmethod
    def _parse(reply: list[Any]) -> tuple[int, QueueState]:
        ticket_id, status, position, depth, capacity, started, samples = reply
        return int(ticket_id), QueueState(Status(int(status)), int(position), int(depth), int(capacity),
                                          tuple(float(start) for start in started),
                                          tuple(_sample(raw) for raw in samples))
