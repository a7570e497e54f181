"""One leader among the backend's workers for the singleton work: the indexer and the autoscaler.

Every worker serves requests; one of them, the holder of a lease, also runs the singletons. The
others campaign every ``lease_s / 3`` and take over within ``lease_s`` of the leader's death::

    leadership = leadership_for(settings, sessions)
    leadership.singleton("indexer", indexer.run)
    async with leadership.campaigning():
        ...  # serve; the singletons run while this worker leads

**The lease.** With ``TWIN_REDIS_URL`` (the multi-worker topology, since sessions, rate limits and
the chat queue are shared there too): a Redis key ``{namespace}:leader`` set with ``NX PX`` and
renewed by its holder only, and a fencing token from ``INCR {namespace}:leader:epoch`` each time
the lease changes hands. Without Redis (one machine, the embedded default): an exclusive ``flock``
on a file, which the kernel frees when its process dies; a process that is merely paused keeps it,
so no other worker can start meanwhile and no fencing is needed.

**Fencing.** A leader that was paused (GC, SIGSTOP, a slow disk) for longer than its lease may wake
up still believing it leads. So the first thing a new leader does is write its token to the
database (``app_state['leader:fence']``, only ever raised), and every write of the indexer's
cursor runs :meth:`Leadership.fence` in the same transaction: an ``UPDATE … WHERE value = <my
token>`` that matches no row once a newer leader has raised the fence, so the old leader's range is
rolled back, never applied twice. The UPDATE also locks the row, so a new leader's fence waits for
an old leader's range that is being committed, and reads the cursor after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

import structlog
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from app.config import Settings
from app.db.models import AppState
from app.lib.redis import redis_client
from app.resources import DEFAULT_VAR_DIR

log = structlog.get_logger()

FENCE_KEY = "leader:fence"


class NotLeader(Exception):
    """This worker no longer leads: another one holds a newer fencing token."""


class FenceAhead(Exception):
    """The database's fence is past the lease's token: the lease's epoch was lost (Redis restarted empty)."""

    def __init__(self, fence: int) -> None:
        super().__init__(f"the fence is at {fence}")
        self.fence = fence


class Lease(Protocol):
    """An exclusive lease among workers. ``fenced`` leases return tokens that only ever rise."""

    fenced: bool

    async def hold(self) -> int | None:
        """Take the lease if free, or renew it if ours: our fencing token; None if another worker holds it."""

    async def skip_past(self, fence: int) -> None:
        """Give up the lease and make the next token exceed ``fence``."""

    async def aclose(self) -> None:
        """Release the lease if held, and close what the lease opened."""


_HOLD = """
local held = redis.call('GET', KEYS[1])
if held then
  local holder, token = string.match(held, '^(%S+) (%d+)$')
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(token)
  end
  return false
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. token, 'PX', ARGV[2])
return token
"""

_SKIP_PAST = """
if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2])
end
local held = redis.call('GET', KEYS[1])
if held and string.match(held, '^(%S+) ') == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 1
"""

_RELEASE = """
local held = redis.call('GET', KEYS[1])
if held and string.match(held, '^(%S+) ') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLease:
    """A lease in Redis: one key naming its holder and token, expiring ``lease_s`` after the last renewal."""

    fenced = True

    def __init__(self, redis: Redis, namespace: str, lease_s: float) -> None:
        self._redis = redis
        self._keys = [f"{namespace}:leader", f"{namespace}:leader:epoch"]
        self._holder = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._lease_ms = int(lease_s * 1000)
        self._hold = redis.register_script(_HOLD)
        self._release = redis.register_script(_RELEASE)
        self._skip_past = redis.register_script(_SKIP_PAST)

    async def hold(self) -> int | None:
        token = await self._hold(keys=self._keys, args=[self._holder, self._lease_ms])
        return None if token is None else int(token)

    async def skip_past(self, fence: int) -> None:
        await self._skip_past(keys=self._keys, args=[self._holder, fence])

    async def aclose(self) -> None:
        try:
            await self._release(keys=self._keys[:1], args=[self._holder])
        finally:
            await self._redis.aclose()


class FileLease:
    """An exclusive ``flock`` on ``path``: held until released or until the process dies."""

    fenced = False

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    async def skip_past(self, fence: int) -> None:
        """Never asked: a file lock is not fenced."""

    async def hold(self) -> int | None:
        if self._fd is not None:
            return 0
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        self._fd = fd
        return 0

    async def aclose(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


class Leadership:
    """Campaigns for the lease and runs the registered singletons while this worker holds it."""

    def __init__(self, lease: Lease, sessions: async_sessionmaker[AsyncSession], *, lease_s: float) -> None:
        self._lease = lease
        self._sessions = sessions
        self._renew_s = lease_s / 3
        self._singletons: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self.token: int | None = None  # set while this worker leads
        self.campaigning_now = False

    @property
    def is_leader(self) -> bool:
        return self.token is not None

    async def readiness(self) -> str | None:
        """A note for ``/readyz`` (never a failure: a follower is as ready as the leader)."""
        if not self.campaigning_now:
            return None
        if not self.is_leader:
            return "follows"
        token = f" (token {self.token})" if self._lease.fenced else ""
        return f"leads {', '.join(sorted(self._singletons))}{token}"

    def singleton(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``run()`` (a forever-loop) on the leader only; register before campaigning."""
        self._singletons[name] = run

    @contextlib.asynccontextmanager
    async def campaigning(self) -> AsyncIterator[Leadership]:
        """Campaign while the block runs (nothing to do without singletons); step down and release after."""
        if not self._singletons:
            yield self
            await self._lease.aclose()
            return
        self.campaigning_now = True
        campaign = asyncio.create_task(self._campaign(), name="leader-campaign")
        try:
            yield self
        finally:
            campaign.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await campaign
            await self._step_down("shutdown")
            with contextlib.suppress(Exception):
                await self._lease.aclose()
            self.campaigning_now = False

    async def fence(self, session: AsyncSession) -> None:
        """In a write transaction of singleton work: raise :class:`NotLeader` if a newer leader took over."""
        if not (self.campaigning_now and self._lease.fenced):
            return
        if self.token is None:
            raise NotLeader("this worker does not lead")
        result = await session.execute(
            update(AppState)
            .where(col(AppState.key) == FENCE_KEY, col(AppState.value) == str(self.token))
            .values(value=str(self.token))
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise NotLeader(f"a newer leader raised the fence past token {self.token}")

    async def _campaign(self) -> None:
        while True:
            try:
                token = await asyncio.wait_for(self._lease.hold(), self._renew_s)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - unsure whether we still hold it: act as if not
                log.warning("leader_lease_unreachable", error=repr(error)[:200])
                token = None
            if token is None:
                await self._step_down("lease held by another worker")
            elif self.token is None:
                await self._take_office(token)
            await asyncio.sleep(self._renew_s)

    async def _take_office(self, token: int) -> None:
        if self._lease.fenced:
            try:
                await self._raise_fence(token)
            except FenceAhead as ahead:  # the epoch restarted below it: move it past, campaign again
                log.warning("leader_epoch_behind_fence", token=token, fence=ahead.fence)
                await self._lease.skip_past(ahead.fence)
                return
            except Exception as error:  # noqa: BLE001 - the database is down: try again at the next renewal
                log.warning("leader_fence_failed", token=token, error=repr(error)[:200])
                return
        self.token = token
        log.info("leader_elected", token=token, singletons=sorted(self._singletons))
        for name, run in self._singletons.items():
            self._running[name] = asyncio.create_task(run(), name=name)

    async def _raise_fence(self, token: int) -> None:
        async with self._sessions() as session, session.begin():
            fence = await session.scalar(select(AppState).where(col(AppState.key) == FENCE_KEY).with_for_update())
            if fence is None:
                session.add(AppState(key=FENCE_KEY, value=str(token)))
            elif int(fence.value) < token:
                fence.value = str(token)
            else:
                raise FenceAhead(int(fence.value))

    async def _step_down(self, why: str) -> None:
        if self.token is None:
            return
        log.warning("leader_stepped_down", token=self.token, why=why)
        self.token = None
        tasks, self._running = list(self._running.values()), {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def lease_for(settings: Settings) -> Lease:
    """A Redis lease when Redis is configured (workers on many machines), else a file lock (one machine):
    ``TWIN_LEADER_LOCK_FILE``, by default beside the SQLite database, else under ``var/``."""
    if settings.redis_url:
        return RedisLease(redis_client(settings.redis_url), settings.redis_namespace, settings.leader_lease_s)
    lock_file = settings.leader_lock_file
    if lock_file is None:
        database = settings.database_url.partition(":///")[2] if settings.is_sqlite else ""
        lock_file = (
            Path(f"{database}.leader.lock") if database and database != ":memory:" else DEFAULT_VAR_DIR / "leader.lock"
        )
    return FileLease(lock_file)


def leadership_for(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> Leadership:
    return Leadership(lease_for(settings), sessions, lease_s=settings.leader_lease_s)
