"""`twin serve` on the embedded defaults: a real process that migrates, deploys, and serves."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx

from tests.helpers import TWIN, env_without_twin_settings, run_twin


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_twin_serve_is_ready_on_embedded_defaults(tmp_path: Path) -> None:
    port = free_port()
    env = env_without_twin_settings() | {"TWIN_DATABASE_URL": f"sqlite:///{tmp_path / 'twin.db'}"}
    server = subprocess.Popen([str(TWIN), "serve", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        assert ready is not None, server.stdout.read() if server.poll() is not None else "no answer"
        assert ready.status_code == 200, ready.text
        assert ready.json()["dependencies"] == {"database": "ok", "chain": "ok"}
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        assert "/api/avatars" in httpx.get(f"{base}/schema/openapi.json").json()["paths"]
        assert httpx.get(f"{base}/api/avatars").json() == {"items": [], "next_cursor": None}
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    output = server.stdout.read()
    # uvicorn shuts down cleanly on SIGTERM, then lets the signal end the process.
    assert server.returncode in {0, -15}, output
    assert "Application shutdown complete" in output
    assert "Warning" not in output


def test_twin_serve_names_an_unreachable_chain(tmp_path: Path) -> None:
    result = run_twin({"TWIN_DATABASE_URL": f"sqlite:///{tmp_path / 'twin.db'}",
                       "TWIN_CHAIN_RPC_URL": "http://127.0.0.1:9", "TWIN_TWIN_KEYS_ADDRESS": "0x" + "11" * 20,
                       "TWIN_OPG_ADDRESS": "0x" + "22" * 20, "TWIN_NODE_REGISTRY_ADDRESS": "0x" + "33" * 20},
                      "serve", "--port", str(free_port()))

    assert result.returncode == 1
    assert "TWIN_CHAIN_RPC_URL" in result.stderr
    assert "Traceback" not in result.stderr
