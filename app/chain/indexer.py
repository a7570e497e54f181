"""Reads a contract's events in bounded block ranges and hands them to a sink, exactly once.

The cursor (last indexed block) and the sink's writes commit in one transaction, so a
restart resumes where the last committed range ended and never applies an event twice.
Re-orgs: the hash of every block the indexer read events from, and of each range's last
block, is kept for a window of recent blocks. Before each pass the cursor block's stored
hash is compared with the chain's; on a mismatch the indexer walks back to the newest
stored block that still matches, asks the sink to revert everything above it, and
re-reads from there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from eth_utils import event_abi_to_log_topic
from prometheus_client import Gauge
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from web3 import AsyncWeb3
from web3.contract import AsyncContract

from app.chain.models import IndexedBlock
from app.db.models import AppState

log = structlog.get_logger()

INDEXER_LAG = Gauge("twin_indexer_lag_blocks", "Chain head minus the indexer's cursor, in blocks")
INDEXER_HEAD = Gauge("twin_indexer_cursor_block", "Last block the indexer has applied")


@dataclass(frozen=True, slots=True)
class ChainEvent:
    name: str
    args: dict[str, Any]
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    timestamp: datetime


class EventSink(Protocol):
    """Applies events to the database and can undo everything above a block."""

    async def apply(self, session: AsyncSession, events: Sequence[ChainEvent]) -> None: ...

    async def revert_above(self, session: AsyncSession, block_number: int) -> None: ...


class Indexer:
    def __init__(self, w3: AsyncWeb3, contract: AsyncContract, sink: EventSink,
                 sessions: async_sessionmaker[AsyncSession], *, name: str = "twin_keys", confirmations: int = 0,
                 start_block: int = 0, batch_blocks: int = 2000, reorg_window: int = 256,
                 poll_interval_s: float = 1.0) -> None:
        self._w3 = w3
        self._contract = contract
        self._sink = sink
        self._sessions = sessions
        self._cursor_key = f"indexer:{name}:cursor"
        self._confirmations = confirmations
        self._start_block = start_block
        self._batch_blocks = batch_blocks
        self._reorg_window = reorg_window
        self._poll_interval_s = poll_interval_s
        self._events_by_topic = {
            "0x" + event_abi_to_log_topic(abi).hex(): getattr(contract.events, abi["name"])
            for abi in contract.abi if abi.get("type") == "event"
        }
        self._wakeup = asyncio.Event()
        self._lock = asyncio.Lock()  # one pass at a time: the poller and an explicit sync() may meet
        self.last_error: str | None = None

    # ---------------------------------------------------------------- public

    async def sync(self) -> int:
        """Index until the confirmed head; return how many events were applied."""
        async with self._lock:
            return await self._sync()

    async def _sync(self) -> int:
        head = await self._w3.eth.block_number
        target = head - self._confirmations
        await self._rewind_if_reorganised()
        cursor = await self._cursor()
        applied = 0
        while cursor < target:
            end = min(cursor + self._batch_blocks, target)
            applied += await self._index_range(cursor + 1, end)
            cursor = end
        INDEXER_LAG.set(max(head - cursor, 0))
        INDEXER_HEAD.set(cursor)
        return applied

    def poke(self) -> None:
        """Ask a running indexer to look at the chain now rather than at its next poll."""
        self._wakeup.set()

    async def run(self) -> None:
        """Poll forever. An RPC outage pauses indexing with a log line; it catches up afterwards."""
        while True:
            try:
                await self.sync()
                if self.last_error is not None:
                    log.info("indexer_recovered")
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - any failure pauses indexing until the next poll
                if self.last_error is None:
                    log.warning("indexer_paused", error=repr(error))
                self.last_error = f"{type(error).__name__}: {error}"[:300]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._poll_interval_s)
            self._wakeup.clear()

    async def cursor(self) -> int:
        return await self._cursor()

    # ---------------------------------------------------------------- internals

    async def _cursor(self) -> int:
        async with self._sessions() as session:
            state = await session.get(AppState, self._cursor_key)
        return int(state.value) if state else self._start_block - 1

    async def _index_range(self, start: int, end: int) -> int:
        logs = await self._w3.eth.get_logs(
            {"fromBlock": start, "toBlock": end, "address": self._contract.address})
        blocks = {entry["blockNumber"] for entry in logs} | {end}
        headers = dict(zip(blocks, await asyncio.gather(*(self._w3.eth.get_block(n) for n in blocks)), strict=True))
        events = [self._decode(entry, headers[entry["blockNumber"]]) for entry in logs]
        events = [event for event in events if event is not None]
        events.sort(key=lambda event: (event.block_number, event.log_index))
        async with self._sessions() as session, session.begin():
            await self._sink.apply(session, events)
            for number, header in headers.items():
                await session.merge(IndexedBlock(number=number, hash=_hex(header["hash"])))
            await session.execute(delete(IndexedBlock).where(IndexedBlock.number < end - self._reorg_window))
            await session.merge(AppState(key=self._cursor_key, value=str(end)))
        return len(events)

    def _decode(self, entry: Any, header: Any) -> ChainEvent | None:
        topics = entry["topics"]
        event = self._events_by_topic.get(_hex(topics[0])) if topics else None
        if event is None:
            return None
        decoded = event().process_log(entry)
        return ChainEvent(
            name=decoded["event"], args=dict(decoded["args"]), block_number=entry["blockNumber"],
            block_hash=_hex(entry["blockHash"]), tx_hash=_hex(entry["transactionHash"]),
            log_index=entry["logIndex"], timestamp=datetime.fromtimestamp(header["timestamp"], UTC),
        )

    async def _rewind_if_reorganised(self) -> None:
        async with self._sessions() as session:
            stored = (await session.scalars(
                select(IndexedBlock).order_by(IndexedBlock.number.desc()))).all()
        if not stored:
            return
        if await self._matches(stored[0]):
            return
        ancestor = self._start_block - 1
        for block in stored[1:]:
            if await self._matches(block):
                ancestor = block.number
                break
        log.warning("chain_reorganised", cursor=stored[0].number, common_ancestor=ancestor)
        async with self._sessions() as session, session.begin():
            await self._sink.revert_above(session, ancestor)
            await session.execute(delete(IndexedBlock).where(IndexedBlock.number > ancestor))
            await session.merge(AppState(key=self._cursor_key, value=str(ancestor)))

    async def _matches(self, block: IndexedBlock) -> bool:
        try:
            header = await self._w3.eth.get_block(block.number)
        except Exception:  # noqa: BLE001 - a block the chain no longer has does not match
            return False
        return _hex(header["hash"]) == block.hash


def _hex(value: bytes | str) -> str:
    if isinstance(value, str):
        return value.lower() if value.startswith("0x") else "0x" + value.lower()
    return "0x" + bytes(value).hex()
