"""The admission queue shared by every worker through Redis: its state moves only inside Lua scripts
(``lua/``), each one atomic call; ``lua/prelude.lua`` describes the keys."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

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

log = structlog.get_logger()


def _script(name: str) -> str:
    return resources.files("app.chat.admission").joinpath("lua", f"{name}.lua").read_text()


_PRELUDE = _script("prelude")
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

    def __init__(
        self,
        redis: Redis,
        capacity: int,
        policy: AdmissionPolicy = AdmissionPolicy(),
        *,
        prefix: str = "twin:chat",
        lease_s: float = 30.0,
        poll_s: float = 0.1,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(policy, clock)
        if lease_s <= 3 * max(poll_s, policy.refresh_s) or poll_s <= 0:
            raise ValueError("lease_s must exceed three polls (poll_s and refresh_s), and poll_s be > 0")
        self._redis = redis
        self._default_capacity = checked_capacity(capacity)
        self._lease_s = lease_s
        self._poll_s = poll_s
        self._namespace = f"{{{prefix}}}"
        self._keys = [f"{self._namespace}:{name}" for name in _KEY_NAMES]
        self._join_script = redis.register_script(_PRELUDE + _script("join"))
        self._poll_script = redis.register_script(_PRELUDE + _script("poll"))
        self._leave_script = redis.register_script(_PRELUDE + _script("leave"))

    async def set_capacity(self, capacity: int) -> None:
        await self._redis.set(self._key("capacity"), checked_capacity(capacity))
        await self._poll(None, self._clock())

    async def _join(self, score: float, now: float) -> tuple[int, QueueState]:
        return self._parse(
            await self._join_script(keys=self._keys, args=[*self._args(now), repr(score), self.policy.max_waiting])
        )

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
        return int(ticket_id), QueueState(
            Status(int(status)),
            int(position),
            int(depth),
            int(capacity),
            tuple(float(start) for start in started),
            tuple(_sample(raw) for raw in samples),
        )
