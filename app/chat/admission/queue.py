"""The admission queue's shared core: tickets, bands, policy, refusals, ordering, estimates, fairness and
metrics, over a backend that only stores and moves tickets atomically (``memory``, ``redis_queue``)."""

from __future__ import annotations

import asyncio
import contextlib
import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from app.lib.time import Clock

SAMPLE_WINDOW = 20  # completed streams the mean service time and reply length are taken over
FAN_HISTORY = 64  # replies remembered per fan for fairness; a fan with that many is dozens of rounds back already
FORGET_AFTER_HALF_LIVES = 8  # a fan's history weighs under 0.4 % by then, so it is dropped
BAND_SPAN_S = 1e12  # larger than any arrival time plus delay: every band sorts wholly before the next

QUEUE_DEPTH = Gauge("twin_chat_queue_depth", "Fans of this worker waiting for a stream slot (sum over workers)")
IN_FLIGHT = Gauge("twin_chat_streams_in_flight", "Chat streams this worker holds a slot for (sum over workers)")
WAIT_SECONDS = Histogram(
    "twin_chat_queue_wait_seconds",
    "From asking for a stream slot to getting it",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
REFUSALS = Counter(
    "twin_chat_admission_refusals", "Chat messages refused before streaming", ["reason"]
)  # reason: full, rate_limited, expired


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


def fairness_delay_s(
    recent_tokens: float, mean_reply_tokens: float, mean_service_s: float, depth: int, capacity: int
) -> float:
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


def checked_capacity(capacity: int) -> int:
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
    async def admit(
        self,
        ticket: Ticket,
        on_wait: Callable[[Waiting], Awaitable[None]] | None = None,
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

    async def _wait_turn(
        self, ticket_id: int, state: QueueState, on_wait: Callable[[Waiting], Awaitable[None]] | None
    ) -> None:
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
        eta = estimate_wait_s(
            position, state.capacity, [now - start for start in state.started], self._mean_service_s(state)
        )
        return Waiting(position, math.ceil(round(eta, 3)))
