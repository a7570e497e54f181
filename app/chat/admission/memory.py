"""The admission queue in this process's memory: one worker."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from bisect import bisect_left, insort
from collections import OrderedDict, deque
from dataclasses import replace

from app.chat.admission.queue import (
    FAN_HISTORY,
    FORGET_AFTER_HALF_LIVES,
    SAMPLE_WINDOW,
    AdmissionPolicy,
    AdmissionQueue,
    QueueState,
    Status,
    checked_capacity,
)
from app.lib.time import Clock


class MemoryAdmission(AdmissionQueue):
    """The queue in this process's memory: one worker (the embedded default, tests).

    A ticket given a freed slot is woken at once, so the slot is taken without delay; the others
    look at their position every ``refresh_s`` (waking a thousand waiters at every freed slot,
    each to send a frame, would cost more than the streams they wait for).
    """

    def __init__(
        self,
        capacity: int,
        policy: AdmissionPolicy = AdmissionPolicy(),
        *,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(policy, clock)
        self._capacity = checked_capacity(capacity)
        self._queue: list[tuple[float, int]] = []  # (score, id), sorted
        self._scores: dict[int, float] = {}
        self._started: dict[int, float] = {}
        self._ids = itertools.count(1)
        self._samples: deque[tuple[float, int]] = deque(maxlen=SAMPLE_WINDOW)
        self._fans: OrderedDict[str, deque[tuple[float, int]]] = OrderedDict()  # least recently served first
        self._wakeups: dict[int, asyncio.Event] = {}

    async def set_capacity(self, capacity: int) -> None:
        self._capacity = checked_capacity(capacity)
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
        status = Status.GONE
        position = 0
        if ticket_id in self._started:
            status = Status.ADMITTED
        elif ticket_id is not None and ticket_id in self._scores:
            status = Status.WAITING
            position = bisect_left(self._queue, (self._scores[ticket_id], ticket_id)) + 1
        return QueueState(
            status, position, len(self._queue), self._capacity, tuple(self._started.values()), tuple(self._samples)
        )
