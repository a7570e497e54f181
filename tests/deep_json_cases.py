"""Deeply nested JSON at every JSON entry point, after a dependency has raised the recursion limit.

Not collected by the suite on its own (the name lacks ``test_``): ``tests/test_hardening.py`` runs
this module in a subprocess, so that a regression segfaults that process, not the test run.
"""

from __future__ import annotations

import base64
import sys

from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.chain.client import Chain
from app.config import Settings
from app.proxy.config import ProxySettings
from app.proxy.node.app import create_proxy_app
from tests.chat.conftest import holding_fan, receive, serving
from tests.helpers import launch, sign_in

# What a dependency may do on import (py_ecc does): the apps must put a sane limit back.
sys.setrecursionlimit(100_000)

LEVELS = 100_000
DEEP = b"[" * LEVELS + b"]" * LEVELS
DEEP_OBJECT = b'{"message": ' + DEEP + b', "signature": "0x00"}'
CHAT_BODY = b'{"model": "twin-offline-demo", "messages": [{"role": "user", "content": "hi"}]}'


def assert_bad_body(response: object) -> None:
    assert response.status_code == 400, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["error"] == "invalid_request"
    assert body["detail"].startswith("body:")


async def test_backend_bodies(client: AsyncTestClient[Litestar], chain: Chain) -> None:
    assert sys.getrecursionlimit() <= 10_000  # create_app put it back
    await sign_in(client, chain.dev_accounts[1])
    json_type = {"content-type": "application/json"}

    for method, path, body in [
        ("POST", "/api/auth/verify", DEEP),
        ("POST", "/api/auth/verify", DEEP_OBJECT),
        ("POST", "/rpc", DEEP),
        ("POST", "/api/avatars", DEEP),
        ("PATCH", f"/api/avatars/0x{'ab' * 16}", DEEP),
    ]:
        assert_bad_body(await client.request(method, path, content=body, headers=json_type))

    assert (await client.get("/healthz")).status_code == 200


async def test_chat_frame(settings: Settings, chain: Chain) -> None:
    roomy = settings.model_copy(update={"chat_max_frame_bytes": 1_048_576})
    async with serving(roomy, chain) as served:
        creator = chain.dev_accounts[1]
        avatar_id = await launch(await served.signed_in(creator), chain, creator, "deep")  # type: ignore[arg-type]
        await served.index()
        http = await holding_fan(served, chain.dev_accounts[2], avatar_id)
        async with served.chat(avatar_id, http) as ws:
            await ws.send(DEEP.decode())
            first = await receive(ws)
            await ws.send(b'{"type": "message", "client_msg_id": "m", "content": ' + DEEP + b"}")
            second = await receive(ws)

    assert (first["type"], first["code"]) == ("error", "bad_frame")
    assert (second["type"], second["code"]) == ("error", "bad_frame")


async def test_proxy_node(chain: Chain) -> None:
    app = create_proxy_app(ProxySettings(), chain, endpoint="http://deep.in-process.invalid")
    assert sys.getrecursionlimit() <= 10_000
    deep_header = base64.b64encode(DEEP).decode()
    async with AsyncTestClient(app=app) as node:
        body = await node.post("/v1/chat/completions", content=DEEP, headers={"content-type": "application/json"})
        signature = await node.post(
            "/v1/chat/completions",
            content=CHAT_BODY,
            headers={"content-type": "application/json", "PAYMENT-SIGNATURE": deep_header},
        )
        x_payment = await node.post(
            "/v1/chat/completions",
            content=CHAT_BODY,
            headers={"content-type": "application/json", "X-PAYMENT": deep_header},
        )
        alive = await node.get("/healthz")

    assert body.status_code == 400, body.text
    assert body.json()["error"]["code"] == "invalid_json"
    assert signature.status_code == 402, signature.text
    assert x_payment.status_code == 402, x_payment.text
    assert alive.status_code == 200
