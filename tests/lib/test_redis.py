"""The process's Redis clients queue commands for a pooled connection instead of failing past the pool's size:
more fans waiting at once than the pool has connections all get through."""

from __future__ import annotations

import asyncio
import uuid

from app.lib.redis import MAX_CONNECTIONS, redis_client
from tests.redis_namespace import redis_url_for_tests


async def test_more_commands_at_once_than_connections_all_get_through() -> None:
    client = redis_client(redis_url_for_tests())
    empty = f"test-{uuid.uuid4().hex}:empty"
    try:
        # Each BLPOP holds its connection until its 0.1 s timeout: three times the pool, all at once.
        answers = await asyncio.gather(*(client.blpop([empty], timeout=0.1) for _ in range(3 * MAX_CONNECTIONS)))
    finally:
        await client.aclose()
    assert answers == [None] * (3 * MAX_CONNECTIONS)
