"""Chat under load: N fans, each holding a key, chatting at once over real websockets with the
backend, beside the same requests sent straight to its proxy node without the chat layer, in one run.

    ./dev.sh bench chat_load [--fans 100 500 1000] [--capacity 16] [--tokens-per-second 50] [--rounds 5]

The backend runs in a process of its own (``chat_load.py --serve``), built and served as ``twin serve``
builds and serves it (``create_app`` on the embedded chain, an anvil node of its own in a temp
TWIN_CHAIN_STATE_DIR that stops with the server, and its in-process node; uvicorn with the same
websocket implementation; the admission queue at ``TWIN_CHAT_STREAMS_PER_NODE=--capacity``) on a
fresh SQLite file, the embedded default; with TWIN_BENCH_DATABASE_URL (PostgreSQL; its role needs
CREATEDB) on a scratch database created on that server and dropped afterwards. That in-process node,
the very one every chat reply goes through, is also served on a second port of the same process, so
the direct load reaches the same node object, event loop and chain, with no chat layer in front.

Setup, outside every measured figure: an avatar (``--avatars``) is launched through the API and
created on-chain; the fans are fresh wallets, funded by a dev account, each buying one key, all as
transactions signed here and sent through the backend's ``/rpc`` in JSON-RPC batches (every receipt
checked); the indexer lists the holders; every fan signs in with SIWE, 32 at a time (a refused sign-in is retried and
counted). Then, for each level, first the chat, then the direct load:

* **chat**: the level's websockets are opened (not timed); each fan sends its messages one after
  another and reads ``queued``/``token``/``done``/``error`` frames. TTFT runs from the send to the first
  ``token`` frame; queue wait from the first ``queued`` frame to the first ``token`` (0 when none
  came); ETA is the first ``queued`` frame's ``eta_s``. A reply counts once ``done`` says it was
  verified and paid (``cost_wei`` > 0); an error frame, a close or 120 s without a frame is an error.
* **direct**: the same requests (the chat layer's body for that fan: persona, the same history, the
  same message; the same verification level) to the node's ``POST /v1/chat/completions``, streaming,
  paid with x402 by another dev account with the official x402 client, payloads signed before the
  clock starts. The node is fed through an ideal, zero-cost FIFO in this client (a semaphore of
  ``--capacity``), so these are the figures of a perfect admission queue in front of the same node.

Levels: one fan alone and ``--capacity`` fans (``--rounds`` messages each, nobody waits; those fans
start spread over one reply's time, so they do not move in lockstep) measure the chat layer's
overhead below capacity; then each ``--fans`` level sends one message per fan, all at once. The
server's RSS is sampled from /proc every 50 ms during each measured phase (peak shown), its CPU time
read over the phase.

The open-file limit is raised to its hard limit if a thousand fans' sockets need more (said in the
first line). Each level's lines say the machine's load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from market import load, print_table, stop_server  # bench/market.py (this file's folder is first on sys.path)
from web3 import Web3

from app.chain.artifacts import load_artifact
from app.chain.embedded import dev_accounts
from app.config import Settings
from app.market import curve

AVATAR_MODEL = "twin-offline-demo"
PERSONA = (
    "You are Nova Quill, a science-fiction novelist who answers fans in short, warm sentences "
    "and always ends with a question."
)
QUESTION = "what keeps you writing when a novel stalls halfway, and how do you find the next scene?"
CREATOR, FUNDER, DIRECT_PAYER = 1, 2, 3  # dev accounts (the node and the platform wallet are the last two)
FAR_DEADLINE = 2**63
TX_GAS = 250_000  # above buyKeys and createAvatar (~100k)
MAX_FEE_PER_GAS = 10**10
PRIORITY_FEE_PER_GAS = 10**9
GAS_MONEY = 10**16  # ETH each fan gets beside the key's price: TX_GAS at MAX_FEE_PER_GAS is 2.5e15
RPC_BATCH = 100  # the backend's /rpc takes batches of up to 100 calls
SETUP_CONCURRENCY = 32  # concurrent sign-ins and socket opens
SIGN_IN_ATTEMPTS = 5
RECEIVE_TIMEOUT_S = 120  # no frame (not even a queued update) for this long is an error
SERVER_START_LIMIT_S = 120
MINING_LIMIT_S = 60  # for the node to mine a burst of setup transactions
RSS_SAMPLE_S = 0.05


# ---------------------------------------------------------------- the server (its own process)


def serve(port: int, node_port: int) -> None:
    """``twin serve``'s app and uvicorn configuration, plus its in-process node's app on ``node_port``."""
    from app.proxy.config import load_proxy_settings
    from app.serving import load_or_exit, settings_or_exit

    settings = settings_or_exit()
    proxy_settings = load_or_exit(load_proxy_settings)
    asyncio.run(_serve(settings, proxy_settings, port, node_port))


async def _serve(settings: Settings, proxy_settings: Any, port: int, node_port: int) -> None:
    import uvicorn

    from app.chain.client import connect_chain
    from app.main import create_app
    from app.serving import quiet_framework_warnings

    class NodeServer(uvicorn.Server):
        def capture_signals(self) -> contextlib.AbstractContextManager[None]:
            return contextlib.nullcontext()  # the backend's server takes the signals

    chain = await connect_chain(settings)
    quiet_framework_warnings()
    app = create_app(settings, chain=chain, proxy_settings=proxy_settings)
    # As app.serving.serve_on_chain configures it, with a backlog for a thousand connects at once.
    backend = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level=settings.log_level,
            lifespan="on",
            ws="websockets-sansio",
            backlog=4096,
        )
    )
    serving = asyncio.create_task(backend.serve())
    while not backend.started:
        if serving.done():
            return serving.result()
        await asyncio.sleep(0.05)
    # The node the backend's proxy client reaches through its ASGI transport (started by the app's lifespan).
    (transport,) = app.state.services.proxy_client._transports.values()
    node = NodeServer(
        uvicorn.Config(
            transport._app, host="127.0.0.1", port=node_port, log_level=settings.log_level, lifespan="off", backlog=4096
        )
    )
    node_serving = asyncio.create_task(node.serve())
    try:
        await serving
    finally:
        node.should_exit = True
        await node_serving
        await chain.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    port: int, node_port: int, workdir: Path, args: argparse.Namespace, fans: int, database_url: str
) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TWIN_")} | {
        "TWIN_DATABASE_URL": database_url,
        "TWIN_CHAIN_STATE_DIR": str(chain_dir(workdir)),  # an anvil node of its own, never var/chain
        "TWIN_AUTO_MIGRATE": "true",  # PostgreSQL too: the scratch database is empty
        "TWIN_LOG_LEVEL": "warning",
        "TWIN_PROXY_OFFLINE_TOKENS_PER_SECOND": str(args.tokens_per_second),
        # The node never refuses: the capacity under test is the chat layer's (and the direct clients' queue).
        "TWIN_PROXY_CAPACITY": str(fans + 64),
        "TWIN_CHAT_STREAMS_PER_NODE": str(args.capacity),
        "TWIN_CHAT_MAX_WAITING": str(fans + 64),  # every fan may wait: a refusal would be an error here
        "TWIN_CHAT_MESSAGES_PER_MINUTE": "60000",  # the most it allows: the load is not a rate-limit test
        "TWIN_CHAT_MAX_SOCKETS_PER_ADDRESS": str(fans + 64),  # every fan connects from 127.0.0.1 here
    }
    with (workdir / "server.log").open("wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port), str(node_port)],
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # structlog writes to stdout


def chain_dir(workdir: Path) -> Path:
    return workdir / "chain"


def log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:]


def log_problems(path: Path) -> list[str]:
    """The server's warnings and errors (structlog's JSON lines), counted by event and error."""
    counts: dict[str, int] = {}
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("level") in ("warning", "error", "critical"):
                key = f"{entry.get('event')}: {str(entry.get('error', ''))[:160]}"
                counts[key] = counts.get(key, 0) + 1
    return [f"{key} ×{count}" for key, count in sorted(counts.items(), key=lambda item: -item[1])]


async def wait_ready(client: httpx.AsyncClient, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_LIMIT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{log_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get(url)).status_code == 200:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} not ready within {SERVER_START_LIMIT_S}s:\n{log_tail(log)}")


# ---------------------------------------------------------------- the server's process, from outside


class ProcessWatch:
    """Peak RSS (sampled) and CPU seconds of a process, over a measured phase."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss = 0
        self._task: asyncio.Task[None] | None = None
        self._cpu_started = 0.0
        self.cpu_s = 0.0

    def rss(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    async def _sample(self) -> None:
        while True:
            self.peak_rss = max(self.peak_rss, self.rss())
            await asyncio.sleep(RSS_SAMPLE_S)

    def __enter__(self) -> ProcessWatch:
        self.peak_rss = self.rss()
        self._cpu_started = self.cpu()
        self._task = asyncio.create_task(self._sample())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.peak_rss = max(self.peak_rss, self.rss())
        self.cpu_s = self.cpu() - self._cpu_started


# ---------------------------------------------------------------- setup: avatar, fans, keys, sessions


async def rpc(client: httpx.AsyncClient, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
    """JSON-RPC calls through the backend's /rpc, batched; the results in order (any error raises)."""
    results: list[Any] = []
    for start in range(0, len(calls), RPC_BATCH):
        batch = [
            {"jsonrpc": "2.0", "id": index, "method": method, "params": params}
            for index, (method, params) in enumerate(calls[start : start + RPC_BATCH])
        ]
        response = await client.post("/rpc", json=batch, timeout=300)
        response.raise_for_status()
        answers = sorted(response.json(), key=lambda answer: answer["id"])
        for answer in answers:
            if "error" in answer:
                raise RuntimeError(f"/rpc {batch[answer['id']]['method']}: {answer['error']}")
            results.append(answer["result"])
    return results


def signed_transaction(
    account: LocalAccount, chain_id: int, nonce: int, to: str, value: int, gas: int, data: str = "0x"
) -> str:
    return (
        "0x"
        + account.sign_transaction(
            {
                "type": 2,
                "chainId": chain_id,
                "nonce": nonce,
                "to": to,
                "value": value,
                "gas": gas,
                "data": data,
                "maxFeePerGas": MAX_FEE_PER_GAS,
                "maxPriorityFeePerGas": PRIORITY_FEE_PER_GAS,
            }
        ).raw_transaction.hex()
    )


async def send_all(client: httpx.AsyncClient, raw_transactions: Sequence[str]) -> None:
    """Send, wait until the node has mined them all (it mines as they come, a little behind a burst), and
    require every receipt to say success."""
    hashes = await rpc(client, [("eth_sendRawTransaction", [raw]) for raw in raw_transactions])
    receipts: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + MINING_LIMIT_S
    while len(receipts) < len(hashes):
        waiting = [tx_hash for tx_hash in hashes if tx_hash not in receipts]
        found = await rpc(client, [("eth_getTransactionReceipt", [tx_hash]) for tx_hash in waiting])
        receipts |= {tx_hash: receipt for tx_hash, receipt in zip(waiting, found, strict=True) if receipt}
        if len(receipts) < len(hashes):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{len(hashes) - len(receipts)} of {len(hashes)} setup transactions not mined "
                    f"within {MINING_LIMIT_S} s"
                )
            await asyncio.sleep(0.2)
    failed = [tx_hash for tx_hash in hashes if receipts[tx_hash]["status"] != "0x1"]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(hashes)} setup transactions failed, first: {failed[0]}")


async def twin_keys_address(client: httpx.AsyncClient) -> str:
    """The server's TwinKeys, from its GET /api/chain."""
    response = await client.get("/api/chain")
    response.raise_for_status()
    return str(response.json()["contracts"]["twin_keys"])


def siwe_message(account: LocalAccount, nonce: dict[str, Any]) -> str:
    import siwe  # after quiet_framework_warnings(): its grammar warns as it loads

    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 600))
    return siwe.SiweMessage(
        domain=nonce["domain"],
        address=account.address,
        uri=f"http://{nonce['domain']}",
        version="1",
        chain_id=nonce["chain_id"],
        nonce=nonce["nonce"],
        issued_at=stamp,
        expiration_time=expires,
        statement="Sign in to Twin market",
    ).prepare_message()


class SignInFailed(RuntimeError):
    def __init__(self, step: str, response: httpx.Response) -> None:
        super().__init__(f"{step}: {response.status_code} {response.text[:300]}")
        self.status = f"{step} {response.status_code}"


async def sign_in(client: httpx.AsyncClient, account: LocalAccount) -> str:
    """A fresh session for ``account``; its Cookie header value."""
    client.cookies.clear()  # never carry another fan's session into this sign-in
    response = await client.get("/api/auth/nonce")
    if response.status_code != 200:
        raise SignInFailed("GET /api/auth/nonce", response)
    nonce = response.json()
    message = siwe_message(account, nonce)
    signature = "0x" + Account.sign_message(encode_defunct(text=message), account.key).signature.hex()
    response = await client.post("/api/auth/verify", json={"message": message, "signature": signature})
    if response.status_code != 201:
        raise SignInFailed("POST /api/auth/verify", response)
    return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


async def concurrently(count: int, limit: int, job: Callable[[int], Any]) -> list[Any]:
    """``job(i)`` for i < count, at most ``limit`` at a time, results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(index: int) -> Any:
        async with gate:
            return await job(index)

    return list(await asyncio.gather(*(one(index) for index in range(count))))


@dataclass
class Fan:
    account: LocalAccount
    avatar_id: str
    cookie: str = ""


@dataclass
class World:
    avatar_ids: list[str]
    fans: list[Fan]
    setup_s: dict[str, float]
    sign_ins_refused: list[str]  # answers other than 201, each retried


async def launch_avatars(
    client: httpx.AsyncClient, creator: LocalAccount, twin_keys: str, chain_id: int, count: int
) -> list[str]:
    cookie = await sign_in(client, creator)
    encoder = Web3().eth.contract(abi=load_artifact("TwinKeys").abi)
    nonce = int((await rpc(client, [("eth_getTransactionCount", [creator.address, "pending"])]))[0], 16)
    avatar_ids, raw = [], []
    for index in range(count):
        response = await client.post(
            "/api/avatars",
            headers={"Cookie": cookie},
            json={
                "name": f"Nova Quill {index}",
                "handle": f"nova_quill_{index}",
                "persona": PERSONA,
                "model": AVATAR_MODEL,
                "bio": "A novelist's twin, under load.",
            },
        )
        if response.status_code != 201:
            raise RuntimeError(f"launch failed: {response.status_code} {response.text[:300]}")
        launched = response.json()
        avatar_ids.append(launched["id"])
        data = encoder.encode_abi(
            "createAvatar", args=[bytes.fromhex(launched["id"][2:]), launched["metadata_uri"], 1, 0, FAR_DEADLINE]
        )
        raw.append(signed_transaction(creator, chain_id, nonce + index, twin_keys, 0, TX_GAS, data))
    await send_all(client, raw)
    client.cookies.clear()
    return avatar_ids


async def set_up(client: httpx.AsyncClient, count: int, avatars: int) -> World:
    """``count`` fresh fans, each holding one key of one of ``avatars`` avatars, signed in."""
    settings = Settings.model_construct()  # what the server runs with (start_server drops every TWIN_* variable)
    accounts = dev_accounts(settings.chain_dev_mnemonic, DIRECT_PAYER + 1)
    twin_keys = await twin_keys_address(client)
    setup_s: dict[str, float] = {}
    started = time.perf_counter()
    chain_id = int((await rpc(client, [("eth_chainId", [])]))[0], 16)
    code = bytes.fromhex((await rpc(client, [("eth_getCode", [twin_keys, "latest"])]))[0][2:])
    if not load_artifact("TwinKeys").runtime_code_matches(code):
        raise RuntimeError(f"no TwinKeys at {twin_keys} on the server's chain")
    avatar_ids = await launch_avatars(client, accounts[CREATOR], twin_keys, chain_id, avatars)

    fans = [
        Fan(Account.from_key(keccak(text=f"chat_load fan {index}")), avatar_ids[index % avatars])
        for index in range(count)
    ]
    holders_each = math.ceil(count / avatars)
    # Enough for the dearest key any fan can meet (the last of the busiest avatar), fees included.
    max_cost = curve.buy_total(
        holders_each + 1,
        1,
        settings.chain_curve_divisor,
        settings.chain_protocol_fee_percent,
        settings.chain_creator_fee_percent,
    )
    funder = accounts[FUNDER]
    nonce = int((await rpc(client, [("eth_getTransactionCount", [funder.address, "pending"])]))[0], 16)
    await send_all(
        client,
        [
            signed_transaction(funder, chain_id, nonce + index, fan.account.address, max_cost + GAS_MONEY, 21_000)
            for index, fan in enumerate(fans)
        ],
    )
    balances = await rpc(client, [("eth_getBalance", [fan.account.address, "latest"]) for fan in fans])
    if any(int(balance, 16) < max_cost + GAS_MONEY for balance in balances):
        raise RuntimeError("some fans were not funded")
    encoder = Web3().eth.contract(abi=load_artifact("TwinKeys").abi)
    await send_all(
        client,
        [
            signed_transaction(  # any ETH above the price is refunded
                fan.account,
                chain_id,
                0,
                twin_keys,
                max_cost,
                TX_GAS,
                encoder.encode_abi("buyKeys", args=[bytes.fromhex(fan.avatar_id[2:]), 1, max_cost, FAR_DEADLINE]),
            )
            for fan in fans
        ],
    )
    setup_s["fund and buy"] = time.perf_counter() - started

    started = progressed = time.perf_counter()
    listed = 0
    while listed < count + avatars:  # the indexer lists every holder (each avatar's creator holds its first key)
        profiles = [(await client.get(f"/api/avatars/{avatar_id}")).json() for avatar_id in avatar_ids]
        holders = sum((profile.get("market") or {}).get("holders", 0) for profile in profiles)
        if holders > listed:
            listed, progressed = holders, time.perf_counter()
        elif time.perf_counter() - progressed > 60:
            raise RuntimeError(
                f"the index lists {holders} holders, not {count + avatars}, and has not moved for "
                "60 s: some key purchases failed"
            )
        await asyncio.sleep(0.5)
    setup_s["indexing (after the last buy)"] = time.perf_counter() - started

    started = time.perf_counter()
    clients = [httpx.AsyncClient(base_url=str(client.base_url), timeout=60) for _ in range(SETUP_CONCURRENCY)]
    free = asyncio.Queue[httpx.AsyncClient]()
    for worker in clients:
        free.put_nowait(worker)

    refused: list[str] = []

    async def sign_in_fan(index: int) -> None:
        worker = await free.get()
        try:
            for attempt in range(SIGN_IN_ATTEMPTS):
                try:
                    fans[index].cookie = await sign_in(worker, fans[index].account)
                    return
                except SignInFailed as failed:  # counted and shown; setup goes on
                    refused.append(failed.status)
                    if attempt == SIGN_IN_ATTEMPTS - 1:
                        raise
        finally:
            free.put_nowait(worker)

    try:
        await concurrently(count, SETUP_CONCURRENCY, sign_in_fan)
    finally:
        for worker in clients:
            await worker.aclose()
    setup_s["SIWE sign-ins"] = time.perf_counter() - started
    return World(avatar_ids, fans, setup_s, refused)


# ---------------------------------------------------------------- load


@dataclass
class Sample:
    """One message's reply, timed from its send (or, direct, its arrival at the client's queue)."""

    ttft: float | None = None
    wait: float = 0.0  # queue wait
    total: float | None = None
    eta_s: int | None = None  # the first queued frame's estimate
    error: str | None = None
    text: str = ""


@dataclass
class Phase:
    path: str
    seconds: float
    samples: list[Sample]
    peak_rss: int
    server_cpu_s: float
    client_cpu_s: float
    open_s: float = 0.0  # opening the sockets or connections, before the clock

    @property
    def ok(self) -> list[Sample]:
        return [sample for sample in self.samples if sample.error is None]

    @property
    def errors(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for sample in self.samples:
            if sample.error is not None:
                counts[sample.error] = counts.get(sample.error, 0) + 1
        return counts


@dataclass
class Level:
    name: str
    fans: int
    rounds: int
    spread_s: float = 0.0  # first messages spread over this long (0: all at once)
    phases: dict[str, Phase] = field(default_factory=dict)
    machine_load: str = ""  # the load average before and after the level


Exchanges = dict[int, list[tuple[int, str, str]]]  # per fan: (step, message, reply) of the chat's complete replies


def message_for(fan: int, step: int) -> str:
    return f"Fan {fan} here, message {step}: {QUESTION}"


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.asynccontextmanager
async def measured(watch: ProcessWatch) -> AsyncIterator[dict[str, float]]:
    figures: dict[str, float] = {}
    cpu = client_cpu()
    with watch:
        started = time.perf_counter()
        yield figures
        figures["seconds"] = time.perf_counter() - started
    figures["client_cpu_s"] = client_cpu() - cpu


async def chat_once(ws: Any, client_msg_id: str, content: str) -> Sample:
    from websockets.exceptions import ConnectionClosed

    sample = Sample()
    text: list[str] = []
    sent = time.perf_counter()
    first_queued: float | None = None
    try:
        await ws.send(json.dumps({"type": "message", "client_msg_id": client_msg_id, "content": content}))
        while True:
            async with asyncio.timeout(RECEIVE_TIMEOUT_S):
                frame = json.loads(await ws.recv())
            now = time.perf_counter()
            kind = frame.get("type")
            if kind == "queued" and first_queued is None:
                first_queued, sample.eta_s = now, frame["eta_s"]
            elif kind == "token":
                if sample.ttft is None:
                    sample.ttft = now - sent
                    sample.wait = now - first_queued if first_queued is not None else 0.0
                text.append(frame["text"])
            elif kind == "done":
                sample.total = now - sent
                if not frame.get("verified") or sample.ttft is None:
                    sample.error = "unverified"
                elif frame.get("cost_wei") in (None, "0"):
                    sample.error = "node not paid (cost_wei 0)"
                break
            elif kind == "error":
                sample.error = frame.get("code", "error")
                break
    except TimeoutError:
        sample.error = f"no frame in {RECEIVE_TIMEOUT_S} s"
    except ConnectionClosed as closed:
        sample.error = f"socket closed ({closed.rcvd.code if closed.rcvd else 'no close frame'})"
    sample.text = "".join(text)
    return sample


async def chat_phase(
    ws_base: str,
    fans: Sequence[tuple[int, Fan]],
    rounds: int,
    step0: int,
    exchanges: Exchanges,
    watch: ProcessWatch,
    spread_s: float = 0.0,
) -> Phase:
    """Every fan's socket opens (not timed); then each fan sends its ``rounds`` messages in turn, the first
    ones all at once or, with ``spread_s``, evenly spread over that many seconds."""
    from websockets.asyncio.client import connect

    async def open_socket(index: int) -> Any:
        fan = fans[index][1]
        return await connect(
            f"{ws_base}/ws/avatars/{fan.avatar_id}/chat",
            additional_headers={"Cookie": fan.cookie},
            open_timeout=60,
            close_timeout=5,
            max_queue=None,
        )

    opening = time.perf_counter()
    sockets = await concurrently(len(fans), SETUP_CONCURRENCY, open_socket)
    open_s = time.perf_counter() - opening
    start = asyncio.Event()

    async def converse(index: int) -> list[Sample]:
        number, _ = fans[index]
        await start.wait()
        await asyncio.sleep(spread_s * index / len(fans))
        samples = []
        for round_ in range(rounds):
            step = step0 + round_
            content = message_for(number, step)
            sample = await chat_once(sockets[index], f"{step}-{number}", content)
            if sample.error is None:
                exchanges.setdefault(number, []).append((step, content, sample.text))
            samples.append(sample)
        return samples

    tasks = [asyncio.create_task(converse(index)) for index in range(len(fans))]
    await asyncio.sleep(0.1)  # every task waits at the start line
    async with measured(watch) as figures:
        start.set()
        results = await asyncio.gather(*tasks)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return Phase(
        "chat",
        figures["seconds"],
        [sample for samples in results for sample in samples],
        watch.peak_rss,
        watch.cpu_s,
        figures["client_cpu_s"],
        open_s,
    )


class NodePayer:
    """Pays the node with the x402 package's client from a funded dev account (as bench/proxy_overhead.py)."""

    def __init__(self) -> None:
        from x402 import x402Client
        from x402.mechanisms.evm.exact import ExactEvmScheme

        account = dev_accounts(Settings.model_construct().chain_dev_mnemonic, DIRECT_PAYER + 1)[DIRECT_PAYER]
        self._client = x402Client()
        self._client.register("eip155:*", ExactEvmScheme(signer=account))
        self._client.set_spend_controls({"allowed_assets": True, "max_amount_per_payment": False})
        self._terms: Any = None

    async def headers(self, http: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, str]:
        from x402.http.utils import decode_payment_required_header, encode_payment_signature_header

        if self._terms is None:
            response = await http.post("/v1/chat/completions", json=body)
            self._terms = decode_payment_required_header(response.headers["PAYMENT-REQUIRED"])
        payload = await self._client.create_payment_payload(self._terms)
        return {"PAYMENT-SIGNATURE": encode_payment_signature_header(payload)}


def history_of(exchanges: list[tuple[int, str, str]], before: int, budget: int) -> list[dict[str, str]]:
    """What the chat layer sends as history (app.chat.context.recent_history): the latest exchanges within budget."""
    from app.chat.context import estimate_tokens

    history: list[dict[str, str]] = []
    used = 0
    for _, content, reply in reversed([exchange for exchange in exchanges if exchange[0] < before]):
        cost = estimate_tokens(content) + estimate_tokens(reply)
        if used + cost > budget:
            break
        used += cost
        history[:0] = [{"role": "user", "content": content}, {"role": "assistant", "content": reply}]
    return history


async def direct_once(
    http: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str], queue: asyncio.Semaphore
) -> Sample:
    sample = Sample()
    arrived = time.perf_counter()
    async with queue:
        sample.wait = time.perf_counter() - arrived
        try:
            async with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
                if response.status_code != 200:
                    sample.error = f"HTTP {response.status_code}"
                    return sample
                async for line in response.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    if "error" in chunk:
                        sample.error = chunk["error"].get("code") or "stream error"
                        return sample
                    choice = (chunk.get("choices") or [{}])[0]
                    if (choice.get("delta") or {}).get("content") and sample.ttft is None:
                        sample.ttft = time.perf_counter() - arrived
                    if choice.get("finish_reason"):
                        payment = chunk.get("payment_response") or {}
                        sample.total = time.perf_counter() - arrived
                        if not payment.get("success"):
                            reason = f"{payment.get('errorReason')} ({str(payment.get('errorMessage'))[:80]})"
                            sample.error = f"not settled: {reason}"
                        elif sample.ttft is None:
                            sample.error = "no content"
        except httpx.HTTPError as error:
            sample.error = type(error).__name__
            return sample
    if sample.total is None and sample.error is None:
        sample.error = "no final chunk"
    return sample


async def direct_phase(
    node_url: str,
    fans: Sequence[tuple[int, Fan]],
    rounds: int,
    step0: int,
    exchanges: Exchanges,
    capacity: int,
    payer: NodePayer,
    history_budget: int,
    watch: ProcessWatch,
    spread_s: float = 0.0,
) -> Phase:
    """The chat phase's requests straight to the node, behind an ideal FIFO queue of ``capacity`` streams."""
    from app.chat.context import context_messages
    from app.proxy.client.client import chat_request_body

    connections = min(capacity, len(fans))
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    timeout = httpx.Timeout(60, read=RECEIVE_TIMEOUT_S, pool=None)  # waiting for a connection is the queue
    async with httpx.AsyncClient(base_url=node_url, limits=limits, timeout=timeout) as http:
        requests: dict[tuple[int, int], tuple[dict[str, Any], dict[str, str]]] = {}
        for number, _ in fans:  # bodies built and payments signed before the clock starts
            for round_ in range(rounds):
                step = step0 + round_
                history = history_of(exchanges.get(number, []), step, history_budget)
                body = chat_request_body(AVATAR_MODEL, context_messages(PERSONA, history, message_for(number, step)))
                headers = await payer.headers(http, body) | {"X-Twin-Verification": "signature"}
                requests[number, round_] = body, headers
        await asyncio.gather(*(http.get("/healthz") for _ in range(connections)))  # open the connections
        queue = asyncio.Semaphore(capacity)
        start = asyncio.Event()

        async def converse(index: int) -> list[Sample]:
            number, _ = fans[index]
            await start.wait()
            await asyncio.sleep(spread_s * index / len(fans))
            return [await direct_once(http, *requests[number, round_], queue) for round_ in range(rounds)]

        tasks = [asyncio.create_task(converse(index)) for index in range(len(fans))]
        await asyncio.sleep(0.1)
        async with measured(watch) as figures:
            start.set()
            results = await asyncio.gather(*tasks)
    return Phase(
        "direct",
        figures["seconds"],
        [sample for samples in results for sample in samples],
        watch.peak_rss,
        watch.cpu_s,
        figures["client_cpu_s"],
    )


# ---------------------------------------------------------------- output


def percentile(values: Sequence[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 1000:,.1f}"


def phase_row(level: Level, phase: Phase) -> list[str]:
    ok = phase.ok
    ttfts = [sample.ttft for sample in ok if sample.ttft is not None]
    waits = [sample.wait for sample in ok]
    totals = [sample.total for sample in ok if sample.total is not None]
    return [
        level.name,
        phase.path,
        f"{len(ok):,}",
        f"{sum(phase.errors.values()):,}",
        ms(percentile(ttfts, 50)),
        ms(percentile(ttfts, 99)),
        ms(percentile(waits, 50)),
        ms(percentile(waits, 99)),
        ms(percentile(totals, 50)),
        f"{len(ok) / phase.seconds:,.1f}",
        f"{phase.peak_rss / 2**20:,.0f}",
        f"{100 * phase.server_cpu_s / phase.seconds:.0f}",
        f"{100 * phase.client_cpu_s / phase.seconds:.0f}",
    ]


def ttft_p50(phase: Phase) -> float:
    return percentile([sample.ttft for sample in phase.ok if sample.ttft is not None], 50)


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def print_results(levels: Sequence[Level], capacity: int) -> None:
    rows = [phase_row(level, phase) for level in levels for phase in level.phases.values()]
    print_table(
        "Chat over websockets vs the same requests straight to the node (ms; RSS MiB; CPU % of one core)",
        [
            "fans",
            "path",
            "replies",
            "errors",
            "TTFT p50",
            "TTFT p99",
            "wait p50",
            "wait p99",
            "total p50",
            "replies/s",
            "server peak RSS",
            "server CPU",
            "bench CPU",
        ],
        rows,
        text_columns={0, 1},
    )
    comparison = []
    for level in levels:
        chat, direct = level.phases["chat"], level.phases["direct"]
        added = ttft_p50(chat) - ttft_p50(direct)
        queued = [sample for sample in chat.ok if sample.eta_s is not None]
        eta = (
            f"{len(queued):,} queued, first ETA/actual wait p50 "
            f"{percentile([s.eta_s / s.wait for s in queued if s.wait > 0], 50):.2f}"
            if queued
            else "none queued"
        )
        comparison.append(
            [
                level.name,
                f"{ratio(ttft_p50(chat), ttft_p50(direct)):.2f}",
                f"{added * 1000:+,.1f}",
                f"{100 * ratio(added, ttft_p50(direct)):+.0f} %",
                f"{ratio(len(chat.ok) / chat.seconds, len(direct.ok) / direct.seconds):.2f}",
                f"{ratio(chat.peak_rss, direct.peak_rss):.2f}",
                eta,
            ]
        )
    print_table(
        "Chat layer ÷ direct",
        [
            "fans",
            "TTFT p50 ratio",
            "added TTFT p50 ms",
            "added / direct TTFT",
            "replies/s ratio",
            "peak RSS ratio",
            "queue",
        ],
        comparison,
        text_columns={0, 6},
    )
    for level in levels:
        for phase in level.phases.values():
            if phase.errors:
                print(
                    f"  {level.name} {phase.path} errors: "
                    + ", ".join(f"{code} ×{count}" for code, count in sorted(phase.errors.items()))
                )
    for level in levels:
        print(f"  {level.name}: {level.machine_load}")
    print(
        f"  wait = queue wait (chat: first queued frame → first token; direct: time in the client's FIFO of "
        f"{capacity} streams); total = send → done (direct: → final chunk, after settlement)"
    )
    print_goals(levels)


def print_goals(levels: Sequence[Level]) -> None:
    """The issue's goals: the largest level with zero errors; chat overhead ≤ 10 % of TTFT below capacity."""
    alone, busiest = levels[0], max(levels, key=lambda level: level.fans)
    chat, direct = alone.phases["chat"], alone.phases["direct"]
    added, base = ttft_p50(chat) - ttft_p50(direct), ttft_p50(direct)
    errors = sum(busiest.phases["chat"].errors.values())
    print(
        f"\nGoal, {busiest.fans:,} concurrent sockets with zero errors: {errors:,} chat errors "
        f"({'met' if errors == 0 else 'NOT met'} on this machine)"
    )
    print(
        f"Goal, chat-layer overhead ≤ 10 % of TTFT below capacity: one fan alone, {added * 1000:+,.1f} ms on a "
        f"direct TTFT p50 of {base * 1000:,.1f} ms ({100 * ratio(added, base):+.0f} %). The offline model sends its "
        "first token at once, so the direct TTFT is the node's own work; the same overhead is ≤ 10 % for a model "
        f"whose own TTFT is ≥ {max(0.0, 10 * added - base) * 1000:,.0f} ms"
    )


# ---------------------------------------------------------------- main


def raise_open_files(needed: int) -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return f"open-file limit {soft:,} (enough)"
    target = hard if hard == resource.RLIM_INFINITY else max(min(hard, needed * 2), soft)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        return f"open-file limit raised from {soft:,} to {target:,}, its hard limit: fewer than the {needed:,} needed"
    return f"open-file limit raised from {soft:,} to {target:,} (this process and the server)"


async def run(args: argparse.Namespace, workdir: Path, limits_note: str) -> bool:
    """Start the server on a scratch database, measure, stop it (and drop the database)."""
    postgres = os.environ.get("TWIN_BENCH_DATABASE_URL")
    ports = {"backend": free_port(), "node": free_port()}
    async with contextlib.AsyncExitStack() as stack:
        if postgres:
            from market import scratch_postgres  # bench/market.py

            server_url = Settings(database_url=postgres).database_url  # gives postgresql:// its async driver
            database_url = await stack.enter_async_context(scratch_postgres(server_url))
        else:
            database_url = f"sqlite+aiosqlite:///{workdir / 'server.db'}"
        process = start_server(
            ports["backend"], ports["node"], workdir, args, max(args.fans) + args.capacity, database_url
        )
        stack.callback(stop_server, process, chain_dir(workdir))  # before the database is dropped
        database = "PostgreSQL (a scratch database)" if postgres else "SQLite (the embedded default)"
        try:
            return await measure(args, process, ports, workdir, f"{database}; {limits_note}")
        finally:
            problems = log_problems(workdir / "server.log")
            if problems:
                print("\nserver log, warnings and errors:\n" + "\n".join(f"  {line}" for line in problems[:20]))


async def measure(
    args: argparse.Namespace, process: subprocess.Popen[bytes], ports: dict[str, int], workdir: Path, notes: str
) -> bool:
    backend, node = f"http://127.0.0.1:{ports['backend']}", f"http://127.0.0.1:{ports['node']}"
    print(
        f"Chat load: levels {', '.join(f'{n:,}' for n in args.fans)} fans, {args.avatars} avatar(s); offline "
        f"model at {args.tokens_per_second:g} tokens/s; chat capacity {args.capacity} streams per node (one "
        f"node); {os.cpu_count()} CPUs, Python {platform.python_version()}; {notes}",
        flush=True,
    )
    async with httpx.AsyncClient(base_url=backend, timeout=60) as client:
        await wait_ready(client, f"{backend}/readyz", process, workdir / "server.log")
        await wait_ready(client, f"{node}/healthz", process, workdir / "server.log")
        busiest = max(args.fans)
        world = await set_up(client, busiest + args.capacity + 1, args.avatars)
    watch = ProcessWatch(process.pid)
    print(
        "  setup (not measured): "
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in world.setup_s.items())
        + f"; server RSS after setup {watch.rss() / 2**20:,.0f} MiB",
        flush=True,
    )
    if world.sign_ins_refused:
        refusals = {status: world.sign_ins_refused.count(status) for status in set(world.sign_ins_refused)}
        print(
            "  sign-in answers retried: " + ", ".join(f"{status} ×{count}" for status, count in refusals.items()),
            flush=True,
        )

    # Below capacity: one fan alone, then as many fans as there are streams (nobody waits), each sending
    # --rounds messages in turn; then each level's fans all at once, one message each. Pools do not overlap
    # between the below-capacity levels and the rest.
    indexed = list(enumerate(world.fans))
    plan = [Level("1 (alone)", 1, args.rounds), Level(f"{args.capacity} (= capacity)", args.capacity, args.rounds)]
    plan += [Level(f"{n:,}", n, 1) for n in args.fans]
    pools = [indexed[-1:], indexed[busiest : busiest + args.capacity]] + [indexed[:n] for n in args.fans]
    exchanges: Exchanges = {}
    payer = NodePayer()
    budget = Settings.model_construct().chat_history_token_budget
    ws_base = backend.replace("http://", "ws://", 1)
    # A warm-up round on each path (the capacity level's fans, step 0), not counted; it times one reply.
    warm_up = await chat_phase(ws_base, pools[1], 1, 0, exchanges, watch)
    await direct_phase(node, pools[1], 1, 0, exchanges, args.capacity, payer, budget, watch)
    # At capacity the fans start one reply's time apart in all, so that they do not move in lockstep.
    plan[1].spread_s = percentile([sample.total for sample in warm_up.ok if sample.total is not None], 50)
    for index, (level, pool) in enumerate(zip(plan, pools, strict=True)):
        step0 = 1 + 1000 * index
        print(f"  {level.name}: chat…", file=sys.stderr, flush=True)
        before = load()
        level.phases["chat"] = await chat_phase(ws_base, pool, level.rounds, step0, exchanges, watch, level.spread_s)
        chat = level.phases["chat"]
        print(
            f"  {level.name}: sockets opened in {chat.open_s:.1f} s (not measured), chat done in {chat.seconds:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        level.phases["direct"] = await direct_phase(
            node, pool, level.rounds, step0, exchanges, args.capacity, payer, budget, watch, level.spread_s
        )
        print(f"  {level.name}: direct done in {level.phases['direct'].seconds:.1f} s", file=sys.stderr, flush=True)
        level.machine_load = f"{before} before, {load()} after"
    print_results(plan, args.capacity)
    errors = sum(sum(phase.errors.values()) for level in plan for phase in level.phases.values())
    return errors == 0


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fans", type=int, nargs="+", default=[100, 500, 1000], help="fans per level")
    parser.add_argument(
        "--capacity",
        type=int,
        default=16,
        help="concurrent streams the chat layer runs on its node (TWIN_CHAT_STREAMS_PER_NODE)",
    )
    parser.add_argument("--tokens-per-second", type=float, default=50.0, help="pace of the offline model")
    parser.add_argument("--rounds", type=int, default=5, help="messages each fan sends below capacity, in turn")
    parser.add_argument("--avatars", type=int, default=1, help="avatars the fans hold keys of (round robin)")
    parsed = parser.parse_args()
    if min(parsed.fans) < 1 or parsed.capacity < 1 or parsed.rounds < 1 or parsed.avatars < 1:
        parser.error("--fans, --capacity, --rounds and --avatars must be at least 1")
    return parsed


def main() -> None:
    from app.serving import quiet_framework_warnings

    quiet_framework_warnings()  # the SIWE grammar's warnings, here as in the server
    args = arguments()
    started = time.perf_counter()
    # Each fan holds a socket here and one in the server (plus the direct clients' connections).
    limits_note = raise_open_files(2 * (max(args.fans) + args.capacity) + 512)
    with tempfile.TemporaryDirectory(prefix="twin-chat-bench-") as directory:
        ok = asyncio.run(run(args, Path(directory), limits_note))
    print(f"\nwall time {time.perf_counter() - started:.1f} s")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), int(sys.argv[3]))
        sys.exit(0)
    main()
