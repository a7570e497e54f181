"""`twin serve` on the embedded defaults: a real process that migrates, deploys, and serves."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.helpers import TWIN, env_without_twin_settings, free_port, run_twin, stop, wait_until_ready


def test_twin_serve_is_ready_on_embedded_defaults(tmp_path: Path) -> None:
    port = free_port()
    env = env_without_twin_settings() | {"TWIN_DATABASE_URL": f"sqlite:///{tmp_path / 'twin.db'}"}
    server = subprocess.Popen(
        [str(TWIN), "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        ready = wait_until_ready(base, server)
        assert ready is not None, server.stdout.read() if server.poll() is not None else "no answer"
        assert ready.status_code == 200, ready.text
        assert ready.json()["dependencies"] == {
            "database": "ok",
            "chain": "ok",
            "leadership": "ok: leads autoscale, indexer",
        }  # the only worker
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        assert "/api/avatars" in httpx.get(f"{base}/schema/openapi.json").json()["paths"]
        assert httpx.get(f"{base}/api/avatars").json() == {"items": [], "next_cursor": None}
    finally:
        stop(server)
    output = server.stdout.read()
    # uvicorn shuts down cleanly on SIGTERM, then lets the signal end the process.
    assert server.returncode in {0, -15}, output
    assert "Application shutdown complete" in output
    assert "Warning" not in output


def test_twin_serve_names_an_unreachable_chain(tmp_path: Path) -> None:
    result = run_twin(
        {
            "TWIN_DATABASE_URL": f"sqlite:///{tmp_path / 'twin.db'}",
            "TWIN_CHAIN_RPC_URL": "http://127.0.0.1:9",
            "TWIN_TWIN_KEYS_ADDRESS": "0x" + "11" * 20,
            "TWIN_PUBLIC_DOMAIN": "twin.example.org",
            "TWIN_OPG_ADDRESS": "0x" + "22" * 20,
            "TWIN_NODE_REGISTRY_ADDRESS": "0x" + "33" * 20,
        },
        "serve",
        "--port",
        str(free_port()),
    )

    assert result.returncode == 1
    assert "TWIN_CHAIN_RPC_URL" in result.stderr
    assert "Traceback" not in result.stderr
