"""A chain node frozen with SIGSTOP (a node of the test's own), with the default 5 s read deadline:
the stall probe opens the breaker, so quotes and holdings answer 503 ``chain_unavailable`` with
Retry-After instead of waiting out the deadline, ``/readyz`` names the chain, chats refuse new turns
with ``unavailable``, and the indexer says ``indexer_paused`` once; after SIGCONT it says
``indexer_resumed`` with its lag and everything answers again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from eth_account.signers.local import LocalAccount

from app.chain import indexer as indexer_module
from app.chain import watch as watch_module
from app.chain.client import Chain, ChainUnavailable, KeepAliveHTTPProvider
from app.config import Settings
from tests.chat.conftest import Served, holding_fan, receive, send_message, serving
from tests.conftest import connected_chain_of_its_own
from tests.helpers import buy, forget_cached_loggers, launch

PROBE = {"chain_probe_interval_s": 0.2, "chain_stall_timeout_s": 0.5, "indexer_poll_s": 0.1}


async def eventually(condition: object, timeout_s: float = 15) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110 - state of other tasks, no event
            await asyncio.sleep(0.05)


async def timed_get(served: Served, path: str, **params: object) -> tuple[float, int, dict[str, object], str]:
    async with asyncio.timeout(30):
        client = served.clients[0]
        started = time.monotonic()
        response = await client.get(path, params=params)  # type: ignore[arg-type]
    return time.monotonic() - started, response.status_code, response.json(), response.headers.get("retry-after", "")


@contextlib.contextmanager
def logged_events() -> Iterator[list[dict[str, Any]]]:
    """Every event logged through structlog (as the app configured it) while the block runs."""
    events: list[dict[str, Any]] = []
    processors = structlog.get_config()["processors"]

    def keep(logger: object, method: str, event: dict[str, Any]) -> dict[str, Any]:
        events.append(dict(event))
        return event

    forget_cached_loggers(indexer_module.log, watch_module.log)
    processors.insert(0, keep)  # in place: the list every logger looks up
    try:
        yield events
    finally:
        processors.remove(keep)


async def test_a_stalled_node_fails_fast_everywhere_and_the_indexer_resumes_after_it(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    async with connected_chain_of_its_own(tmp_path_factory) as chain:
        creator, fan = chain.dev_accounts[1], chain.dev_accounts[2]
        async with serving(settings.model_copy(update=PROBE), chain) as served:
            with logged_events() as logged:
                await stall_and_resume(served, chain, creator, fan)
    events = [entry["event"] for entry in logged]
    assert events.count("indexer_paused") == 1, events
    resumed = [entry for entry in logged if entry["event"] == "indexer_resumed"]
    assert len(resumed) == 1, resumed
    assert resumed[0]["lag_blocks"] >= 0


async def stall_and_resume(served: Served, chain: Chain, creator: LocalAccount, fan: LocalAccount) -> None:
    assert chain.embedded is not None
    http = await served.signed_in(creator)
    avatar_id = await launch(http, chain, creator, "frozen")  # type: ignore[arg-type]
    fan_http = await holding_fan(served, fan, avatar_id)
    indexer = served.app.state.services.indexer
    provider = chain.w3.provider
    assert isinstance(provider, KeepAliveHTTPProvider)
    assert provider._request_kwargs["timeout"].total == 5.0  # the calls' own deadline is the default one

    async with served.chat(avatar_id, fan_http) as ws:
        pid = chain.embedded.node.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            # A quote asked at the moment of the stall waits only until the probe sees it, not 5 s.
            took, status, body, retry_after = await timed_get(
                served, f"/api/avatars/{avatar_id}/quote", side="buy", amount=1
            )
            assert (status, body["error"]) == (503, "chain_unavailable"), body
            assert int(retry_after) > 0
            assert took < provider._request_kwargs["timeout"].total, took
            await eventually(lambda: provider.watch.stalled)
            _, status, body, retry_after = await timed_get(served, f"/api/wallets/{fan.address}/holdings")
            assert (status, body["error"]) == (503, "chain_unavailable"), body
            assert int(retry_after) > 0
            _, status, body, _ = await timed_get(served, "/readyz")
            assert (status, body["detail"]) == (503, "unavailable: chain"), body
            assert "has not answered" in body["dependencies"]["chain"]
            await eventually(lambda: indexer.last_error is not None)

            await send_message(ws, "during-stall", "hello?")
            frame = await receive(ws)
            assert (frame["type"], frame["code"]) == ("error", "unavailable"), frame
            assert frame["retry_after_s"] > 0
            with pytest.raises(ChainUnavailable):
                await chain.w3.eth.block_number
        finally:
            os.kill(pid, signal.SIGCONT)

        await eventually(lambda: not provider.watch.stalled)
        buy(chain, fan, avatar_id, 2)  # mined after the stall: the running indexer must find it by itself
        await eventually(lambda: indexer.last_error is None)
        async with asyncio.timeout(15):  # (its lag may read 0 before it has seen the new block)
            while (balances := await held(fan_http, fan.address)) != [3]:  # noqa: ASYNC110 - polled through the API
                await asyncio.sleep(0.05)
        assert indexer.lag_blocks == 0
        _, status, body, _ = await timed_get(served, "/readyz")
        assert status == 200, body
        _, status, body, _ = await timed_get(served, f"/api/avatars/{avatar_id}/quote", side="buy", amount=1)
        assert status == 200, body
        assert balances == [3]


async def held(http: Any, wallet: str) -> list[int]:
    """The wallet's key balances, as the index lists them."""
    return [holding["balance"] for holding in (await http.get(f"/api/wallets/{wallet}/holdings")).json()]
