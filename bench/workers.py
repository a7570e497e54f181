"""Several backend workers: 1, 2 and 4 ``twin serve`` processes behind a round-robin proxy, then the
largest set with its leader killed mid-load, in one run.

    ./dev.sh bench workers [--workers 1 2 4] [--fans 24] [--rounds 3] [--capacity 32] [--tokens-per-second 200]
    ./dev.sh bench workers --fans 1000 --rounds 1     # the issue's figure: a thousand fans at once

Everything is real and shared as in production: one anvil chain (started here, in a temp directory),
one proxy node (``twin proxy serve`` on that chain, the offline model, admitted by its code measurement),
one PostgreSQL database (a scratch one on the server of TWIN_BENCH_DATABASE_URL, default the local
``postgres``; dropped afterwards) and one Redis (TWIN_BENCH_REDIS_URL, a namespace of the run's own,
its keys deleted afterwards). The most workers any phase needs start on them; one is elected leader
(indexer, autoscaler).

A small asyncio TCP proxy in this process hands each new connection to the next live worker in turn
(a worker that refuses the connection is skipped), as a load balancer would. Setup (outside every
figure, as in ``chat_load.py``): an avatar, ``--fans`` fresh wallets funded and each holding one key,
signed in with SIWE. Then three phases, each: every fan opens a websocket through the proxy (not
timed) and sends ``--rounds`` messages in turn, all fans at once:

* **N workers**, for each N of ``--workers``: the proxy routes to the first N workers;
* **N workers, leader killed**, for the largest N: the leader is killed with SIGKILL once half the fans
  have their first token; its fans' sockets break (counted as errors, by kind), the proxy routes new
  connections to the survivors, and the line after the table says how long a follower took to
  report itself leader.

Per phase: replies/s (verified and paid), TTFT p50/p99 from send to first token, errors, and the
figures as a ratio of the first phase's (one worker, by default).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from chat_load import (  # bench/chat_load.py (this file's folder is first on sys.path)
    SETUP_CONCURRENCY,
    Fan,
    Sample,
    chat_once,
    concurrently,
    free_port,
    log_tail,
    message_for,
    ms,
    percentile,
    ratio,
    set_up,
)
from market import print_table, scratch_postgres
from redis.asyncio import Redis

from app.chain.embedded import EmbeddedChain
from app.config import Settings
from app.db import migrate
from app.proxy.node.attestation import code_measurement

TWIN = Path(sys.executable).with_name("twin")
START_LIMIT_S = 120
LEASE_S = 3.0  # the leader's lease: the follower takes over within it


# ---------------------------------------------------------------- processes


@dataclass
class Process:
    name: str
    port: int
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, args: Sequence[str], env: dict[str, str], cwd: Path) -> None:
        with self.log.open("wb") as log:  # the child keeps its own descriptor
            self.popen = subprocess.Popen(
                [str(TWIN), *args, "--port", str(self.port)], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    async def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + START_LIMIT_S
        async with httpx.AsyncClient(timeout=3) as client:
            while time.monotonic() < deadline:
                if not self.alive:
                    raise RuntimeError(f"{self.name} exited:\n{log_tail(self.log)}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.base + path)).status_code == 200:
                        return
                await asyncio.sleep(0.3)
        raise RuntimeError(f"{self.name} not ready within {START_LIMIT_S} s:\n{log_tail(self.log)}")

    async def leadership(self) -> str:
        async with httpx.AsyncClient(timeout=3) as client:
            ready = (await client.get(self.base + "/readyz")).json()
        return str(ready["dependencies"].get("leadership", ""))

    def kill(self) -> None:
        if self.alive:
            assert self.popen is not None
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait()

    def stop(self) -> None:
        if self.alive:
            assert self.popen is not None
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def chain_env(chain: EmbeddedChain) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TWIN_")}
    return env | {
        "TWIN_CHAIN_RPC_URL": chain.url,
        "TWIN_TWIN_KEYS_ADDRESS": chain.addresses.twin_keys,
        "TWIN_OPG_ADDRESS": chain.addresses.opg,
        "TWIN_NODE_REGISTRY_ADDRESS": chain.addresses.node_registry,
        "TWIN_CHAIN_DEPLOYMENT_BLOCK": str(chain.deployment.block),
        "TWIN_LOG_LEVEL": "warning",
    }


# ---------------------------------------------------------------- the round-robin proxy


@dataclass
class RoundRobin:
    """Each new TCP connection goes to the next backend that accepts it."""

    ports: list[int]
    turn: int = 0
    connections: dict[int, int] = field(default_factory=dict)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = None
        for _ in range(len(self.ports)):
            port = self.ports[self.turn % len(self.ports)]
            self.turn += 1
            with contextlib.suppress(OSError):
                upstream = await asyncio.open_connection("127.0.0.1", port)
                self.connections[port] = self.connections.get(port, 0) + 1
                break
        if upstream is None:
            writer.close()
            return
        up_reader, up_writer = upstream
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[int]:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0, backlog=1024)
        async with server:
            yield server.sockets[0].getsockname()[1]


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


# ---------------------------------------------------------------- a phase


@dataclass
class Phase:
    name: str
    seconds: float
    samples: list[Sample]
    ended: float  # time.perf_counter() at its end
    note: str = ""

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

    def ttft(self, q: int) -> float:
        return percentile([sample.ttft for sample in self.ok if sample.ttft is not None], q)

    @property
    def replies_per_s(self) -> float:
        return len(self.ok) / self.seconds


async def chat_phase(
    name: str, ws_base: str, fans: Sequence[Fan], rounds: int, started_replies: asyncio.Event | None = None
) -> Phase:
    from websockets.asyncio.client import connect

    async def open_socket(index: int) -> Any:
        fan = fans[index]
        return await connect(
            f"{ws_base}/ws/avatars/{fan.avatar_id}/chat",
            additional_headers={"Cookie": fan.cookie},
            open_timeout=60,
            close_timeout=5,
            max_queue=None,
        )

    sockets = await concurrently(len(fans), SETUP_CONCURRENCY, open_socket)
    first_tokens = 0

    async def converse(index: int) -> list[Sample]:
        nonlocal first_tokens
        samples = []
        for step in range(rounds):
            sample = await chat_once(sockets[index], f"{name}-{step}-{index}", message_for(index, step))
            samples.append(sample)
            if sample.ttft is not None:
                first_tokens += 1
                if started_replies is not None and first_tokens >= len(fans) // 2:  # most of the load still ahead
                    started_replies.set()
            if sample.error is not None and sample.error.startswith("socket closed"):
                break  # its worker is gone: the rest of its messages are counted as lost below
        return samples + [Sample(error="socket closed (not sent)")] * (rounds - len(samples))

    started = time.perf_counter()
    results = await asyncio.gather(*(converse(index) for index in range(len(fans))))
    seconds = time.perf_counter() - started
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return Phase(name, seconds, [sample for samples in results for sample in samples], started + seconds)


async def killing_the_leader(workers: Sequence[Process], started_replies: asyncio.Event) -> tuple[float, str]:
    """Kill the leader once replies are flowing: when, and how long until a survivor said it leads."""
    await started_replies.wait()
    leaderships = [await worker.leadership() for worker in workers]
    leader = next(worker for worker, said in zip(workers, leaderships, strict=True) if said.startswith("ok: leads"))
    survivors = [worker for worker in workers if worker is not leader]
    leader.kill()
    killed = time.perf_counter()
    while True:
        said = {survivor.name: await survivor.leadership() for survivor in survivors}
        new_leader = next((name for name, leadership in said.items() if leadership.startswith("ok: leads")), None)
        if new_leader is not None:
            break
        if time.perf_counter() - killed > 10 * LEASE_S:
            return killed, f"{leader.name} (leader) killed; no survivor leader after {10 * LEASE_S:.0f} s"
        await asyncio.sleep(0.05)
    return killed, (
        f"{leader.name} (leader) killed with SIGKILL; {new_leader} led "
        f"{time.perf_counter() - killed:.2f} s later (lease {LEASE_S:.0f} s)"
    )


# ---------------------------------------------------------------- the run


async def run(args: argparse.Namespace, workdir: Path) -> None:
    chain = await asyncio.to_thread(EmbeddedChain.start, Settings(chain_state_dir=workdir / "chain"))
    node = Process("node", free_port(), workdir / "node.log")
    workers = [
        Process(f"worker {index + 1}", free_port(), workdir / f"worker{index + 1}.log")
        for index in range(max(args.workers))
    ]
    namespace = f"bench-workers-{uuid.uuid4().hex[:8]}"
    try:
        async with scratch_postgres(args.database_url) as database_url:
            await asyncio.to_thread(migrate.upgrade, database_url)
            base_env = chain_env(chain)
            node.start(
                ["proxy", "serve"],
                base_env
                | {
                    "TWIN_PROXY_PAYMENT_PRIVATE_KEY": "0x" + chain.accounts[-1].key.hex(),
                    "TWIN_PROXY_OFFLINE_TOKENS_PER_SECOND": str(args.tokens_per_second),
                    "TWIN_PROXY_CAPACITY": str(args.fans * 2 + 64),
                    "TWIN_PROXY_HEARTBEAT_SECONDS": "5",
                },
                workdir,
            )
            await node.wait_ready("/healthz")
            worker_env = base_env | {
                "TWIN_DATABASE_URL": database_url,
                "TWIN_AUTO_MIGRATE": "false",
                "TWIN_REDIS_URL": args.redis_url,
                "TWIN_REDIS_NAMESPACE": namespace,
                "TWIN_LEADER_LEASE_S": str(LEASE_S),
                "TWIN_INDEXER_POLL_S": "0.2",
                "TWIN_CHAT_JOURNAL_DIR": str(workdir / "journal"),
                "TWIN_PUBLIC_DOMAIN": "bench.local",  # the SIWE domain (required off the embedded chain)
                "TWIN_PROXY_PLATFORM_WALLET_KEY": "0x" + chain.accounts[-2].key.hex(),
                "TWIN_PROXY_TRUSTED_MEASUREMENTS": json.dumps([code_measurement()]),
                "TWIN_PROXY_ALLOW_PRIVATE_ENDPOINTS": "true",
                "TWIN_CHAT_STREAMS_PER_NODE": str(args.capacity),
                "TWIN_CHAT_MAX_WAITING": str(args.fans * 2 + 64),
                "TWIN_CHAT_MESSAGES_PER_MINUTE": "60000",
                "TWIN_CHAT_MAX_SOCKETS_PER_ADDRESS": str(args.fans * 2 + 64),
            }
            for worker in workers:
                worker.start(["serve"], worker_env, workdir)
            for worker in workers:
                await worker.wait_ready("/readyz")
            await measure(args, workers)
    finally:
        for process in (*workers, node):
            process.stop()
        await asyncio.to_thread(chain.close)
        redis = Redis.from_url(args.redis_url)
        keys = [key async for key in redis.scan_iter(match=f"*{namespace}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def measure(args: argparse.Namespace, workers: Sequence[Process]) -> None:
    balancer = RoundRobin([workers[0].port])
    async with balancer.serving() as port:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            world = await set_up(client, args.fans, 1)
        ws_base = f"ws://127.0.0.1:{port}"
        phases = []
        for count in args.workers:
            balancer.ports = [worker.port for worker in workers[:count]]
            phases.append(await chat_phase(workers_named(count), ws_base, world.fans, args.rounds))
        balancer.ports = [worker.port for worker in workers]
        started_replies = asyncio.Event()
        killer = asyncio.create_task(killing_the_leader(workers, started_replies))
        killed = await chat_phase(
            f"{workers_named(len(workers))}, leader killed", ws_base, world.fans, args.rounds, started_replies
        )
        started_replies.set()  # (too few replies to kill mid-phase: killed after it)
        killed_at, note = await killer
        when = (
            f"{killed.ended - killed_at:.1f} s before the phase ended"
            if killed_at < killed.ended
            else "after the phase ended"
        )
        killed.note = f"{note}; killed {when}"
        phases.append(killed)
    print_results(args, phases)


def workers_named(count: int) -> str:
    return f"{count} worker{'s' if count > 1 else ''}"


def print_results(args: argparse.Namespace, phases: Sequence[Phase]) -> None:
    baseline = phases[0]
    rows = [
        [
            phase.name,
            f"{len(phase.ok):,}",
            f"{phase.replies_per_s:,.1f}",
            ms(phase.ttft(50)),
            ms(phase.ttft(99)),
            f"{sum(phase.errors.values()):,}",
            f"{ratio(phase.replies_per_s, baseline.replies_per_s):.2f}",
            f"{ratio(phase.ttft(50), baseline.ttft(50)):.2f}",
        ]
        for phase in phases
    ]
    print_table(
        f"{args.fans} fans x {args.rounds} messages, one offline node at {args.tokens_per_second} tokens/s, "
        f"{args.capacity} streams (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)",
        [
            "phase",
            "replies",
            "replies/s",
            "TTFT p50 ms",
            "TTFT p99 ms",
            "errors",
            f"replies/s vs {baseline.name}",
            f"TTFT p50 vs {baseline.name}",
        ],
        rows,
        {0},
    )
    for phase in phases:
        if phase.errors:
            print(f"  {phase.name} errors: {phase.errors}")
        if phase.note:
            print(f"  {phase.note}")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="workers per phase, in order")
    parser.add_argument("--fans", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--capacity", type=int, default=32, help="TWIN_CHAT_STREAMS_PER_NODE")
    parser.add_argument("--tokens-per-second", type=float, default=200)
    args = parser.parse_args()
    if min(args.workers) < 1 or max(args.workers) < 2:
        parser.error(
            "--workers counts must be at least 1, and one of them at least 2 (the leader kill needs a survivor)"
        )
    args.database_url = os.environ.get(
        "TWIN_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    )
    args.redis_url = os.environ.get("TWIN_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    return args


def main() -> None:
    args = arguments()
    with tempfile.TemporaryDirectory(prefix="twin-bench-workers-") as workdir:
        asyncio.run(run(args, Path(workdir)))


if __name__ == "__main__":
    main()
