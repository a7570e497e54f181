"""Admission queue and rate limit, each behaviour on both backends: memory and the real Redis.

Redis is the one at ``TWIN_TEST_REDIS_URL`` (``./dev.sh test`` starts one); when it is
unreachable the Redis tests fail. Each test gets a namespace of its own and deletes it. Time is a
fake clock the tests advance, so service times and leases are exact; real time is only the few
milliseconds tasks need to react.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from app.chat.admission import (
    AdmissionPolicy,
    AdmissionQueue,
    Band,
    MemoryAdmission,
    QueueFull,
    RedisAdmission,
    Ticket,
    TicketExpired,
    Waiting,
    band_for,
    estimate_wait_s,
    order_score,
)
from app.chat.gate import open_gate
from app.chat.ratelimit import MemoryRateLimiter, RateLimited, RateLimiter, RedisRateLimiter
from app.config import Settings
from tests.redis_namespace import isolated_redis

BACKENDS = ["memory", "redis"]
SERVICE_S = 10.0  # the default stream duration in these tests


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class QueueFactory(Protocol):
    def __call__(self, capacity: int, **policy: Any) -> AdmissionQueue: ...


@asynccontextmanager
async def redis_namespace() -> AsyncIterator[tuple[Redis, str]]:
    """A client and a key prefix of this test's own; every key under it is deleted afterwards."""
    async with isolated_redis() as redis:
        try:
            yield redis.client, redis.namespace
        finally:
            await end_visits()


def policy(**overrides: Any) -> AdmissionPolicy:
    return AdmissionPolicy(**{"default_service_s": SERVICE_S, "refresh_s": 0.02, **overrides})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKENDS)
async def make_queue(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[QueueFactory]:
    """Builds queues of the backend under test; with Redis, all of one test share one namespace like workers."""
    async with backend_redis(request.param) as redis:

        def make(capacity: int, **overrides: Any) -> AdmissionQueue:
            if redis is None:
                return MemoryAdmission(capacity, policy(**overrides), clock=clock)
            client, prefix = redis
            return RedisAdmission(
                client, capacity, policy(**overrides), prefix=prefix, poll_s=0.005, lease_s=3600, clock=clock
            )  # leases: their own tests

        yield make
        await end_visits()


@asynccontextmanager
async def backend_redis(backend: str) -> AsyncIterator[tuple[Redis, str] | None]:
    if backend == "memory":
        yield None
        return
    async with redis_namespace() as redis:
        yield redis


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait (in real time) for what other tasks are about to do."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.002)


class Visit:
    """One fan's message going through ``admit()`` in a task of its own, holding its slot until ``finish()``."""

    def __init__(
        self,
        queue: AdmissionQueue,
        ticket: Ticket,
        admitted: list[str],
        name: str,
        *,
        hold: bool = True,
        tokens: int | None = None,
    ) -> None:
        VISITS.append(self)
        self.queue = queue
        self.name = name
        self.updates: list[Waiting] = []
        self.in_slot = False
        self._done = asyncio.Event()
        if not hold:
            self._done.set()
        self._tokens = tokens
        self.task = asyncio.create_task(self._run(queue, ticket, admitted))

    async def _run(self, queue: AdmissionQueue, ticket: Ticket, admitted: list[str]) -> None:
        async with queue.admit(ticket, on_wait=self._queued) as slot:
            admitted.append(self.name)
            self.in_slot = True
            await self._done.wait()
            slot.tokens_used = self._tokens
        self.in_slot = False

    async def _queued(self, waiting: Waiting) -> None:
        self.updates.append(waiting)

    def finish(self) -> None:
        self._done.set()

    @property
    def position(self) -> int | None:
        return self.updates[-1].position if self.updates else None


VISITS: list[Visit] = []  # the running test's


async def end_visits() -> None:
    """End the test's visits and let every release land, so that nothing writes after the test."""
    for visit in VISITS:
        visit.finish()
    tasks = [visit.task for visit in VISITS]
    if tasks:
        _, stuck = await asyncio.wait(tasks, timeout=5)
        for task in stuck:  # a failed test may leave one waiting for ever
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for queue in {id(visit.queue): visit.queue for visit in VISITS}.values():
        await queue.aclose()
    VISITS.clear()


async def ended(*visits: Visit) -> None:
    """Wait for the visits' ends (and their errors), a few seconds at most."""
    await asyncio.wait_for(asyncio.gather(*(visit.task for visit in visits)), 5)


def ticket(fan: str, band: Band = Band.HOLDER, est_tokens: int = 100) -> Ticket:
    return Ticket(fan, band, est_tokens)


async def queued(
    queue: AdmissionQueue, name: str, admitted: list[str], band: Band = Band.HOLDER, **visit: Any
) -> Visit:
    """A visit that has joined the queue (heard its first position) before the next one starts."""
    waiting = Visit(queue, ticket(name, band), admitted, name, **visit)
    await until(lambda: bool(waiting.updates))
    return waiting


async def streaming(queue: AdmissionQueue, admitted: list[str], name: str = "blocker") -> Visit:
    """A stream that has its slot and holds it until finished."""
    visit = Visit(queue, ticket(name), admitted, name)
    await until(lambda: visit.in_slot)
    return visit


async def serve_one(queue: AdmissionQueue, fan: str, *, tokens: int, seconds: float, clock: FakeClock) -> None:
    """One completed stream of ``seconds`` for ``fan`` that used ``tokens``."""
    async with queue.admit(ticket(fan)) as slot:
        clock.advance(seconds)
        slot.tokens_used = tokens


def refusals(reason: str) -> float:
    return REGISTRY.get_sample_value("twin_chat_admission_refusals_total", {"reason": reason}) or 0.0


# --- pure functions


def test_bands() -> None:
    assert band_for(is_creator=True, keys_held=0) is Band.CREATOR
    assert band_for(is_creator=False, keys_held=10) is Band.LARGE_HOLDER
    assert band_for(is_creator=False, keys_held=9) is Band.HOLDER
    assert band_for(is_creator=False, keys_held=9, large_holder_keys=5) is Band.LARGE_HOLDER
    assert order_score(Band.CREATOR, 2e9, 1e6) < order_score(Band.LARGE_HOLDER, 0.0, 0.0)


@pytest.mark.parametrize(
    ("position", "capacity", "elapsed", "expected"),
    [
        (1, 2, [4.0, 1.0], 6.0),  # the stream running longest ends first
        (2, 2, [4.0, 1.0], 9.0),
        (3, 2, [4.0, 1.0], 16.0),  # a round later
        (1, 2, [12.0, 1.0], 0.0),  # an overrunning stream may end any moment
        (1, 3, [4.0], 0.0),  # an idle slot: about to be filled
        (1, 1, [4.0, 1.0], 9.0),  # capacity cut to 1: the first stream to end frees nothing
        (2, 0, [], 10.0),  # no capacity yet: one slot assumed
    ],
)
def test_estimated_wait(position: int, capacity: int, elapsed: list[float], expected: float) -> None:
    assert estimate_wait_s(position, capacity, elapsed, SERVICE_S) == pytest.approx(expected)


# --- both backends


async def test_free_slot_admits_at_once(make_queue: QueueFactory) -> None:
    queue = make_queue(2)
    heard: list[Waiting] = []

    async def on_wait(waiting: Waiting) -> None:
        heard.append(waiting)

    async with queue.admit(ticket("0xAa"), on_wait=on_wait) as slot:
        assert slot.waited_s == 0
        assert (await queue.load()).in_flight == 1
    assert heard == []
    load = await queue.load()
    assert (load.in_flight, load.waiting) == (0, 0)


async def test_burst_never_exceeds_capacity(make_queue: QueueFactory) -> None:
    queue = make_queue(3)
    running, most = 0, 0

    async def one(fan: str) -> None:
        nonlocal running, most
        async with queue.admit(ticket(fan)):
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.01)
            running -= 1

    await asyncio.wait_for(asyncio.gather(*(one(f"fan{i}") for i in range(20))), 10)
    assert most == 3
    assert (await queue.load()).in_flight == 0


async def test_fifo_within_a_band(make_queue: QueueFactory, clock: FakeClock) -> None:
    queue = make_queue(1)
    admitted: list[str] = []
    blocker = await streaming(queue, admitted)
    for name in ["a", "b", "c", "d"]:
        await queued(queue, name, admitted, hold=False)
        clock.advance(1)
    blocker.finish()
    await until(lambda: len(admitted) == 5)
    assert admitted == ["blocker", "a", "b", "c", "d"]


async def test_sooner_bands_go_first(make_queue: QueueFactory, clock: FakeClock) -> None:
    queue = make_queue(1)
    admitted: list[str] = []
    blocker = await streaming(queue, admitted)
    holder = await queued(queue, "holder", admitted, Band.HOLDER, hold=False)
    clock.advance(1)
    large = await queued(queue, "large", admitted, Band.LARGE_HOLDER, hold=False)
    clock.advance(1)
    creator = await queued(queue, "creator", admitted, Band.CREATOR, hold=False)
    assert (creator.updates[0].position, large.updates[0].position) == (1, 1)  # ahead of all waiting before
    await until(lambda: (large.position, holder.position) == (2, 3))
    blocker.finish()
    await until(lambda: len(admitted) == 4)
    assert admitted == ["blocker", "creator", "large", "holder"]


async def test_tokens_served_recently_push_a_fan_back_without_starving_it(
    make_queue: QueueFactory, clock: FakeClock
) -> None:
    queue = make_queue(1)
    await serve_one(queue, "heavy", tokens=2000, seconds=SERVICE_S, clock=clock)  # the only reply: one average one
    admitted: list[str] = []
    blocker = await streaming(queue, admitted)
    await queued(queue, "heavy", admitted, hold=False)  # placed one round (~10 s) back
    clock.advance(1)
    await queued(queue, "fresh", admitted, hold=False)
    clock.advance(15)
    await queued(queue, "late", admitted, hold=False)
    blocker.finish()
    await until(lambda: len(admitted) == 4)
    assert admitted == ["blocker", "fresh", "heavy", "late"]


async def test_positions_and_etas_only_fall_as_the_queue_drains(make_queue: QueueFactory, clock: FakeClock) -> None:
    queue = make_queue(2)
    admitted: list[str] = []
    streams = [await streaming(queue, admitted, name) for name in ["s1", "s2"]]
    waiters = [await queued(queue, f"w{i}", admitted) for i in range(1, 5)]
    visits = {visit.name: visit for visit in streams + waiters}

    async def heard(expected: dict[str, Waiting]) -> None:
        await until(lambda: all(visits[name].updates[-1] == waiting for name, waiting in expected.items()))

    await heard({"w1": Waiting(1, 10), "w2": Waiting(2, 10), "w3": Waiting(3, 20), "w4": Waiting(4, 20)})
    clock.advance(4)
    await heard({"w1": Waiting(1, 6), "w2": Waiting(2, 6), "w3": Waiting(3, 16), "w4": Waiting(4, 16)})
    steps = [  # seconds later, the stream that ends (each lasts the expected 10 s), the next in, what the rest hear
        (6, "s1", "w1", {"w2": Waiting(1, 0), "w3": Waiting(2, 10), "w4": Waiting(3, 10)}),
        (0, "s2", "w2", {"w3": Waiting(1, 10), "w4": Waiting(2, 10)}),
        (10, "w1", "w3", {"w4": Waiting(1, 0)}),
        (0, "w2", "w4", {}),
    ]
    for later, ending, starting, expected in steps:
        clock.advance(later)
        visits[ending].finish()
        await ended(visits[ending])
        await until(lambda starting=starting: visits[starting].in_slot)
        await heard(expected)
    assert admitted == ["s1", "s2", "w1", "w2", "w3", "w4"]
    for visit in waiters:
        positions = [update.position for update in visit.updates]
        etas = [update.eta_s for update in visit.updates]
        assert positions == sorted(positions, reverse=True), visit.name
        assert etas == sorted(etas, reverse=True), visit.name
    for visit in waiters[2:]:
        visit.finish()
    await ended(*waiters[2:])


async def test_a_waiter_who_leaves_moves_those_behind_up(make_queue: QueueFactory) -> None:
    queue = make_queue(1)
    admitted: list[str] = []
    blocker = await streaming(queue, admitted)
    first, second, third = [await queued(queue, name, admitted, hold=False) for name in ["w1", "w2", "w3"]]
    assert third.position == 3
    second.task.cancel()
    await until(lambda: third.position == 2)
    assert (await queue.load()).waiting == 2
    blocker.finish()
    await ended(first, third)
    assert admitted == ["blocker", "w1", "w3"]
    assert second.task.cancelled()


async def test_every_waiter_who_leaves_is_gone(make_queue: QueueFactory) -> None:
    """Cancellations landing at any moment of a wait (some mid-command) all take their ticket out."""
    queue = make_queue(1)
    admitted: list[str] = []
    await streaming(queue, admitted)
    waiters = [await queued(queue, f"w{i}", admitted) for i in range(100)]
    for waiter in waiters:
        waiter.task.cancel()
        await asyncio.sleep(0.0005)
    await until(lambda: all(waiter.task.done() for waiter in waiters), timeout_s=2)
    assert (await queue.load()).waiting == 0


async def test_a_stream_cancelled_midway_frees_its_slot(make_queue: QueueFactory) -> None:
    queue = make_queue(1)
    admitted: list[str] = []
    running = await streaming(queue, admitted)
    waiting = await queued(queue, "next", admitted)
    running.task.cancel()
    await asyncio.sleep(0)  # the release has begun...
    running.task.cancel()  # ...and goes on through a second cancellation, as anyio's cancel scopes deliver
    await until(lambda: waiting.in_slot)
    assert (await queue.load()).in_flight == 1
    waiting.finish()
    await ended(waiting)
    assert (await queue.load()).in_flight == 0


async def test_an_error_in_the_stream_frees_its_slot(make_queue: QueueFactory) -> None:
    queue = make_queue(1)
    with pytest.raises(RuntimeError, match="upstream"):
        async with queue.admit(ticket("0xa")):
            raise RuntimeError("upstream broke")
    assert (await queue.load()).in_flight == 0
    async with queue.admit(ticket("0xb")) as slot:
        assert slot.waited_s == 0


async def test_a_full_queue_refuses_at_once_with_a_time_to_retry(make_queue: QueueFactory) -> None:
    queue = make_queue(1, max_waiting=2)
    admitted: list[str] = []
    blocker = await streaming(queue, admitted)
    waiters = [await queued(queue, name, admitted, hold=False) for name in ["w1", "w2"]]
    before = refusals("full")
    with pytest.raises(QueueFull) as refused:
        async with queue.admit(ticket("late")):
            pytest.fail("admitted past a full queue")
    assert refused.value.retry_after_s == 2 * SERVICE_S  # the last of two waiters, one stream at a time
    assert refusals("full") == before + 1
    blocker.finish()
    await ended(*waiters)
    assert admitted == ["blocker", "w1", "w2"]


async def test_more_capacity_admits_waiters_and_less_holds_them(make_queue: QueueFactory) -> None:
    queue = make_queue(1)
    admitted: list[str] = []
    first = await streaming(queue, admitted)
    second, third = [await queued(queue, name, admitted) for name in ["w1", "w2"]]
    await queue.set_capacity(3)
    await until(lambda: second.in_slot and third.in_slot)
    await queue.set_capacity(1)
    fourth = await queued(queue, "w3", admitted)
    first.finish()
    second.finish()
    await ended(first, second)
    await asyncio.sleep(0.05)
    assert not fourth.in_slot  # one stream still runs: that is the new capacity
    third.finish()
    await until(lambda: fourth.in_slot)
    fourth.finish()
    await ended(fourth)


async def test_estimates_follow_measured_service_times(make_queue: QueueFactory, clock: FakeClock) -> None:
    queue = make_queue(1)
    for fan in ["a", "b"]:
        await serve_one(queue, fan, tokens=100, seconds=30, clock=clock)
    assert (await queue.load()).mean_service_s == 30
    admitted: list[str] = []
    blocker = await streaming(queue, admitted)
    waiting = await queued(queue, "w", admitted, hold=False)
    assert waiting.updates[0] == Waiting(1, 30)
    blocker.finish()
    await ended(waiting)


# --- Redis: several workers, crashed workers


async def test_two_workers_never_exceed_capacity_together(clock: FakeClock) -> None:
    async with redis_namespace() as (client, prefix), redis_namespace() as (other_client, _):  # two connections
        workers = [
            RedisAdmission(redis, 3, policy(), prefix=prefix, poll_s=0.005, clock=clock)
            for redis in (client, other_client)
        ]
        running, most = 0, 0

        async def one(worker: RedisAdmission, fan: str) -> None:
            nonlocal running, most
            async with worker.admit(ticket(fan)):
                running += 1
                most = max(most, running)
                await asyncio.sleep(0.01)
                running -= 1

        await asyncio.wait_for(asyncio.gather(*(one(workers[i % 2], f"fan{i}") for i in range(20))), 10)
        assert most == 3
        assert (await workers[1].load()).in_flight == 0


async def test_an_expired_lease_frees_what_a_crashed_worker_held(clock: FakeClock) -> None:
    async with redis_namespace() as (client, prefix):
        crashed = RedisAdmission(client, 1, policy(), prefix=prefix, lease_s=5, poll_s=0.005, clock=clock)
        live = RedisAdmission(client, 1, policy(), prefix=prefix, lease_s=5, poll_s=0.005, clock=clock)
        # The crashed worker took the slot and queued a ticket, then died: no release, no renewal, no polls.
        await crashed._join(order_score(Band.HOLDER, clock(), 0), clock())
        await crashed._join(order_score(Band.HOLDER, clock(), 0), clock())
        admitted: list[str] = []
        waiting = await queued(live, "fan", admitted, hold=False)
        assert waiting.position == 2
        clock.advance(4)
        await asyncio.sleep(0.05)
        assert not admitted
        clock.advance(2)
        await ended(waiting)
        assert admitted == ["fan"]
        assert (await live.load()).waiting == 0


async def test_a_waiter_whose_worker_stalled_is_dropped_and_told(clock: FakeClock) -> None:
    async with redis_namespace() as (client, prefix):
        live = RedisAdmission(client, 1, policy(), prefix=prefix, lease_s=3600, poll_s=0.005, clock=clock)
        # A worker whose polls stopped counting: its clock stands still, so each renewal is already past.
        stalled = RedisAdmission(client, 1, policy(), prefix=prefix, lease_s=5, poll_s=0.005, clock=FakeClock())
        admitted: list[str] = []
        await streaming(live, admitted)
        waiting = await queued(stalled, "fan", admitted)
        before = refusals("expired")
        clock.advance(6)
        assert (await live.load()).waiting == 0
        with pytest.raises(TicketExpired):
            await ended(waiting)
        assert refusals("expired") == before + 1


async def test_a_long_stream_keeps_its_slot_by_renewing_the_lease(clock: FakeClock) -> None:
    async with redis_namespace() as (client, prefix):
        queue = RedisAdmission(client, 1, policy(), prefix=prefix, lease_s=0.3, poll_s=0.005, clock=clock)
        admitted: list[str] = []
        stream = await streaming(queue, admitted)
        waiting = await queued(queue, "next", admitted, hold=False)
        for _ in range(8):  # 0.8 s of fake time, over two leases; renewed every 0.1 s of real time
            clock.advance(0.1)
            await asyncio.sleep(0.15)
            assert admitted == ["blocker"]
        stream.finish()
        await ended(waiting)
        assert admitted == ["blocker", "next"]


# --- rate limit


@pytest.fixture(params=BACKENDS)
async def make_limiter(
    request: pytest.FixtureRequest,
    clock: FakeClock,
) -> AsyncIterator[Callable[[int], RateLimiter]]:
    async with backend_redis(request.param) as redis:

        def make(per_minute: int) -> RateLimiter:
            if redis is None:
                return MemoryRateLimiter(per_minute, clock=clock)
            client, prefix = redis
            return RedisRateLimiter(client, per_minute, prefix=prefix, clock=clock)

        yield make


async def test_rate_limit_refuses_with_retry_after_then_recovers(
    make_limiter: Callable[[int], RateLimiter], clock: FakeClock
) -> None:
    limiter = make_limiter(3)
    for _ in range(3):
        await limiter.check("0xFan")
    before = refusals("rate_limited")
    with pytest.raises(RateLimited) as refused:
        await limiter.check("0xfan")  # the same fan, whatever the address's case
    assert refused.value.retry_after_s == 20
    assert refusals("rate_limited") == before + 1
    await limiter.check("0xother")
    clock.advance(19)
    with pytest.raises(RateLimited) as refused:
        await limiter.check("0xfan")
    assert refused.value.retry_after_s == 1
    clock.advance(1)
    await limiter.check("0xfan")
    with pytest.raises(RateLimited):
        await limiter.check("0xfan")
    clock.advance(60)
    for _ in range(3):
        await limiter.check("0xfan")


async def test_rate_limit_is_shared_by_workers_and_spent_once(clock: FakeClock) -> None:
    async with redis_namespace() as (client, prefix), redis_namespace() as (other_client, _):
        workers = [RedisRateLimiter(redis, 5, prefix=prefix, clock=clock) for redis in (client, other_client)]
        results = await asyncio.gather(*(workers[i % 2].check("0xfan") for i in range(12)), return_exceptions=True)
        assert sum(result is None for result in results) == 5
        assert all(isinstance(result, RateLimited) for result in results if result is not None)


async def test_the_gate_is_busy_while_every_stream_is_taken() -> None:
    async with open_gate(Settings(chat_streams_per_node=1), 1) as gate:
        assert not await gate.busy()

        async def never_queued(position: int, eta_s: int) -> None:
            raise AssertionError("the only stream was free")

        async with gate.admit(fan="0xfan", is_creator=False, keys_held=1, on_wait=never_queued):
            assert await gate.busy()
        assert not await gate.busy()
