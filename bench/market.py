"""The market's two hot paths, each beside the raw cost of the step underneath it, in one run:

1. Indexing throughput. An embedded chain gets a handful of avatars and N trades (buys and sells
   from several dev accounts, many per block); then the Indexer with MarketProjection catches a
   fresh, migrated SQLite database up from block 0 to the head (events/s), beside reading the
   same logs and block headers over the same ranges (get_logs + get_block, events/s). The index
   is then checked against the chain. With TWIN_BENCH_DATABASE_URL (PostgreSQL; its role needs
   CREATEDB) the index also runs there, in a throwaway database created on that server and
   dropped afterwards; the URL's own database is only used to create and drop it.
2. Quote endpoint. ``twin serve`` runs as a subprocess on a temp SQLite file; one avatar is
   created on its embedded chain with a transaction signed here and sent through its POST /rpc,
   then GET /api/avatars/{id}/quote is hammered at concurrency 32 (requests/s, p50/p99, errors),
   beside the same quote computed in-process with app.market.curve, and (informative) one
   in-process eth_call of getBuyPriceAfterFee and one in-process service.quote.

    .venv/bin/python bench/market.py [--trades 10000] [--seconds 10]

Trades are generated fast by signing in a second process while this one executes blocks of
them straight on eth-tester's py-evm chain (``mine_all``): eth-tester's own
``disable_auto_mine_transactions()`` executes each sent transaction against the last mined
block, so one account cannot have two transactions in a block, and every send re-imports
that block. While indexing, eth-tester finds transactions by hash through py-evm's index, not
by its block-by-block scan: the scan makes catching up quadratic in the number of trades (see
``indexed_transaction_lookup``; ``--eth-tester-as-shipped`` keeps it). With
TWIN_BENCH_DATABASE_URL the run takes one more indexing pass (about a minute at 10,000 trades).
Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import inspect
import multiprocessing
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import rlp
from alembic import command
from eth.exceptions import HeaderNotFound
from eth.exceptions import TransactionNotFound as EvmTransactionNotFound
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester.backends.pyevm import main as pyevm_backend
from eth_utils import event_abi_to_log_topic, keccak, to_checksum_address
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool
from web3 import Web3
from web3.contract import Contract

from app.chain.artifacts import load_artifact
from app.chain.client import Chain, chain_from_embedded
from app.chain.embedded import EmbeddedChain, dev_accounts
from app.chain.indexer import ChainEvent, Indexer
from app.config import Settings
from app.db import migrate
from app.db.engine import create_engine, session_factory
from app.market import curve
from app.market.models import Holding, MarketAvatar, Trade
from app.market.projection import MarketProjection, avatar_id_hex
from app.market.schemas import Side
from app.market.service import TwinKeysReader, quote

AVATARS = 5  # created by dev accounts 1..5
TRADERS = 9  # dev accounts 1..9 trade (account 0 deployed the contracts)
TRADES_PER_BLOCK = 10  # eth-tester decodes all of a block's receipts for each log it returns
TX_GAS = 250_000  # above any createAvatar/buyKeys/sellKeys here (~100k at most)
MAX_FEE_PER_GAS = 10**10
PRIORITY_FEE_PER_GAS = 10**9
FAR_DEADLINE = 2**63
SELL_PROBABILITY = 0.55  # when the trader holds enough keys; keeps supplies from running away
SEED = 20_241_122
QUOTE_AMOUNT = 3
SLIPPAGE_BPS = 100
CONCURRENCY = 32
RAW_SECONDS = 2.0  # how long each in-process rate is measured
SERVER_START_LIMIT_S = 120
INDEXER_BATCH_BLOCKS: int = inspect.signature(Indexer.__init__).parameters["batch_blocks"].default


# ---------------------------------------------------------------- generating the market


@dataclass(frozen=True, slots=True)
class TxPlan:
    """One TwinKeys call, fully determined before anything runs (so it can be signed elsewhere)."""

    key: bytes
    nonce: int
    function: str
    args: tuple[Any, ...]
    value: int


@dataclass
class Simulation:
    """The market as the planned transactions leave it, so each one is exact and valid."""

    divisor: int
    protocol_fee: int
    creator_fee: int
    supply: list[int] = field(default_factory=list)
    balance: dict[tuple[int, int], int] = field(default_factory=dict)
    buys: int = 0
    sells: int = 0


@dataclass(frozen=True)
class Market:
    avatar_ids: list[bytes]
    traders: list[LocalAccount]
    trades: int
    buys: int
    sells: int
    blocks: int
    head: int
    seconds: float


def plan_transactions(accounts: Sequence[LocalAccount], nonces: dict[str, int], simulation: Simulation,
                      trades: int, rng: random.Random) -> tuple[list[bytes], list[TxPlan]]:
    """AVATARS createAvatar calls (each also a trade: the creator's free first key), then buys and sells."""
    traders = list(accounts[1:1 + TRADERS])
    avatar_ids = [rng.randbytes(16) for _ in range(AVATARS)]
    plans: list[TxPlan] = []

    def plan(trader: int, function: str, args: tuple[Any, ...], value: int = 0) -> None:
        account = traders[trader]
        plans.append(TxPlan(bytes(account.key), nonces[account.address], function, args, value))
        nonces[account.address] += 1

    for index, avatar_id in enumerate(avatar_ids):
        plan(index, "createAvatar", (avatar_id, f"bench://avatar/{index}", 1, 0, FAR_DEADLINE))
        simulation.supply.append(1)
        simulation.balance[index, index] = 1
    for _ in range(trades - AVATARS):
        avatar, trader, amount = rng.randrange(AVATARS), rng.randrange(TRADERS), rng.randint(1, 3)
        supply, held = simulation.supply[avatar], simulation.balance.get((avatar, trader), 0)
        if held >= amount and amount < supply and rng.random() < SELL_PROBABILITY:
            proceeds = curve.sell_proceeds(supply, amount, simulation.divisor, simulation.protocol_fee,
                                           simulation.creator_fee)
            plan(trader, "sellKeys", (avatar_ids[avatar], amount, proceeds, FAR_DEADLINE))
            simulation.supply[avatar] -= amount
            simulation.balance[avatar, trader] = held - amount
            simulation.sells += 1
        else:
            total = curve.buy_total(supply, amount, simulation.divisor, simulation.protocol_fee,
                                    simulation.creator_fee)
            plan(trader, "buyKeys", (avatar_ids[avatar], amount, total, FAR_DEADLINE), total)
            simulation.supply[avatar] += amount
            simulation.balance[avatar, trader] = held + amount
            simulation.buys += 1
    return avatar_ids, plans


@cache
def _twin_keys_encoder() -> Contract:
    return Web3().eth.contract(abi=load_artifact("TwinKeys").abi)


def sign_block(chain_id: int, to: str, plans: Sequence[TxPlan]) -> list[bytes]:
    """Raw signed transactions for one block (runs in the signing process)."""
    encoder = _twin_keys_encoder()
    return [
        Account.sign_transaction({
            "type": 2, "chainId": chain_id, "nonce": plan.nonce, "to": to, "value": plan.value, "gas": TX_GAS,
            "maxFeePerGas": MAX_FEE_PER_GAS, "maxPriorityFeePerGas": PRIORITY_FEE_PER_GAS,
            "data": encoder.encode_abi(plan.function, args=list(plan.args)),
        }, plan.key).raw_transaction
        for plan in plans
    ]


def mine(chain: EmbeddedChain, raw_transactions: Sequence[bytes]) -> None:
    """Execute the transactions, in order, in one new block; any failure stops the benchmark."""
    evm = chain.tester.backend.chain
    builder = evm.get_vm().get_transaction_builder()
    _, _, computations = evm.mine_all([builder.decode(raw) for raw in raw_transactions],
                                      coinbase=bytes(20), mix_hash=os.urandom(32))
    failed = [computation.error for computation in computations if computation.is_error]
    if failed:
        raise RuntimeError(f"{len(failed)} planned transactions failed, first: {failed[0]!r}")


def chunks(items: Sequence[TxPlan], size: int) -> Iterator[Sequence[TxPlan]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def generate_market(chain: EmbeddedChain, trades: int) -> Market:
    started = time.perf_counter()
    w3 = chain.w3
    tk = w3.eth.contract(address=chain.addresses.twin_keys, abi=load_artifact("TwinKeys").abi)
    simulation = Simulation(divisor=tk.functions.curveDivisor().call(),
                            protocol_fee=tk.functions.protocolFeePercent().call(),
                            creator_fee=tk.functions.creatorFeePercent().call())
    nonces = {account.address: w3.eth.get_transaction_count(account.address) for account in chain.accounts}
    avatar_ids, plans = plan_transactions(chain.accounts, nonces, simulation, trades, random.Random(SEED))
    blocks = list(chunks(plans, TRADES_PER_BLOCK))
    signer = functools.partial(sign_block, w3.eth.chain_id, chain.addresses.twin_keys)
    # Fork: the child inherits the loaded modules; signing overlaps executing on the other core.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
        for raw_transactions in pool.map(signer, blocks):
            mine(chain, raw_transactions)
    return Market(avatar_ids=avatar_ids, traders=list(chain.accounts[1:1 + TRADERS]), trades=trades,
                  buys=simulation.buys, sells=simulation.sells, blocks=len(blocks), head=w3.eth.block_number,
                  seconds=time.perf_counter() - started)


# ---------------------------------------------------------------- indexing


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class IndexRun:
    database: str
    rate: Rate
    projection_seconds: float
    problems: list[str]


class TimedProjection(MarketProjection):
    """MarketProjection, adding up the time its apply() takes inside the indexer's transactions."""

    def __init__(self, curve_divisor: int) -> None:
        super().__init__(curve_divisor)
        self.seconds = 0.0

    async def apply(self, session: AsyncSession, events: Sequence[ChainEvent]) -> None:
        started = time.perf_counter()
        await super().apply(session, events)
        self.seconds += time.perf_counter() - started


@contextmanager
def indexed_transaction_lookup() -> Iterator[None]:
    """Have eth-tester find a transaction by hash in py-evm's hash → (block, index) table.

    As shipped, eth-tester (its own TODO says so) decodes every block back from the head for each
    lookup, and its get_logs looks up every transaction of the range: catching up on N trades
    costs O(N²) block decodes (measured: ~150 s per pass at 2,000 trades, so over an hour at
    10,000). The table
    answers the same question; anything it does not know (a pending transaction) falls back to
    the scan. Only this process's embedded chain is affected, for the reads of both sides alike.
    """
    scan = pyevm_backend._get_transaction_by_hash

    def lookup(chain: Any, transaction_hash: bytes) -> tuple[Any, Any, int]:
        with contextlib.suppress(EvmTransactionNotFound, HeaderNotFound):
            number, index = chain.chaindb.get_transaction_index(transaction_hash)
            block = chain.get_canonical_block_by_number(number)
            if index < len(block.transactions) and block.transactions[index].hash == transaction_hash:
                return block, block.transactions[index], index
        return scan(chain, transaction_hash)

    with mock.patch.object(pyevm_backend, "_get_transaction_by_hash", lookup):
        yield


def migrate_quietly(database_url: str) -> None:
    """app.db.migrate.upgrade without alembic.ini's logging setup (its INFO lines would cut the tables)."""
    config = migrate.alembic_config(database_url)
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


async def read_raw(chain: Chain, head: int) -> tuple[Rate, list[Any]]:
    """What the indexer reads, over its ranges: get_logs, then get_block for each block with logs
    and for each range's last block. Returns the rate and the logs."""
    w3, address = chain.w3, chain.addresses.twin_keys
    started, cursor, logs = time.perf_counter(), -1, []
    while cursor < head:
        end = min(cursor + INDEXER_BATCH_BLOCKS, head)
        found = await w3.eth.get_logs({"fromBlock": cursor + 1, "toBlock": end, "address": address})
        blocks = {entry["blockNumber"] for entry in found} | {end}
        await asyncio.gather(*(w3.eth.get_block(number) for number in blocks))
        logs.extend(found)
        cursor = end
    return Rate(len(logs), time.perf_counter() - started), logs


def decode_logs(chain: Chain, logs: Sequence[Any]) -> Rate:
    """The indexer's decoding step alone: each log through its event's process_log."""
    events_by_topic = {event_abi_to_log_topic(abi): getattr(chain.twin_keys.events, abi["name"])
                       for abi in chain.twin_keys.abi if abi.get("type") == "event"}
    started = time.perf_counter()
    for entry in logs:
        events_by_topic[bytes(entry["topics"][0])]().process_log(entry)
    return Rate(len(logs), time.perf_counter() - started)


async def index_into(chain: Chain, market: Market, database_url: str, label: str) -> IndexRun:
    await asyncio.to_thread(migrate_quietly, database_url)
    engine = create_engine(database_url)
    try:
        sessions = session_factory(engine)
        divisor = await chain.twin_keys.functions.curveDivisor().call()
        projection = TimedProjection(divisor)
        indexer = Indexer(chain.w3, chain.twin_keys, projection, sessions)
        started = time.perf_counter()
        events = await indexer.sync()
        rate = Rate(events, time.perf_counter() - started)
        problems = await verify_index(chain, sessions, market)
    finally:
        await engine.dispose()
    return IndexRun(label, rate, projection.seconds, problems)


async def verify_index(chain: Chain, sessions: async_sessionmaker[AsyncSession], market: Market) -> list[str]:
    """Differences between the index and the chain (empty when they agree)."""
    functions = chain.twin_keys.functions
    async with sessions() as session:
        trade_rows = await session.scalar(select(func.count()).select_from(Trade))
        markets = {row.avatar_id: row for row in await session.scalars(select(MarketAvatar))}
        holdings = {(row.avatar_id, row.holder): row.balance for row in await session.scalars(select(Holding))}
    problems = [] if trade_rows == market.trades else [f"{trade_rows} Trade rows, {market.trades} trades sent"]
    for raw_id in market.avatar_ids:
        avatar_id = avatar_id_hex(raw_id)
        indexed = markets.get(avatar_id)
        if indexed is None:
            problems.append(f"{avatar_id}: not indexed")
            continue
        onchain = {
            "supply": await functions.keysSupply(raw_id).call(),
            "creator_fees": await functions.creatorFees(raw_id).call(),  # nothing was withdrawn
            "protocol_fees": await functions.protocolFees(raw_id).call(),
        }
        holders = 0
        for trader in market.traders:
            balance = await functions.keysBalance(raw_id, trader.address).call()
            holders += balance > 0
            if holdings.get((avatar_id, trader.address), 0) != balance:
                problems.append(f"{avatar_id} {trader.address}: index holds "
                                f"{holdings.get((avatar_id, trader.address), 0)} keys, chain {balance}")
        onchain["holders"] = holders
        for name, value in onchain.items():
            if getattr(indexed, name) != value:
                problems.append(f"{avatar_id}: {name} {getattr(indexed, name)} in the index, {value} on chain")
    return problems


@asynccontextmanager
async def scratch_postgres(server_url: str) -> AsyncIterator[str]:
    """A new, empty database on the server of ``server_url``, dropped on the way out."""
    name = f"twin_bench_{os.urandom(4).hex()}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as connection:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def bench_indexing(chain: Chain, market: Market, workdir: Path, postgres_url: str | None
                         ) -> tuple[list[IndexRun], Rate, Rate]:
    runs = [await index_into(chain, market, f"sqlite+aiosqlite:///{workdir / 'index.db'}", "SQLite")]
    raw, logs = await read_raw(chain, market.head)
    decoded = decode_logs(chain, logs)
    if postgres_url:
        async with scratch_postgres(postgres_url) as url:
            runs.append(await index_into(chain, market, url, "PostgreSQL"))
    return runs, raw, decoded


# ---------------------------------------------------------------- the quote endpoint


@dataclass(frozen=True)
class Load:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: int) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else float("nan")
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1]


@dataclass(frozen=True)
class QuoteBench:
    load: Load
    first_error: str | None
    verified: bool
    curve_rate: Rate
    eth_call_rate: Rate
    service_rate: Rate


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TWIN_")} | {
        "TWIN_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'server.db'}",
        "TWIN_LOG_LEVEL": "warning",
    }
    twin = Path(sys.executable).with_name("twin")
    with (workdir / "server.log").open("wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen([str(twin), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                cwd=workdir, stdout=subprocess.DEVNULL, stderr=log)


def log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:]


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def wait_ready(client: httpx.AsyncClient, process: subprocess.Popen[bytes], log: Path) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < SERVER_START_LIMIT_S:
        if process.poll() is not None:
            raise RuntimeError(f"twin serve exited with {process.returncode}:\n{log_tail(log)}")
        try:
            if (await client.get("/readyz")).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"twin serve not ready within {SERVER_START_LIMIT_S}s:\n{log_tail(log)}")


async def rpc(client: httpx.AsyncClient, method: str, *params: Any) -> Any:
    response = await client.post("/rpc", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    response.raise_for_status()
    body = response.json()
    if "error" in body:
        raise RuntimeError(f"/rpc {method}: {body['error']}")
    return body["result"]


def create_address(deployer: str, nonce: int) -> str:
    return to_checksum_address(keccak(rlp.encode([bytes.fromhex(deployer[2:]), nonce]))[12:])


async def server_twin_keys(client: httpx.AsyncClient, deployer: str) -> str:
    """The server's TwinKeys: the deployer's first contract (checked against the committed code)."""
    address = create_address(deployer, 0)
    code = bytes.fromhex((await rpc(client, "eth_getCode", address, "latest"))[2:])
    if not load_artifact("TwinKeys").runtime_code_matches(code):
        raise RuntimeError(f"no TwinKeys at {address} on the server's chain")
    return address


async def send_through_rpc(client: httpx.AsyncClient, account: LocalAccount, to: str, data: str, value: int) -> None:
    """Sign locally with chain id, nonce, gas and fees read through /rpc; send; require success."""
    call = {"from": account.address, "to": to, "data": data, "value": hex(value)}
    chain_id = int(await rpc(client, "eth_chainId"), 16)
    nonce = int(await rpc(client, "eth_getTransactionCount", account.address, "pending"), 16)
    gas = int(await rpc(client, "eth_estimateGas", call), 16)
    tip = int(await rpc(client, "eth_maxPriorityFeePerGas"), 16)
    base_fee = int((await rpc(client, "eth_getBlockByNumber", "latest", False))["baseFeePerGas"], 16)
    signed = account.sign_transaction({"type": 2, "chainId": chain_id, "nonce": nonce, "to": to, "data": data,
                                       "value": value, "gas": gas, "maxPriorityFeePerGas": tip,
                                       "maxFeePerGas": 2 * base_fee + tip})
    tx_hash = await rpc(client, "eth_sendRawTransaction", "0x" + signed.raw_transaction.hex())
    receipt = await rpc(client, "eth_getTransactionReceipt", tx_hash)
    if not receipt or receipt["status"] != "0x1":
        raise RuntimeError(f"transaction {tx_hash} failed on the server's chain: {receipt}")


async def launch_on_server(client: httpx.AsyncClient, creator: LocalAccount, deployer: str,
                           buys: Sequence[int]) -> str:
    """Create an avatar from ``creator`` and buy ``buys`` keys, all through /rpc; return its id."""
    address = await server_twin_keys(client, deployer)
    encoder = _twin_keys_encoder()
    raw_id = os.urandom(16)
    await send_through_rpc(client, creator, address, encoder.encode_abi(
        "createAvatar", args=[raw_id, "bench://quote", 1, 0, FAR_DEADLINE]), 0)
    for amount in buys:
        price_call = encoder.encode_abi("getBuyPriceAfterFee", args=[raw_id, amount])
        total = int(await rpc(client, "eth_call", {"to": address, "data": price_call}, "latest"), 16)
        await send_through_rpc(client, creator, address, encoder.encode_abi(
            "buyKeys", args=[raw_id, amount, total, FAR_DEADLINE]), total)
    return avatar_id_hex(raw_id)


async def hammer(client: httpx.AsyncClient, path: str, seconds: float) -> tuple[Load, str | None]:
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            try:
                response = await client.get(path)
            except httpx.HTTPError as error:
                errors.append(f"{type(error).__name__}: {error}")
                continue
            if response.status_code == 200:
                latencies.append(time.perf_counter() - sent)
            else:
                errors.append(f"{response.status_code} {response.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    load = Load(len(latencies), len(errors), time.perf_counter() - started, latencies)
    return load, errors[0] if errors else None


def curve_quote(supply: int, amount: int, divisor: int, protocol_fee: int, creator_fee: int) -> dict[str, int]:
    """service.quote's arithmetic for a buy: curve price, both fees, total and its slippage bound."""
    price = curve.price(supply, amount, divisor)
    protocol, creator = curve.fees(price, protocol_fee, creator_fee)
    total = price + protocol + creator
    return {"price": price, "protocol_fee": protocol, "creator_fee": creator, "total": total,
            "max_total_cost": total * (10_000 + SLIPPAGE_BPS) // 10_000}


def measure_rate(step: Callable[[], object], seconds: float = RAW_SECONDS) -> Rate:
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(100):
            step()
        count += 100
    return Rate(count, elapsed)


async def measure_async_rate(step: Callable[[], Awaitable[object]], seconds: float = RAW_SECONDS) -> Rate:
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        await step()
        count += 1
    return Rate(count, elapsed)


def quote_matches(body: dict[str, Any], expected: dict[str, int]) -> bool:
    return all(int(body[name]) == value for name, value in expected.items())


async def bench_quote(chain: Chain, market: Market, workdir: Path, seconds: float) -> QuoteBench:
    settings = Settings.model_construct()  # what the server runs with: start_server drops every TWIN_* variable
    creator = dev_accounts(settings.chain_dev_mnemonic, 2)[1]
    deployer = dev_accounts(settings.chain_dev_mnemonic, 1)[0].address
    port = free_port()
    process = start_server(port, workdir)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:
            startup = await wait_ready(client, process, workdir / "server.log")
            print(f"  twin serve ready on 127.0.0.1:{port} in {startup:.1f} s", flush=True)
            avatar_id = await launch_on_server(client, creator, deployer, buys=(2, 3, 4))
            path = f"/api/avatars/{avatar_id}/quote?side=buy&amount={QUOTE_AMOUNT}&slippage_bps={SLIPPAGE_BPS}"
            first = await client.get(path)
            first.raise_for_status()
            body = first.json()
            divisor = settings.chain_curve_divisor
            expected = curve_quote(body["supply"], QUOTE_AMOUNT, divisor, settings.chain_protocol_fee_percent,
                                   settings.chain_creator_fee_percent)
            verified = body["supply"] == 1 + 2 + 3 + 4 and quote_matches(body, expected)
            await asyncio.gather(*(client.get(path) for _ in range(CONCURRENCY)))  # warm every connection
            load, first_error = await hammer(client, path, seconds)
    finally:
        stop_server(process)
    supply = body["supply"]
    curve_rate = measure_rate(lambda: curve_quote(supply, QUOTE_AMOUNT, divisor, settings.chain_protocol_fee_percent,
                                                  settings.chain_creator_fee_percent))
    raw_id = market.avatar_ids[0]
    price_after_fee = chain.twin_keys.functions.getBuyPriceAfterFee(raw_id, QUOTE_AMOUNT)
    eth_call_rate = await measure_async_rate(price_after_fee.call)
    reader = TwinKeysReader(chain.twin_keys)
    service_rate = await measure_async_rate(functools.partial(
        quote, reader, avatar_id=avatar_id_hex(raw_id), side=Side.buy, amount=QUOTE_AMOUNT,
        slippage_bps=SLIPPAGE_BPS))
    return QuoteBench(load, first_error, verified, curve_rate, eth_call_rate, service_rate)


# ---------------------------------------------------------------- output


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], text_columns: set[int]) -> None:
    """Text columns align left, figures right."""
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    print(f"\n{title}")
    for row in [header, ["-" * width for width in widths], *rows]:
        cells = [cell.ljust(width) if index in text_columns else cell.rjust(width)
                 for index, (cell, width) in enumerate(zip(row, widths, strict=True))]
        print("  " + "  ".join(cells).rstrip())


def number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def print_indexing(market: Market, runs: Sequence[IndexRun], raw: Rate, decoded: Rate) -> None:
    rows = [[f"Indexer.sync + MarketProjection → {run.database}", f"{run.rate.count:,}", f"{run.rate.seconds:.2f}",
             number(run.rate.per_second), "get_logs + get_block, same ranges", f"{raw.count:,}",
             f"{raw.seconds:.2f}", number(raw.per_second), f"{run.rate.per_second / raw.per_second:.3f}"]
            for run in runs]
    print_table(
        f"1. Indexing throughput: blocks 0 → {market.head} in ranges of {INDEXER_BATCH_BLOCKS:,} blocks, "
        f"{raw.count:,} TwinKeys events ({market.trades:,} trades)",
        ["measured", "events", "seconds", "events/s", "raw step (same run)", "events", "seconds", "events/s",
         "measured/raw"], rows, text_columns={0, 4})
    for run in runs:
        rest = run.rate.seconds - raw.seconds - decoded.seconds - run.projection_seconds
        print(f"  {run.database} {run.rate.seconds:.2f} s ≈ reads {raw.seconds:.2f} + decoding {decoded.seconds:.2f} "
              f"(measured apart) + MarketProjection.apply {run.projection_seconds:.2f} "
              f"({number(run.rate.count / run.projection_seconds)} events/s) + the rest {rest:.2f} "
              "(block hashes, flush, commit)")
    for run in runs:
        if run.problems:
            print(f"  index NOT verified ({run.database}): {len(run.problems)} differences from the chain, first ones:")
            for problem in run.problems[:8]:
                print(f"    {problem}")
        else:
            print(f"  index verified ({run.database}): {market.trades:,} Trade rows; supply, holders and fees of the "
                  f"{AVATARS} avatars and all {AVATARS * TRADERS} key balances equal the chain")


def print_quote(result: QuoteBench, seconds: float) -> None:
    load = result.load
    served = (f"{number(load.per_second)} req/s, p50 {load.percentile(50) * 1000:.1f} ms, "
              f"p99 {load.percentile(99) * 1000:.1f} ms, {load.errors} errors")
    measured = f"GET …/quote?side=buy&amount={QUOTE_AMOUNT}, {CONCURRENCY} concurrent, {seconds:g} s"
    raw_steps = [
        ("quote from app.market.curve in-process (price + fees + bounds)", result.curve_rate),
        ("(informative) one eth_call getBuyPriceAfterFee, in-process", result.eth_call_rate),
        ("(informative) service.quote in-process (block + 3 eth_calls)", result.service_rate),
    ]
    rows = [[measured if index == 0 else "", served if index == 0 else "", step, f"{number(rate.per_second)}/s",
             f"{load.per_second / rate.per_second:.4g}"] for index, (step, rate) in enumerate(raw_steps)]
    print_table("2. Quote endpoint (twin serve subprocess, SQLite, embedded chain)",
                ["measured", "figure", "raw step (same run)", "rate", "req/s ÷ rate"], rows, text_columns={0, 1, 2})
    print(f"  {load.requests:,} requests in {load.seconds:.2f} s; quote "
          f"{'verified against app.market.curve' if result.verified else 'DIFFERS from app.market.curve'}")
    if result.first_error:
        print(f"  first error: {result.first_error}")


# ---------------------------------------------------------------- main


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trades", type=int, default=10_000, help=f"trades to index, at least {AVATARS}")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to load the quote endpoint")
    parser.add_argument("--eth-tester-as-shipped", action="store_true",
                        help="keep eth-tester's transaction lookup by scanning blocks (O(N²) catch-up: use ~1,000 "
                             "trades)")
    parsed = parser.parse_args()
    if parsed.trades < AVATARS:
        parser.error(f"--trades must be at least {AVATARS} (each avatar's creation is a trade)")
    return parsed


async def run(args: argparse.Namespace, workdir: Path) -> bool:
    print(f"Twin market benchmark: {args.trades:,} trades, quote load {args.seconds:g} s at concurrency "
          f"{CONCURRENCY} ({os.cpu_count()} CPUs, Python {platform.python_version()})", flush=True)
    embedded = EmbeddedChain.start(Settings(database_url=f"sqlite:///{workdir / 'unused.db'}",
                                            chain_dev_accounts=1 + TRADERS))
    market = generate_market(embedded, args.trades)
    print(f"  generated: {AVATARS} avatars, {TRADERS} traders, {market.trades:,} trades ({market.buys:,} buys, "
          f"{market.sells:,} sells, {AVATARS} creations) in {market.blocks} blocks of {TRADES_PER_BLOCK} in "
          f"{market.seconds:.1f} s ({number(market.trades / market.seconds)} trades/s)", flush=True)
    chain = chain_from_embedded(embedded)
    postgres = os.environ.get("TWIN_BENCH_DATABASE_URL")
    postgres_url = Settings(database_url=postgres).database_url if postgres else None  # gives it the async driver
    lookup = contextlib.nullcontext() if args.eth_tester_as_shipped else indexed_transaction_lookup()
    with lookup:
        runs, raw, decoded = await bench_indexing(chain, market, workdir, postgres_url)
    print_indexing(market, runs, raw, decoded)
    if args.eth_tester_as_shipped:
        print("  eth-tester as shipped: each transaction found by scanning blocks back from the head")
    else:
        print("  eth-tester finds transactions by hash in py-evm's index here, not by its O(chain) block scan "
              "(see indexed_transaction_lookup; --eth-tester-as-shipped measures the scan)")
    print(flush=True)
    result = await bench_quote(chain, market, workdir, args.seconds)
    print_quote(result, args.seconds)
    return result.verified and result.load.errors == 0 and not any(run.problems for run in runs)


def main() -> None:
    args = arguments()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as workdir:
        ok = asyncio.run(run(args, Path(workdir)))
    print(f"\nwall time {time.perf_counter() - started:.1f} s")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
