"""The indexer reads plain JSON-RPC logs: its decoding equals web3's, and a node that does not date
its logs (no ``blockTimestamp``) costs header reads but gives the same index."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from eth_utils import event_abi_to_log_topic
from sqlalchemy import select

from app.avatars.service import avatar_id_for
from app.chain.client import Chain
from app.chain.indexer import EventDecoder, Indexer
from app.chain.models import IndexedBlock
from app.db.engine import create_engine, session_factory
from app.market.models import Trade
from app.market.projection import MarketProjection
from tests.helpers import FAR_DEADLINE, avatar_bytes, buy, sell, transact


def create(chain: Chain, creator_index: int = 1) -> str:
    creator = chain.dev_accounts[creator_index]
    avatar_id = avatar_id_for(creator.address, int.from_bytes(os.urandom(4), "big"))  # bound to its creator
    transact(chain, creator, "createAvatar", avatar_bytes(avatar_id), "ipfs://meta", 1, 0, FAR_DEADLINE)
    return avatar_id


def plain_logs(chain: Chain) -> list[dict[str, Any]]:
    assert chain.embedded is not None
    return chain.embedded.call(
        "eth_getLogs",
        {"fromBlock": hex(chain.deployment_block), "toBlock": "latest", "address": chain.addresses.twin_keys},
    )


async def test_every_twin_keys_event_decodes_as_web3_decodes_it(chain: Chain) -> None:
    owner, creator, fan = chain.dev_accounts[0], chain.dev_accounts[1], chain.dev_accounts[2]
    avatar_id = create(chain)
    buy(chain, fan, avatar_id, 3)
    sell(chain, fan, avatar_id, 2)
    transact(chain, creator, "withdrawCreatorFees", avatar_bytes(avatar_id), fan.address)
    transact(chain, owner, "withdrawProtocolFees", [avatar_bytes(avatar_id)], owner.address)
    transact(chain, owner, "setProtocolFeePercent", 4 * 10**16)
    transact(chain, owner, "setCreatorFeePercent", 3 * 10**16)
    transact(chain, owner, "pause")
    transact(chain, owner, "unpause")

    assert chain.embedded is not None
    sync_keys = chain.embedded.w3.eth.contract(address=chain.addresses.twin_keys, abi=chain.twin_keys.abi)
    formatted = sync_keys.w3.eth.get_logs({"fromBlock": chain.deployment_block, "address": chain.addresses.twin_keys})
    plain = plain_logs(chain)
    decoders = {
        "0x" + event_abi_to_log_topic(abi).hex(): EventDecoder(abi, getattr(chain.twin_keys.events, abi["name"]))
        for abi in chain.twin_keys.abi
        if abi.get("type") == "event"
    }
    seen = set()
    for raw, web3_log in zip(plain, formatted, strict=True):
        decoder = decoders[raw["topics"][0]]
        expected = sync_keys.events[decoder.name]().process_log(web3_log)
        assert decoder.decode(raw) == dict(expected["args"]), decoder.name
        seen.add(decoder.name)
    assert {
        "AvatarCreated",
        "Trade",
        "CreatorFeesWithdrawn",
        "ProtocolFeesWithdrawn",
        "ProtocolFeePercentUpdated",
        "CreatorFeePercentUpdated",
        "Paused",
        "Unpaused",
    } <= seen


class UndatedLogs(Indexer):
    """The indexer on a node whose logs carry no blockTimestamp (as older nodes answer)."""

    header_reads = 0

    async def _call(self, method: str, params: list[Any]) -> Any:
        result = await super()._call(method, params)
        if method == "eth_getLogs":
            return [{key: value for key, value in entry.items() if key != "blockTimestamp"} for entry in result]
        return result

    async def _headers(self, numbers: Any) -> list[dict[str, Any]]:
        self.header_reads += len(numbers)
        return await super()._headers(numbers)


async def test_logs_without_timestamps_are_dated_from_their_block_headers(chain: Chain, database_url: str) -> None:
    assert chain.embedded is not None
    first = chain.embedded.w3.eth.block_number + 1
    avatar_id = create(chain)
    for fan in chain.dev_accounts[2:6]:  # a block each
        buy(chain, fan, avatar_id, 2)
    engine = create_engine(database_url)
    try:
        sessions = session_factory(engine)
        indexer = UndatedLogs(
            chain.w3, chain.twin_keys, MarketProjection(1_600_000), sessions, start_block=first, batch_blocks=3
        )
        assert await indexer.sync() == 6  # the creation and its trade, then four buys
        async with sessions() as session:
            trades = (await session.scalars(select(Trade))).all()
            hashes = {row.number: row.hash for row in await session.scalars(select(IndexedBlock))}
    finally:
        await engine.dispose()
    blocks = {
        number: chain.embedded.w3.eth.get_block(number)
        for number in range(first, chain.embedded.w3.eth.block_number + 1)
    }
    assert len(trades) == 5
    assert indexer.header_reads == len({trade.block_number for trade in trades}) == 5  # each read once, in batches
    for trade in trades:
        assert trade.timestamp.replace(tzinfo=UTC) == datetime.fromtimestamp(
            blocks[trade.block_number]["timestamp"], UTC
        )
    assert set(hashes) == set(blocks)
    assert all(block_hash == "0x" + bytes(blocks[number]["hash"]).hex() for number, block_hash in hashes.items())


class CountedReceipts(Indexer):
    """The indexer, counting the receipts it asks the node for."""

    receipt_reads: list[str]

    async def _receipts(self, tx_hashes: Any) -> list[dict[str, Any]]:
        self.receipt_reads = [*getattr(self, "receipt_reads", []), *tx_hashes]
        return await super()._receipts(tx_hashes)


async def test_each_trade_records_the_network_fee_of_its_transaction_from_one_receipt_read(
    chain: Chain, database_url: str
) -> None:
    assert chain.embedded is not None
    first = chain.embedded.w3.eth.block_number + 1
    avatar_id = create(chain)
    receipts = [buy(chain, fan, avatar_id, 2) for fan in chain.dev_accounts[2:5]]
    receipts.append(sell(chain, chain.dev_accounts[2], avatar_id, 1))
    engine = create_engine(database_url)
    try:
        sessions = session_factory(engine)
        indexer = CountedReceipts(
            chain.w3,
            chain.twin_keys,
            MarketProjection(1_600_000),
            sessions,
            start_block=first,
            receipts_for=MarketProjection.RECEIPTS_FOR,
        )
        assert await indexer.sync() == 6  # the creation and its trade, then three buys and a sell
        async with sessions() as session:
            trades = {trade.tx_hash: trade for trade in await session.scalars(select(Trade))}
    finally:
        await engine.dispose()
    for receipt in receipts:
        trade = trades["0x" + bytes(receipt["transactionHash"]).hex()]
        assert trade.gas_paid == receipt["gasUsed"] * receipt["effectiveGasPrice"] > 0
    launch = next(trade for trade in trades.values() if trade.supply_after == 1)
    assert (launch.gas_paid or 0) > 0  # createAvatar's transaction, with its first key
    assert sorted(indexer.receipt_reads) == sorted(trades)  # one receipt per transaction, each read once
