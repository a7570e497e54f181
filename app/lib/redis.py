"""The process's Redis clients: every one waits for a free pooled connection rather than failing.

redis-py's default pool raises ``MaxConnectionsError`` past 100 connections in use; a thousand fans waiting for
a stream, each polling the shared admission queue, passed that at once and their replies failed
(``./dev.sh bench workers --fans 1000``). A blocking pool of the same size queues the commands instead.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

MAX_CONNECTIONS = 100  # per client, as redis-py's default
POOL_WAIT_S = 20.0  # longest a command waits for a connection before failing


def redis_client(url: str) -> Redis:
    """A client of ``url`` that owns its pool (closed with it)."""
    client = Redis(
        connection_pool=BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS, timeout=POOL_WAIT_S)
    )
    client.auto_close_connection_pool = True
    return client
