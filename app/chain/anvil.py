"""The embedded chain's node: anvil (Foundry), from the npm package, as a child process.

Its state lives in a directory (``var/chain/`` by default): anvil loads ``state.json`` at start,
dumps it every few seconds and again when it stops, so a crash loses at most the last interval.
Every ``twin`` process of one checkout shares one node::

    node = AnvilNode.acquire(options)   # start it, or join the one already running
    ...                                 # JSON-RPC at node.url
    node.release()                      # the last user to leave stops it

Sharing works through two lock files: ``node.lock`` serialises starting and stopping, and
every user holds a shared lock on ``users.lock`` while it uses the node; a user that leaves
and can then take that lock exclusively was the last one. The kernel drops a dead process's
locks, so a ``kill -9`` leaves no stale user behind, and the node itself (in a session of its
own) outlives a killed server: the next start joins it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import structlog

from app.resources import DEFAULT_NODE_MODULES_DIR

log = structlog.get_logger()

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
PROBE_TIMEOUT_S = 2.0
_ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


class NodeError(Exception):
    """The node cannot be started or reached; the message is one line saying why."""


@dataclass(frozen=True)
class NodeOptions:
    """How to run the node. ``port`` 0 picks a free loopback port at start."""

    state_dir: Path
    chain_id: int
    base_fee_wei: int
    mnemonic: str
    accounts: int
    balance_eth: int
    port: int = 0
    state_interval_s: int = 2
    node_modules_dir: Path = DEFAULT_NODE_MODULES_DIR  # where npm installed @foundry-rs/anvil
    # The genesis block's timestamp on a node started without saved state (anvil's clock then runs
    # from there): the demo world backdates a fresh chain so that its history spans past days.
    genesis_timestamp: int | None = None


def anvil_binary(node_modules_dir: Path) -> Path:
    """The anvil executable inside the platform package that npm installed beside @foundry-rs/anvil."""
    system = platform.system().lower()
    arch = _ARCHITECTURES.get(platform.machine().lower(), platform.machine().lower())
    binary = node_modules_dir / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / "anvil"
    if not binary.is_file():
        raise NodeError(
            f"anvil is not installed ({binary} is missing): run `npm ci` (./dev.sh does) or set TWIN_NODE_MODULES_DIR"
        )
    return binary


_http = httpx.Client()  # one connection pool for every call: a client per call costs ~50 ms


def rpc(url: str, method: str, params: list[object] | None = None, *, timeout_s: float = PROBE_TIMEOUT_S) -> object:
    """One JSON-RPC call; raise NodeError on a transport failure or an error answer."""
    try:
        answer = _http.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}, timeout=timeout_s
        ).json()
    except (httpx.HTTPError, ValueError) as error:
        raise NodeError(f"{url} did not answer {method}: {type(error).__name__}") from None
    if "error" in answer:
        raise NodeError(f"{method}: {answer['error'].get('message')}")
    return answer.get("result")


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a stopped process counts; a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


def _free_port(port: int = 0, wait_s: float = 0.0) -> int:
    """``port`` once it is free on loopback (any free one for 0), waiting up to ``wait_s``; else NodeError."""
    deadline = time.monotonic() + wait_s
    while True:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as anvil binds: old connections don't count
            try:
                probe.bind(("127.0.0.1", port))
                return int(probe.getsockname()[1])
            except OSError:
                if time.monotonic() >= deadline:
                    raise NodeError(f"port {port} on 127.0.0.1 is taken (TWIN_CHAIN_NODE_PORT)") from None
        time.sleep(0.1)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class AnvilNode:
    """A running anvil shared by this checkout's processes; see the module docstring."""

    def __init__(self, options: NodeOptions, pid: int, port: int, users: IO[str]) -> None:
        self.options = options
        self.pid = pid
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._users = users

    # ---------------------------------------------------------------- files

    @staticmethod
    def _paths(state_dir: Path) -> tuple[Path, Path, Path]:
        return state_dir / "node.lock", state_dir / "users.lock", state_dir / "node.json"

    @property
    def state_file(self) -> Path:
        return self.options.state_dir / "state.json"

    # ---------------------------------------------------------------- lifecycle

    @classmethod
    def acquire(cls, options: NodeOptions) -> AnvilNode:
        """Join the node this state directory's processes share, starting it if none answers."""
        options.state_dir.mkdir(parents=True, exist_ok=True)
        node_lock, users_lock, node_file = cls._paths(options.state_dir)
        with exclusive_lock(node_lock):
            pid, port = cls._running(options, node_file)
            if pid is None:
                pid, port = cls._start(options, node_file)
            users = users_lock.open("a")
            fcntl.flock(users, fcntl.LOCK_SH)
        return cls(options, pid, port, users)

    def release(self) -> None:
        """Leave the node; the last user stops it (anvil writes its state as it exits)."""
        node_lock, users_lock, node_file = self._paths(self.options.state_dir)
        with exclusive_lock(node_lock):
            self._users.close()
            with users_lock.open("a") as probe:
                try:
                    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return  # others still use it
                self._stop()
                node_file.unlink(missing_ok=True)

    @classmethod
    def stop_unused(cls, state_dir: Path) -> bool:
        """Stop the node of ``state_dir`` if no process uses it (one left by a killed server);
        True if one was running. NodeError if a process still uses it."""
        node_lock, users_lock, node_file = cls._paths(state_dir)
        if not state_dir.is_dir():
            return False
        with exclusive_lock(node_lock), users_lock.open("a") as probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise NodeError(f"the node of {state_dir} is in use: stop the twin processes first") from None
            try:
                pid = int(json.loads(node_file.read_text())["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                return False
            node_file.unlink(missing_ok=True)
            cls.terminate(pid)
            return True

    def restart_if_dead(self) -> bool:
        """Start the node again from its last saved state if its process has died; True if it did."""
        node_lock, _, node_file = self._paths(self.options.state_dir)
        with exclusive_lock(node_lock):
            pid, port = self._running(self.options, node_file)
            if pid is None:
                if self.pid and process_alive(self.pid):
                    return False  # alive but not answering (stalled): wait, never run two
                log.warning("chain_node_restarted", reason="the node's process ended", port=self.port)
                pid, port = self._start(self.options, node_file, port=self.port)
            restarted = pid != self.pid
            self.pid = pid
            self.port = port
            self.url = f"http://127.0.0.1:{port}"
            return restarted

    @classmethod
    def _running(cls, options: NodeOptions, node_file: Path) -> tuple[int | None, int]:
        """The recorded node's (pid, port) if its process lives, else (None, 0)."""
        try:
            recorded = json.loads(node_file.read_text())
            pid, port = int(recorded["pid"]), int(recorded["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None, 0
        if not process_alive(pid):
            return None, 0
        return pid, port

    @classmethod
    def _start(cls, options: NodeOptions, node_file: Path, *, port: int = 0) -> tuple[int, int]:
        # A restart waits for the dead node's port to be let go.
        port = _free_port(port or options.port, wait_s=5.0 if port else 0.0)
        state_file = options.state_dir / "state.json"
        command = [
            str(anvil_binary(options.node_modules_dir)),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--chain-id",
            str(options.chain_id),
            "--mnemonic",
            options.mnemonic,
            "--accounts",
            str(options.accounts),
            "--balance",
            str(options.balance_eth),
            "--block-base-fee-per-gas",
            str(options.base_fee_wei),
            "--disable-min-priority-fee",
            "--state",
            str(state_file),
            "--state-interval",
            str(options.state_interval_s),
        ]
        if options.genesis_timestamp is not None and not state_file.exists():
            command += ["--timestamp", str(options.genesis_timestamp)]
        log_file = (options.state_dir / "anvil.log").open("ab")
        # A session of its own: it outlives a killed server, and a terminal's ^C spares it.
        process = subprocess.Popen(  # noqa: S603 - our binary
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log_file.close()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                tail = (options.state_dir / "anvil.log").read_text(errors="replace").strip().splitlines()[-1:]
                raise NodeError(
                    f"anvil exited at start with status {process.returncode}: "
                    f"{tail[0] if tail else 'no output'} (log: {options.state_dir / 'anvil.log'})"
                )
            try:
                rpc(url, "eth_chainId", timeout_s=0.5)
                break
            except NodeError:
                if time.monotonic() > deadline:
                    process.kill()
                    raise NodeError(f"anvil did not answer on {url} within {START_TIMEOUT_S:g}s") from None
                time.sleep(0.05)
        node_file.write_text(json.dumps({"pid": process.pid, "port": port, "chain_id": options.chain_id}))
        log.info("chain_node_started", url=url, pid=process.pid, state=str(state_file))
        return process.pid, port

    def _stop(self) -> None:
        self.terminate(self.pid)

    @staticmethod
    def terminate(pid: int) -> None:
        """SIGTERM (anvil writes its state as it exits), then SIGKILL if it has not ended in time."""
        if not process_alive(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)  # a stopped node cannot exit
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while process_alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
            time.sleep(0.05)
        if process_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        log.info("chain_node_stopped", pid=pid)
