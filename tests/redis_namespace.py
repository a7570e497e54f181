"""The Redis of the Redis tests, with a namespace of each test's own.

``./dev.sh test`` starts a throwaway ``redis-server`` and names it in ``TWIN_TEST_REDIS_URL``
(or leaves the variable as given, to use a Redis of one's choosing); the tests read it here only.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis


@dataclass(frozen=True)
class IsolatedRedis:
    url: str
    client: Redis
    # Every key the test writes names this (as a prefix, or inside the app's TWIN_REDIS_NAMESPACE).
    namespace: str


def redis_url_for_tests() -> str:
    url = os.environ.get("TWIN_TEST_REDIS_URL")
    if not url:
        pytest.fail("TWIN_TEST_REDIS_URL is not set: `./dev.sh test` starts a Redis of its own and sets it")
    return url


@asynccontextmanager
async def isolated_redis() -> AsyncIterator[IsolatedRedis]:
    """A client of the tests' Redis and a fresh namespace; every key naming it is deleted afterwards."""
    url = redis_url_for_tests()
    client = Redis.from_url(url)
    await client.ping()  # an unreachable Redis fails the test here
    namespace = f"test-{uuid.uuid4().hex}"
    try:
        yield IsolatedRedis(url, client, namespace)
    finally:
        keys = [key async for key in client.scan_iter(match=f"*{namespace}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
