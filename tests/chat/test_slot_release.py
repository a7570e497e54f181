"""A worker killed with SIGKILL while it holds the only stream slot (a real process, the real Redis):
the slot returns to the other workers once its lease (``TWIN_CHAT_SLOT_LEASE_S``) runs out, since
nobody renews it any more, and a fan waiting on another worker gets it."""

from __future__ import annotations

import asyncio
import os
import sys

from app.chat.gate import open_gate
from app.config import Settings
from tests.redis_namespace import isolated_redis

LEASE_S = 4.0
HOLDER = """
import asyncio, sys
from app.chat.gate import open_gate
from app.config import Settings

async def main() -> None:
    async with open_gate(Settings(), 1) as gate:
        async def queued(position: int, eta_s: int) -> None:
            raise AssertionError("the slot was free")
        async with gate.admit(fan="0xdead", is_creator=False, keys_held=1, on_wait=queued):
            print("held", flush=True)
            await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_the_slot_of_a_killed_worker_returns_within_its_lease() -> None:
    async with isolated_redis() as redis:
        await killed_holders_slot_returns(redis.url, redis.namespace)


async def killed_holders_slot_returns(redis_url: str, namespace: str) -> None:
    env = {
        **os.environ,
        "TWIN_REDIS_URL": redis_url,
        "TWIN_REDIS_NAMESPACE": namespace,
        "TWIN_CHAT_STREAMS_PER_NODE": "1",
        "TWIN_CHAT_SLOT_LEASE_S": str(LEASE_S),
    }
    settings = Settings(
        redis_url=redis_url, redis_namespace=namespace, chat_streams_per_node=1, chat_slot_lease_s=LEASE_S
    )
    holder = await asyncio.create_subprocess_exec(sys.executable, "-c", HOLDER, env=env, stdout=asyncio.subprocess.PIPE)
    try:
        assert holder.stdout is not None
        line = await asyncio.wait_for(holder.stdout.readline(), 60)
        assert line.strip() == b"held"
        async with open_gate(settings, 1) as gate:
            positions: list[int] = []

            async def queued(position: int, eta_s: int) -> None:
                positions.append(position)

            async def stream() -> None:
                async with gate.admit(fan="0xbeef", is_creator=False, keys_held=1, on_wait=queued):
                    pass

            waiter = asyncio.create_task(stream())
            async with asyncio.timeout(10):
                while not positions:  # noqa: ASYNC110 - the queue's callback, not an event
                    await asyncio.sleep(0.02)
            assert positions == [1]  # the killed worker's slot is really taken
            holder.kill()
            await holder.wait()
            # A dead worker's slot comes back after its lease, not the 30 s it used to take.
            await asyncio.wait_for(waiter, LEASE_S + 3)
            assert (await gate.load()).in_flight == 0
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
