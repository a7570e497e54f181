"""Reads a contract's events in bounded block ranges and hands them to a sink, exactly once.

The cursor (last indexed block) and the sink's writes commit in one transaction, so a
restart resumes where the last committed range ended and never applies an event twice.
Re-orgs: the hash of every block the indexer read events from, and of each range's last
block, is kept for a window of recent blocks. Before each pass the cursor block's stored
hash is compared with the chain's; on a mismatch the indexer walks back to the newest
stored block that still matches, asks the sink to revert everything above it, and
re-reads from there.

A range costs one ``eth_getLogs`` and one header read (its last block's hash) when the node
dates its logs (``blockTimestamp``, as anvil, geth and reth do); otherwise the headers of the
blocks with logs are read too, in JSON-RPC batches. For events named in ``receipts_for`` (trades,
whose network fee a wallet's P&L counts), the receipt of each of their transactions is read once,
in JSON-RPC batches alongside the headers, and the event carries what the transaction paid. Logs
are read and decoded as plain JSON-RPC answers: web3's result formatters and ``process_log`` cost
more than the read itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol, cast

import structlog
from eth_typing import ABIElement, ABIEvent
from eth_utils import event_abi_to_log_topic, to_checksum_address
from hexbytes import HexBytes
from prometheus_client import Gauge
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.types import RPCEndpoint

from app.chain.models import IndexedBlock
from app.db.base import table_of
from app.db.models import AppState

log = structlog.get_logger()

INDEXER_LAG = Gauge("twin_indexer_lag_blocks", "Chain head minus the indexer's cursor, in blocks")
INDEXER_HEAD = Gauge("twin_indexer_cursor_block", "Last block the indexer has applied")
RPC_BATCH = 100  # headers or receipts per JSON-RPC batch (providers cap batches; the backend's own /rpc at 100)


def _events(abi: Iterable[ABIElement]) -> list[ABIEvent]:
    """The event entries of a contract's ABI."""
    return [cast(ABIEvent, entry) for entry in abi if entry.get("type") == "event"]


class ChainReadError(Exception):
    """The node answered a read with a JSON-RPC error."""


@dataclass(frozen=True, slots=True)
class TransactionFee:
    """What a transaction paid the network, from its receipt: gas used × effective gas price, and who paid."""

    payer: str
    wei: int


@dataclass(frozen=True, slots=True)
class ChainEvent:
    name: str
    args: dict[str, Any]
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    timestamp: datetime
    tx_fee: TransactionFee | None = None  # only for events named in the indexer's receipts_for


@dataclass(frozen=True, slots=True)
class _RangeRead:
    """What one range's reads gave: its events in order and the hashes of the blocks to remember."""

    start: int
    end: int
    events: list[ChainEvent]
    hashes: dict[int, str]


class EventSink(Protocol):
    """Applies events to the database and can undo everything above a block."""

    async def apply(self, session: AsyncSession, events: Sequence[ChainEvent]) -> None: ...

    async def revert_above(self, session: AsyncSession, block_number: int) -> None: ...


Fence = Callable[[AsyncSession], Awaitable[None]]
"""Called in the transaction that moves the cursor, before it does: raises if this worker may no longer
index (it lost the leadership), so that a paused old leader cannot write after another took over."""


async def _no_fence(session: AsyncSession) -> None:
    """The only indexer of its database: nothing to check."""


class Indexer:
    def __init__(
        self,
        w3: AsyncWeb3,
        contract: AsyncContract,
        sink: EventSink,
        sessions: async_sessionmaker[AsyncSession],
        *,
        name: str = "twin_keys",
        confirmations: int = 0,
        start_block: int = 0,
        batch_blocks: int = 2000,
        reorg_window: int = 256,
        poll_interval_s: float = 1.0,
        max_blocks_per_s: float = float("inf"),
        fence: Fence | None = None,
        receipts_for: Collection[str] = (),
    ) -> None:
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
        self._max_blocks_per_s = max_blocks_per_s
        self._fence = fence or _no_fence
        self._receipts_for = frozenset(receipts_for)
        self._decoders = {
            "0x" + event_abi_to_log_topic(abi).hex(): EventDecoder(dict(abi), getattr(contract.events, abi["name"]))
            for abi in _events(contract.abi)
            if not abi.get("anonymous")
        }
        self._wakeup = asyncio.Event()
        self._lock = asyncio.Lock()  # one pass at a time: the poller and an explicit sync() may meet
        self.last_error: str | None = None
        self.lag_blocks = 0

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
        read: _RangeRead | None = None
        while cursor < target or read is not None:
            # The next range is read while the last one is stored: catch-up costs about the larger of
            # the two, not their sum. Far behind, ranges start no faster than max_blocks_per_s allows.
            if read is not None:
                await asyncio.sleep((read.end - read.start + 1) / self._max_blocks_per_s)
            end = min(cursor + self._batch_blocks, target)
            reading = asyncio.ensure_future(self._read_range(cursor + 1, end)) if cursor < target else None
            try:
                if read is not None:
                    applied += await self._store_range(read)
            except BaseException:
                if reading is not None:
                    reading.cancel()
                raise
            read = await reading if reading is not None else None
            cursor = max(cursor, end)
        self.lag_blocks = max(head - cursor, 0)
        INDEXER_LAG.set(self.lag_blocks)
        INDEXER_HEAD.set(cursor)
        return applied

    def poke(self) -> None:
        """Ask a running indexer to look at the chain now rather than at its next poll."""
        self._wakeup.set()

    async def run(self) -> None:
        """Poll forever. An RPC outage pauses indexing with one log line (``indexer_paused``); it
        catches up afterwards and says so with the lag it had left (``indexer_resumed``)."""
        while True:
            try:
                await self.sync()
                if self.last_error is not None:
                    log.info("indexer_resumed", lag_blocks=self.lag_blocks)
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

    async def run_while_leading(self) -> None:
        """:meth:`run` as a leader's singleton: stopped, it is not paused, only no longer here."""
        try:
            await self.run()
        finally:
            self.last_error = None

    async def cursor(self) -> int:
        return await self._cursor()

    # ---------------------------------------------------------------- internals

    async def _cursor(self) -> int:
        async with self._sessions() as session:
            state = await session.get(AppState, self._cursor_key)
        return int(state.value) if state else self._start_block - 1

    async def _read_range(self, start: int, end: int) -> _RangeRead:
        logs = await self._call(
            "eth_getLogs", [{"fromBlock": hex(start), "toBlock": hex(end), "address": self._contract.address}]
        )
        hashes = {end: ""}  # block → hash: every block with logs, and the range's last one
        timestamps: dict[int, int] = {}
        for entry in logs:
            number = int(entry["blockNumber"], 16)
            hashes[number] = entry["blockHash"].lower()
            if entry.get("blockTimestamp") is not None:
                timestamps[number] = int(entry["blockTimestamp"], 16)
        unread = [*sorted({number for number in hashes if number not in timestamps} - {end}), end]
        paid = sorted({entry["transactionHash"].lower() for entry in logs if self._needs_receipt(entry)})
        headers, receipts = await asyncio.gather(self._headers(unread), self._receipts(paid))
        for header in headers:
            number = int(header["number"], 16)
            timestamps.setdefault(number, int(header["timestamp"], 16))
            if number == end or not hashes[number]:
                hashes[number] = header["hash"].lower()
        fees = dict(zip(paid, map(_fee, receipts), strict=True))
        events = [event for entry in logs if (event := self._decode(entry, timestamps, fees)) is not None]
        events.sort(key=lambda event: (event.block_number, event.log_index))
        return _RangeRead(start, end, events, hashes)

    def _needs_receipt(self, entry: dict[str, Any]) -> bool:
        topics = entry["topics"]
        decoder = self._decoders.get(topics[0].lower()) if topics else None
        return decoder is not None and decoder.name in self._receipts_for

    async def _store_range(self, read: _RangeRead) -> int:
        """Apply a range's events, its block hashes and the cursor in one transaction."""
        start, end, events, hashes = read.start, read.end, read.events, read.hashes
        async with self._sessions() as session, session.begin():
            await self._sink.apply(session, events)
            # Only hashes inside the re-org window are kept: older ones would be deleted right away.
            window = end - self._reorg_window
            await session.execute(
                delete(IndexedBlock).where((col(IndexedBlock.number) < window) | (col(IndexedBlock.number) >= start))
            )
            await session.execute(
                insert(table_of(IndexedBlock)),
                [
                    {"number": number, "hash": block_hash}
                    for number, block_hash in sorted(hashes.items())
                    if number >= window
                ],
            )
            await self._fence(session)
            await session.merge(AppState(key=self._cursor_key, value=str(end)))
        return len(events)

    async def _call(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC call, its plain JSON result (no web3 formatting)."""
        return _result(await self._w3.provider.make_request(RPCEndpoint(method), params), method)

    async def _headers(self, numbers: Sequence[int]) -> list[dict[str, Any]]:
        """The headers of ``numbers``: one call for one block, else JSON-RPC batches."""
        if len(numbers) == 1:
            return [await self._block(numbers[0])]
        headers = await self._batched("eth_getBlockByNumber", [[hex(number), False] for number in numbers])
        return [_block_or_raise(header) for header in headers]

    async def _receipts(self, tx_hashes: Sequence[str]) -> list[dict[str, Any]]:
        """The receipts of ``tx_hashes``, in JSON-RPC batches."""
        receipts = await self._batched("eth_getTransactionReceipt", [[tx_hash] for tx_hash in tx_hashes])
        if any(receipt is None for receipt in receipts):
            raise ChainReadError("eth_getTransactionReceipt: the node does not have a receipt of a logged transaction")
        return receipts

    async def _batched(self, method: str, params: Sequence[list[Any]]) -> list[Any]:
        """One ``method`` call per entry of ``params``, in concurrent JSON-RPC batches; their results in order."""
        batches = [params[index : index + RPC_BATCH] for index in range(0, len(params), RPC_BATCH)]
        answers = await asyncio.gather(
            *(self._w3.provider.make_batch_request([(RPCEndpoint(method), one) for one in batch]) for batch in batches)
        )
        results: list[Any] = []
        for answer in answers:
            if not isinstance(answer, list):  # the whole batch was refused
                _result(answer, method)
                raise ChainReadError(f"{method}: batch refused: {str(answer)[:200]}")
            results.extend(_result(one, method) for one in answer)
        return results

    async def _block(self, number: int) -> dict[str, Any]:
        return _block_or_raise(await self._call("eth_getBlockByNumber", [hex(number), False]))

    def _decode(
        self, entry: dict[str, Any], timestamps: dict[int, int], fees: dict[str, TransactionFee | None]
    ) -> ChainEvent | None:
        topics = entry["topics"]
        decoder = self._decoders.get(topics[0].lower()) if topics else None
        if decoder is None:
            return None
        number = int(entry["blockNumber"], 16)
        return ChainEvent(
            name=decoder.name,
            args=decoder.decode(entry),
            block_number=number,
            block_hash=entry["blockHash"].lower(),
            tx_hash=entry["transactionHash"].lower(),
            log_index=int(entry["logIndex"], 16),
            timestamp=_datetime(timestamps[number]),
            tx_fee=fees.get(entry["transactionHash"].lower()),
        )

    async def _rewind_if_reorganised(self) -> None:
        async with self._sessions() as session:
            stored = (await session.scalars(select(IndexedBlock).order_by(col(IndexedBlock.number).desc()))).all()
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
            await session.execute(delete(IndexedBlock).where(col(IndexedBlock.number) > ancestor))
            await self._fence(session)
            await session.merge(AppState(key=self._cursor_key, value=str(ancestor)))

    async def _matches(self, block: IndexedBlock) -> bool:
        try:
            header = await self._block(block.number)
        except Exception:  # noqa: BLE001 - a block the chain no longer has does not match
            return False
        return header["hash"].lower() == block.hash


def _result(answer: Any, method: str) -> Any:
    if not isinstance(answer, dict) or "error" in answer or "result" not in answer:
        error = answer.get("error") if isinstance(answer, dict) else answer
        raise ChainReadError(f"{method}: {str(error)[:200]}")
    return answer["result"]


def _fee(receipt: dict[str, Any]) -> TransactionFee | None:
    """What the receipt's transaction paid; None from a node whose receipts lack ``effectiveGasPrice``
    (older than London), where the fee is unknown rather than zero."""
    price = receipt.get("effectiveGasPrice")
    if price is None:
        return None
    return TransactionFee(payer=_address(receipt["from"]), wei=int(receipt["gasUsed"], 16) * int(price, 16))


def _block_or_raise(header: Any) -> dict[str, Any]:
    if header is None:
        raise ChainReadError("eth_getBlockByNumber: the node does not have the block")
    return header


@lru_cache(maxsize=4096)
def _datetime(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


@lru_cache(maxsize=65536)
def _address(word: str) -> str:
    return to_checksum_address("0x" + word[-40:])


def _uint(word: str) -> int:
    return int(word, 16)


def _int(word: str) -> int:
    value = int(word, 16)
    return value - (1 << 256) if value >> 255 else value


def _bool(word: str) -> bool:
    value = int(word, 16)
    if value > 1:
        raise ValueError(f"not a bool: 0x{word}")
    return value == 1


def _word_decoder(abi_type: str) -> Callable[[str], Any] | None:
    """How to read one 32-byte ABI word (64 hex digits) of a static elementary type; None for others."""
    if abi_type == "address":
        return _address
    if abi_type == "bool":
        return _bool
    if re.fullmatch(r"uint\d*", abi_type):
        return _uint
    if re.fullmatch(r"int\d*", abi_type):
        return _int
    if match := re.fullmatch(r"bytes(\d+)", abi_type):
        size = int(match.group(1))
        return lambda word: bytes.fromhex(word[: 2 * size])
    return None


class EventDecoder:
    """An event's arguments from a plain JSON-RPC log, exactly as web3's ``process_log`` gives them.

    Events whose arguments are all static elementary types are read word by word from the hex;
    any other (strings, arrays…) goes through web3's ``process_log``."""

    def __init__(self, abi: dict[str, Any], event: Any) -> None:
        self.name: str = abi["name"]
        self._event = event
        inputs = abi["inputs"]
        self._indexed = [(item["name"], _word_decoder(item["type"])) for item in inputs if item.get("indexed")]
        self._data = [(item["name"], _word_decoder(item["type"])) for item in inputs if not item.get("indexed")]
        self._words = all(read is not None for _, read in self._indexed + self._data)

    def decode(self, entry: dict[str, Any]) -> dict[str, Any]:
        topics = entry["topics"]
        if not self._words:
            return dict(
                self._event().process_log(
                    {**entry, "topics": [HexBytes(topic) for topic in topics], "data": HexBytes(entry["data"])}
                )["args"]
            )
        data = entry["data"][2:]
        if len(topics) != 1 + len(self._indexed) or len(data) != 64 * len(self._data):
            raise ValueError(
                f"{self.name}: the log does not match the event's ABI "
                f"({len(topics)} topics, {len(data) // 2} bytes of data)"
            )
        args: dict[str, Any] = {}
        for (name, read), topic in zip(self._indexed, topics[1:], strict=True):
            args[name] = read(topic[2:])  # type: ignore[misc]
        for index, (name, read) in enumerate(self._data):
            args[name] = read(data[64 * index : 64 * index + 64])  # type: ignore[misc]
        return args
