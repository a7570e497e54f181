"""The proxy client's node outcomes into the rollups, each in a short transaction of its own."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.engine import claim_writer
from app.db.models import utc_now
from app.network.rollups import record_node_outcome


class NodeOutcomeRecorder:
    """An ``on_outcome`` for :class:`app.proxy.client.ProxyClient`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def __call__(self, node: str, served: bool, paid_wei: int) -> None:
        async with self._sessions() as session:
            await claim_writer(session)
            await record_node_outcome(session, node=node, at=utc_now(), served=served, paid_wei=paid_wei)
            await session.commit()
