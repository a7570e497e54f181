"""One leader for the singleton work.

Two real `twin serve` workers on one database and one Redis, on a chain of the test's own: only the
leader indexes and decides, both answer ``/readyz`` 200, and both show the same autoscale signal.
SIGKILL the leader: the follower takes over within the lease, indexes what came meanwhile, and the
index matches the chain trade for trade (nothing missing, nothing twice).

And fencing, in-process: a leader paused past its lease while another took over can no longer write
(its fenced transaction is refused)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.cluster.leader import FENCE_KEY, Leadership, NotLeader, RedisLease
from app.db.engine import create_engine, session_factory
from app.db.models import AppState
from tests.conftest import connected_chain_of_its_own
from tests.helpers import TWIN, buy, env_without_twin_settings, free_port, index_differences, launch
from tests.redis_namespace import isolated_redis, redis_url_for_tests

LEASE_S = 3.0


@asynccontextmanager
async def redis_namespace() -> AsyncIterator[str]:
    """A namespace of the test's own in the tests' Redis (its keys deleted afterwards)."""
    async with isolated_redis() as redis:
        yield redis.namespace


def redis_lease(namespace: str, lease_s: float) -> RedisLease:
    return RedisLease(Redis.from_url(redis_url_for_tests()), namespace, lease_s)


async def forever() -> None:
    await asyncio.Event().wait()


async def test_a_paused_leader_cannot_write_once_another_took_over(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    async with redis_namespace() as namespace:
        # The first renews every 20 s: while it "sleeps", its lease runs out and the second takes over.
        first = Leadership(redis_lease(namespace, 60), sessions, lease_s=60)
        second = Leadership(redis_lease(namespace, LEASE_S), sessions, lease_s=LEASE_S)
        for leadership in (first, second):
            leadership.singleton("work", forever)
        async with first.campaigning():
            await until(lambda: first.is_leader)
            async with second.campaigning():
                await second_takes_over(first, second, namespace, sessions)
    await engine.dispose()


async def second_takes_over(
    first: Leadership, second: Leadership, namespace: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session, session.begin():
        await first.fence(session)  # the leader's writes pass
    await asyncio.sleep(1)
    assert not second.is_leader
    redis = Redis.from_url(redis_url_for_tests())
    await redis.delete(f"{namespace}:leader")  # as if the first's lease expired while it was paused
    await redis.aclose()
    await until(lambda: second.is_leader)
    assert first.is_leader  # it has not noticed yet: only the fence stops it
    async with sessions() as session:
        with pytest.raises(NotLeader):
            await fenced_write(first, session)
        assert await session.get(AppState, "indexer:test:cursor") is None  # rolled back
        fence = await session.scalar(select(AppState.value).where(AppState.key == FENCE_KEY))
    assert fence == str(second.token)
    assert second.token is not None
    assert first.token is not None
    assert second.token > first.token
    async with sessions() as session, session.begin():
        await second.fence(session)


async def fenced_write(leadership: Leadership, session: AsyncSession) -> None:
    async with session.begin():
        await leadership.fence(session)
        session.add(AppState(key="indexer:test:cursor", value="99"))


async def test_a_lease_whose_epoch_restarted_below_the_fence_moves_past_it(database_url: str) -> None:
    """Redis restarted empty: its epoch counts from 1 again, but the database's fence is at 100. The
    new leader moves the epoch past the fence instead of never taking office."""
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        session.add(AppState(key=FENCE_KEY, value="100"))
    async with redis_namespace() as namespace:
        leadership = Leadership(redis_lease(namespace, LEASE_S), sessions, lease_s=LEASE_S)
        leadership.singleton("work", forever)
        async with leadership.campaigning():
            await until(lambda: leadership.is_leader)
            assert leadership.token is not None
            assert leadership.token > 100
            async with sessions() as session, session.begin():
                await leadership.fence(session)
    await engine.dispose()


async def until(condition: object, timeout_s: float = 20) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110 - other tasks' state
            await asyncio.sleep(0.05)


class Worker:
    """`twin serve` as a subprocess on a port of its own."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._env = env
        self._log = log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            str(TWIN),
            "serve",
            "--port",
            str(self.port),
            env=self._env,
            stdout=self._log.open("a"),
            stderr=asyncio.subprocess.STDOUT,
        )

    async def readiness(self) -> dict[str, object] | None:
        assert self.process is not None
        assert self.process.returncode is None, self._log.read_text()[-3000:]
        try:
            async with httpx.AsyncClient(timeout=3) as client:
                return (await client.get(f"{self.base}/readyz")).json()
        except httpx.TransportError:
            return None

    async def leads(self) -> bool:
        ready = await self.readiness()
        return ready is not None and str(ready["dependencies"].get("leadership", "")).startswith("ok: leads")  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def eventually(check: object, timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():  # type: ignore[operator]  # noqa: ASYNC110 - other processes' state
            await asyncio.sleep(0.1)


async def test_two_workers_one_leader_then_the_follower_takes_over_when_it_is_killed(
    database_url: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    async with connected_chain_of_its_own(tmp_path_factory) as chain, redis_namespace() as namespace:
        assert chain.embedded is not None
        env = env_without_twin_settings() | {
            "TWIN_DATABASE_URL": database_url,
            "TWIN_AUTO_MIGRATE": "false",
            "TWIN_REDIS_URL": redis_url_for_tests(),
            "TWIN_REDIS_NAMESPACE": namespace,
            "TWIN_CHAIN_RPC_URL": chain.rpc_url,
            "TWIN_TWIN_KEYS_ADDRESS": chain.addresses.twin_keys,
            "TWIN_OPG_ADDRESS": chain.addresses.opg,
            "TWIN_NODE_REGISTRY_ADDRESS": chain.addresses.node_registry,
            "TWIN_CHAIN_DEPLOYMENT_BLOCK": str(chain.deployment_block),
            "TWIN_PUBLIC_DOMAIN": "testserver.local",
            "TWIN_INDEXER_POLL_S": "0.2",
            "TWIN_AUTOSCALE_TICK_S": "0.5",
            "TWIN_LEADER_LEASE_S": str(LEASE_S),
            "TWIN_DATABASE_POOL_SIZE": "2",
            "TWIN_PROXY_PLATFORM_WALLET_KEY": "0x" + chain.dev_accounts[5].key.hex(),
        }
        workers = [Worker(env, tmp_path / f"worker{index}.log") for index in range(2)]
        try:
            for worker in workers:
                await worker.start()
            await eventually(lambda: all_ready(workers), 90)
            await eventually(lambda: leaders(workers, 1))
            leader, follower = (workers[0], workers[1]) if await workers[0].leads() else (workers[1], workers[0])
            assert (await follower.readiness())["dependencies"]["leadership"] == "ok: follows"  # type: ignore[index]

            creator, fan = chain.dev_accounts[1], chain.dev_accounts[2]
            async with httpx.AsyncClient(base_url=follower.base, timeout=30) as client:
                avatar_id = await launch(client, chain, creator, "leader")  # type: ignore[arg-type]
                buy(chain, fan, avatar_id, 2)
                contract = chain.embedded.w3.eth.contract(address=chain.addresses.twin_keys, abi=chain.twin_keys.abi)
                await eventually(lambda: matches(client, contract, avatar_id, [creator, fan]))
                await eventually(lambda: same_signal(workers))

                assert leader.process is not None
                leader.process.send_signal(signal.SIGKILL)
                await leader.process.wait()
                buy(chain, fan, avatar_id, 1)  # after the leader died: only the new one can index it
                await eventually(follower.leads, LEASE_S + 5)
                await eventually(lambda: matches(client, contract, avatar_id, [creator, fan]))
                assert await index_differences(client, contract, [avatar_id], [creator, fan]) == []
                decided_at = (await client.get("/api/autoscale/signal")).json()["decided_at"]
                await eventually(lambda: decided_after(client, decided_at))  # the new leader decides
        finally:
            for worker in workers:
                await worker.stop()
        logs = "".join((tmp_path / f"worker{index}.log").read_text() for index in range(2))
        assert logs.count("leader_elected") == 2, logs[-3000:]  # the first leader, then the survivor


async def all_ready(workers: list[Worker]) -> bool:
    readiness = [await worker.readiness() for worker in workers]
    return all(ready is not None and ready["status"] == "ok" for ready in readiness)


async def leaders(workers: list[Worker], count: int) -> bool:
    return sum([await worker.leads() for worker in workers]) == count


async def matches(client: httpx.AsyncClient, contract: object, avatar_id: str, wallets: list[object]) -> bool:
    return await index_differences(client, contract, [avatar_id], wallets) == []  # type: ignore[arg-type]


async def same_signal(workers: list[Worker]) -> bool:
    """Every worker shows the leader's decision."""
    async with httpx.AsyncClient(timeout=10) as client:
        signals = [(await client.get(f"{worker.base}/api/autoscale/signal")).json() for worker in workers]
    return len({(entry["decision_id"], entry["decided_at"]) for entry in signals}) == 1


async def decided_after(client: httpx.AsyncClient, moment: str) -> bool:
    return (await client.get("/api/autoscale/signal")).json()["decided_at"] > moment
