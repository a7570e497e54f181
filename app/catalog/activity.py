"""The live activity feed's source: one poller per process reads the index for trades it has not seen,
with the milestones they reached (one read a second, however many sockets listen), and hands them to
this process's listeners; it runs
only while some socket listens. The index is the source (not a publish from the indexer), so every
worker of a deployment sees every trade whichever worker indexed it. ``/ws/activity`` (app/web/activity.py)
serves it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.catalog.movement import ActivityEvent, latest_trade_id, recent_activity
from app.market import curve

log = structlog.get_logger()

POLL_S = 1.0
BATCH = 50
MAX_LISTENERS = 2_000
LISTENER_BACKLOG = 100  # a socket that reads slower than trades come keeps only the newest


def event_json(event: ActivityEvent, divisor: int) -> dict[str, Any]:
    return {
        "key": event.key,
        "kind": event.kind,
        "at": event.at.isoformat(),
        "avatar_id": event.avatar_id,
        "handle": event.handle,
        "name": event.name,
        "actor": event.actor,
        "amount": event.amount,
        "eth_amount": str(event.eth_amount),
        "supply": event.supply_after,
        "next_key_price": str(curve.price(event.supply_after, 1, divisor)),
        "milestone": event.milestone,
        "threshold": None if event.threshold is None else str(event.threshold),
        "summary": event.summary,
    }


class ActivityFeed:
    """Trades newer than the last one seen, read once and given to every listener of this process."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], divisor: int) -> None:
        self._sessions = sessions
        self._divisor = divisor
        self._listeners: set[asyncio.Queue[dict[str, Any]]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._last_id = -1  # unknown until the first read

    @contextlib.contextmanager
    def listening(self) -> Iterator[asyncio.Queue[dict[str, Any]]]:
        if len(self._listeners) >= MAX_LISTENERS:
            raise OverflowError("too many listeners")
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(LISTENER_BACKLOG)
        self._listeners.add(queue)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="activity-feed")
        try:
            yield queue
        finally:
            self._listeners.discard(queue)

    async def _poll(self) -> None:
        while self._listeners:
            try:
                async with self._sessions() as session:
                    if self._last_id < 0:
                        self._last_id = await latest_trade_id(session)
                    events = await recent_activity(
                        session, limit=BATCH, divisor=self._divisor, after_trade_id=self._last_id
                    )
            except Exception as error:  # noqa: BLE001 - a busy database: the next poll tries again
                log.warning("activity_feed_read_failed", error=repr(error))
                events = []
            for event in reversed(events):  # oldest first
                self._last_id = max(self._last_id, event.trade_id)
                self._broadcast(event_json(event, self._divisor))
            await asyncio.sleep(POLL_S)

    def _broadcast(self, message: dict[str, Any]) -> None:
        for queue in self._listeners:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(message)
