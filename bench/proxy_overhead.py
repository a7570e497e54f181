"""What a proxy adds to a streamed reply: time to first token (TTFT) and total time, at 1, 50
and 200 concurrent streams, going straight to the upstream, through our node (x402 payment and
attestation on, settling on the embedded chain: an anvil node of its own in a temp
TWIN_CHAIN_STATE_DIR), and through LiteLLM's proxy — all in one run, against one local fake
upstream that streams a fixed reply at a fixed pace.

    ./dev.sh bench proxy_overhead [--tokens 20] [--interval-ms 20] [--rounds 3]

Every server runs in a process of its own on 127.0.0.1; the anvil node stops with ours (and is
stopped here if it outlived it). LiteLLM runs from a virtualenv of its own (``var/litellm-venv``,
made on first use from the ``bench`` extra in pyproject.toml) because its pins would change
packages the project depends on. The streams come from aiohttp clients in this process (httpx's pool
added up to seconds of its own at 50 and 200 streams). Each level says the machine's load average.

"Added" is a proxy's p50 minus the direct p50 at the same level. Where LiteLLM's added TTFT is not
above zero (the direct figure's noise exceeds what it adds), a ratio of added times means nothing:
the comparison falls back to the absolute total-time p50s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parent.parent
LITELLM_VENV = ROOT / "var" / "litellm-venv"
MODEL = "bench-model"
CONCURRENCY_LEVELS = (1, 50, 200)
MESSAGES = [{"role": "user", "content": "Tell me something."}]
LITELLM_MASTER_KEY = "sk-bench-" + os.urandom(16).hex()  # LiteLLM refuses to start without one


# -- the fake upstream (runs in its own process: `proxy_overhead.py --fake-upstream PORT ...`) ----------


def fake_upstream_app(tokens: int, interval: float) -> Callable[..., Awaitable[None]]:
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": MODEL}

    def frame(payload: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = json.loads(body or b"{}")
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for index in range(tokens):
            if index:
                await asyncio.sleep(interval)
            delta = {"index": 0, "delta": {"content": f"word{index} "}, "finish_reason": None}
            await send({"type": "http.response.body", "body": frame(head | {"choices": [delta]}), "more_body": True})
        tail = frame(head | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (request.get("stream_options") or {}).get("include_usage"):
            tail += frame(
                head
                | {
                    "choices": [],
                    "usage": {"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": 5 + tokens},
                }
            )
        await send({"type": "http.response.body", "body": tail + b"data: [DONE]\n\n", "more_body": False})

    return app


def serve_fake_upstream(port: int, tokens: int, interval: float) -> None:
    import uvicorn

    uvicorn.run(fake_upstream_app(tokens, interval), host="127.0.0.1", port=port, log_level="warning", backlog=4096)


# -- processes ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_until_up(url: str, process: subprocess.Popen[bytes], what: str, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited with status {process.returncode} before answering")
            try:
                if (await client.get(url)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {url} within {limit:g}s")


def litellm_binary() -> Path:
    """LiteLLM's CLI from its own virtualenv, installed from the `bench` extra on first use."""
    binary = LITELLM_VENV / "bin" / "litellm"
    if binary.exists():
        return binary
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["bench"]
    print(f"installing {', '.join(extra)} into {LITELLM_VENV} (first run only)...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    subprocess.run([str(LITELLM_VENV / "bin" / "pip"), "install", "--quiet", *extra], check=True)
    return binary


def start_litellm(port: int, upstream: str, workdir: Path) -> subprocess.Popen[bytes]:
    config = workdir / "litellm.yaml"
    config.write_text(
        json.dumps(
            {  # JSON is YAML
                "model_list": [
                    {
                        "model_name": MODEL,
                        "litellm_params": {
                            "model": f"openai/{MODEL}",
                            "api_base": f"{upstream}/v1",
                            "api_key": "bench-key",
                        },
                    }
                ],
                "litellm_settings": {"telemetry": False, "drop_params": True},
                "general_settings": {"master_key": LITELLM_MASTER_KEY},
            }
        )
    )
    env = os.environ | {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "NO_DOCS": "True"}
    return subprocess.Popen(
        [
            str(litellm_binary()),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "litellm.log").open("wb"),
    )


def chain_dir(workdir: Path) -> Path:
    """Our node's embedded chain: an anvil node of its own, never the checkout's var/chain."""
    return workdir / "chain"


def start_node(port: int, upstream: str, workdir: Path) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TWIN_")} | {
        "TWIN_CHAIN_STATE_DIR": str(chain_dir(workdir)),
        "TWIN_PROXY_UPSTREAMS": json.dumps({"fake": {"kind": "openai", "base_url": f"{upstream}/v1"}}),
        "TWIN_PROXY_MODELS": json.dumps({MODEL: {"upstreams": ["fake"], "price_wei": str(10**15)}}),
        "TWIN_PROXY_CAPACITY": "1000",
        "TWIN_LOG_LEVEL": "warning",
        # Everything shares two cores here; at 200 streams a connect can queue for seconds (LiteLLM waits 600 s).
        "TWIN_PROXY_CONNECT_TIMEOUT_SECONDS": "60",
        "TWIN_PROXY_FIRST_TOKEN_TIMEOUT_SECONDS": "120",
    }
    twin = Path(sys.executable).with_name("twin")
    return subprocess.Popen(
        [str(twin), "proxy", "serve", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "node.log").open("wb"),
    )


# -- load --------------------------------------------------------------------------------------------


class NodePayer:
    """Pays our node with the x402 package's client from a funded dev account of its embedded chain."""

    def __init__(self) -> None:
        from x402 import x402Client
        from x402.mechanisms.evm.exact import ExactEvmScheme

        from app.chain.embedded import dev_accounts
        from app.config import Settings

        account = dev_accounts(Settings().chain_dev_mnemonic, 2)[1]
        self._client = x402Client()
        self._client.register("eip155:*", ExactEvmScheme(signer=account))
        self._client.set_spend_controls({"allowed_assets": True, "max_amount_per_payment": False})
        self._terms: Any = None

    async def headers(self, http: aiohttp.ClientSession) -> dict[str, str]:
        from x402.http.utils import decode_payment_required_header, encode_payment_signature_header

        if self._terms is None:
            async with http.post("/v1/chat/completions", json=request_body()) as response:
                self._terms = decode_payment_required_header(response.headers["PAYMENT-REQUIRED"])
        payload = await self._client.create_payment_payload(self._terms)
        return {"PAYMENT-SIGNATURE": encode_payment_signature_header(payload)}


def request_body() -> dict[str, Any]:
    return {"model": MODEL, "messages": MESSAGES, "stream": True}


@dataclass
class Sample:
    ttft: float
    total: float


@dataclass
class Failure:
    reason: str


async def one_stream(http: aiohttp.ClientSession, headers: dict[str, str]) -> Sample:
    started = time.perf_counter()
    first = None
    async with http.post("/v1/chat/completions", json=request_body(), headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {(await response.read())[:300]!r}")
        async for line in response.content:
            if first is None and b'"content"' in line:
                first = time.perf_counter()
    if first is None:
        raise RuntimeError("the stream carried no content")
    return Sample(first - started, time.perf_counter() - started)


async def run_level(
    base_url: str, concurrency: int, rounds: int, payer: NodePayer | None, auth: dict[str, str]
) -> list[Sample | Failure]:
    # aiohttp, not httpx: at 50 streams httpx's own pool put ~600 ms on every TTFT here, the direct one too.
    connector = aiohttp.TCPConnector(limit=concurrency + 10)
    async with aiohttp.ClientSession(
        base_url, connector=connector, headers=auth, timeout=aiohttp.ClientTimeout(total=120)
    ) as http:

        async def worker() -> list[Sample | Failure]:
            samples: list[Sample | Failure] = []
            for _ in range(rounds):
                headers = await payer.headers(http) if payer else {}  # signed before the clock starts
                try:
                    samples.append(await one_stream(http, headers))
                except (aiohttp.ClientError, TimeoutError, RuntimeError) as error:  # counted and shown, not fatal
                    samples.append(Failure(f"{type(error).__name__}: {error}"[:200]))
            return samples

        await worker()  # warm the connection pool and caches
        results = await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [sample for samples in results for sample in samples]


def p(values: list[float], quantile: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(quantile * 100) - 1]
        if len(values) > 1
        else values[0]
    )


def main(arguments: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="proxy-bench-"))
    ports = {name: free_port() for name in ("upstream", "node", "litellm")}
    upstream = f"http://127.0.0.1:{ports['upstream']}"
    processes = {
        "the fake upstream": subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--fake-upstream",
                str(ports["upstream"]),
                str(arguments.tokens),
                str(arguments.interval_ms / 1000),
            ]
        )
    }
    processes["our node"] = start_node(ports["node"], upstream, workdir)
    litellm_error = None
    try:
        processes["LiteLLM"] = start_litellm(ports["litellm"], upstream, workdir)
    except (OSError, subprocess.CalledProcessError) as error:
        litellm_error = f"LiteLLM could not be installed or started: {error}"
    try:
        urls = {
            "direct": upstream,
            "ours": f"http://127.0.0.1:{ports['node']}",
            "litellm": f"http://127.0.0.1:{ports['litellm']}",
        }
        asyncio.run(measure(arguments, urls, processes, litellm_error, workdir))
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        stop_chain(chain_dir(workdir))


def stop_chain(state_dir: Path) -> None:
    """Stop the anvil node of ``state_dir`` if our node left it running (it stops it itself on SIGTERM),
    then delete its state."""
    from app.chain.anvil import AnvilNode, NodeError

    with contextlib.suppress(NodeError):
        AnvilNode.stop_unused(state_dir)
    shutil.rmtree(state_dir, ignore_errors=True)


async def measure(
    arguments: argparse.Namespace,
    urls: dict[str, str],
    processes: dict[str, subprocess.Popen[bytes]],
    litellm_error: str | None,
    workdir: Path,
) -> None:
    await wait_until_up(f"{urls['direct']}/", processes["the fake upstream"], "the fake upstream")
    await wait_until_up(f"{urls['ours']}/healthz", processes["our node"], "our node")
    targets = {"direct": urls["direct"], "ours": urls["ours"]}
    if litellm_error is None:
        try:
            await wait_until_up(f"{urls['litellm']}/health/liveliness", processes["LiteLLM"], "LiteLLM")
            targets["litellm"] = urls["litellm"]
        except RuntimeError as error:
            litellm_error = f"{error}; see {workdir / 'litellm.log'}"
    payer = NodePayer()
    print(
        f"fake upstream: {arguments.tokens} tokens, one every {arguments.interval_ms:g} ms; "
        f"{arguments.rounds} streams per client per level; {os.cpu_count()} cores\n"
    )
    rows = []
    for concurrency in CONCURRENCY_LEVELS:
        stats = {}
        before = load()
        for name, url in targets.items():
            auth = {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"} if name == "litellm" else {}
            results = await run_level(url, concurrency, arguments.rounds, payer if name == "ours" else None, auth)
            samples = [result for result in results if isinstance(result, Sample)]
            failures = [result.reason for result in results if isinstance(result, Failure)]
            if failures:
                print(f"  {name} at {concurrency}: {len(failures)} failed, e.g. {failures[0]}", file=sys.stderr)
            ttfts, totals = [s.ttft for s in samples], [s.total for s in samples]
            print(f"  {concurrency:>3} streams via {name}: done", file=sys.stderr)
            stats[name] = {
                "ttft50": p(ttfts, 0.5) * 1000,
                "ttft95": p(ttfts, 0.95) * 1000,
                "total50": p(totals, 0.5) * 1000,
                "n": len(samples),
                "failed": len(failures),
            }
        rows.append((concurrency, stats, f"{before} before, {load()} after"))
    print_table(rows, litellm_error)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


Stats = dict[str, dict[str, float]]


def versus_litellm(stats: Stats) -> tuple[str, bool]:
    """How our node compares with LiteLLM at one level, and whether ours is below: by added TTFT p50 when
    LiteLLM adds some, else (its added TTFT is within the direct figure's noise) by absolute total p50."""
    direct, ours, theirs = stats["direct"], stats["ours"], stats["litellm"]
    ours_added, theirs_added = ours["ttft50"] - direct["ttft50"], theirs["ttft50"] - direct["ttft50"]
    if theirs_added > 0:
        return (
            f"added TTFT p50: ours {ours_added:+.1f} ms, LiteLLM {theirs_added:+.1f} ms, ours/LiteLLM "
            f"{ours_added / theirs_added:.2f}",
            ours_added < theirs_added,
        )
    return (
        f"LiteLLM's added TTFT p50 is {theirs_added:+.1f} ms (not above 0: no ratio); TTFT p50 ours "
        f"{ours['ttft50']:.1f} ms vs LiteLLM {theirs['ttft50']:.1f} ms; compared on total p50: ours "
        f"{ours['total50']:.1f} ms vs LiteLLM {theirs['total50']:.1f} ms, ours/LiteLLM "
        f"{ours['total50'] / theirs['total50']:.2f}",
        ours["total50"] < theirs["total50"],
    )


def print_table(rows: list[tuple[int, Stats, str]], litellm_error: str | None) -> None:
    header = (
        f"{'streams':>7} {'target':<8} {'ok':>5} {'failed':>6} {'TTFT p50':>9} {'TTFT p95':>9} "
        f"{'total p50':>10} {'added TTFT p50':>15} {'added total p50':>16}"
    )
    print(header)
    print("-" * len(header))
    below: dict[int, bool] = {}
    for concurrency, stats, measured_at in rows:
        direct = stats["direct"]
        for name, row in stats.items():
            added = "" if name == "direct" else f"{row['ttft50'] - direct['ttft50']:+.1f} ms"
            added_total = "" if name == "direct" else f"{row['total50'] - direct['total50']:+.1f} ms"
            print(
                f"{concurrency:>7} {name:<8} {row['n']:>5} {row['failed']:>6} {row['ttft50']:>7.1f}ms "
                f"{row['ttft95']:>7.1f}ms "
                f"{row['total50']:>8.1f}ms {added:>15} {added_total:>16}"
            )
        if "litellm" in stats:
            comparison, below[concurrency] = versus_litellm(stats)
            print(f"{'':>7} {comparison}")
        print(f"{'':>7} {measured_at}\n")
    ours_added = rows[0][1]["ours"]["ttft50"] - rows[0][1]["direct"]["ttft50"]
    print(
        f"goal, ≤ 5 ms added TTFT p50 at {rows[0][0]} stream: {ours_added:+.1f} ms "
        f"({'met' if ours_added <= 5 else 'NOT met'})"
    )
    if below:
        print(
            "goal, below LiteLLM at every level: "
            + ", ".join(f"{concurrency} streams {'met' if ok else 'NOT met'}" for concurrency, ok in below.items())
        )
    if litellm_error:
        print(f"LiteLLM not measured: {litellm_error}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--fake-upstream":
        serve_fake_upstream(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=20, help="tokens in the fake reply")
    parser.add_argument("--interval-ms", type=float, default=20.0, help="pause between tokens (20 ms: 50 tokens/s)")
    parser.add_argument("--rounds", type=int, default=3, help="streams each concurrent client sends, one after another")
    main(parser.parse_args())
