"""The rollups equal a recount from the raw tables after trades, chats (answered and failed) and a re-org
that takes trades back, and a restarted app reads the same figures. On a node of its own: anvil keeps the
states a re-org rebuilds from in a bounded cache (see tests/market/test_reorgs.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator

import pytest
from eth_account.signers.local import LocalAccount
from litestar.testing import AsyncTestClient

from app.chain.client import Chain
from app.chain.embedded import EmbeddedChain
from app.config import Settings
from app.main import create_app
from app.proxy.node.attestation import EnclaveIdentity
from tests.chat.conftest import Served, reply_frames, send_message
from tests.conftest import between_snapshot, chain_of_its_own
from tests.helpers import buy, launch, sell
from tests.network.recount import recent_totals, recount, rollups, windows


@pytest.fixture(scope="module")
def own_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedChain]:
    with chain_of_its_own(tmp_path_factory) as embedded:
        yield embedded


@pytest.fixture
async def chain(own_node: EmbeddedChain) -> AsyncIterator[Chain]:
    async with between_snapshot(own_node) as chain:
        yield chain


async def figures(served: Served) -> tuple[dict[str, object], dict[str, object]]:
    async with served.app.state.services.sessions() as session:
        kept_windows = await windows(session)
        assert set(kept_windows) == {1, 7, 30}
        for window in kept_windows.values():
            assert window["kept"] == window["summed"]
        recent = await recent_totals(session)
        assert recent["kept"] == recent["summed"]
        assert recent["kept"]  # summed as the app started, then kept by every event
        return await rollups(session), await recount(session)


async def chat(served: Served, http: object, avatar_id: str, count: int, prefix: str) -> None:
    async with served.chat(avatar_id, http) as ws:  # type: ignore[arg-type]
        for number in range(count):
            await send_message(ws, f"{prefix}{number}", "Hi")
            assert (await reply_frames(ws))[-1]["type"] == "done"


async def test_rollups_equal_a_recount_after_trades_chats_a_failure_and_a_reorg(
    served: Served, settings: Settings, creator: LocalAccount, fan: LocalAccount
) -> None:
    chain = served.chain
    other = chain.dev_accounts[3]
    creator_http = await served.signed_in(creator)
    for window in ("24h", "7d", "30d"):  # the windows' totals built now, then kept by every event below
        assert (await creator_http.get("/api/network/usage", params={"window": window})).status_code == 200
    busy = await launch(creator_http, chain, creator, "busy")  # type: ignore[arg-type]
    quiet = await launch(creator_http, chain, creator, "quiet")  # type: ignore[arg-type]
    buy(chain, fan, busy, 2)
    await served.index()
    fan_http = await served.signed_in(fan)
    await chat(served, fan_http, busy, 3, "f")
    await chat(served, creator_http, quiet, 1, "c")  # the creator chats without buying
    node = served.node_completions()
    genuine, node._identity = node._identity, EnclaveIdentity.generate()  # a reply that fails verification, paid
    try:
        async with served.chat(busy, creator_http) as ws:
            await send_message(ws, "forged", "Who are you?")
            assert (await reply_frames(ws))[-1]["code"] == "verification_failed"
    finally:
        node._identity = genuine
    buy(chain, other, quiet, 1)  # quiet's first outside buyer, in a block the re-org takes away
    sell(chain, fan, busy, 1)
    await served.index()
    before_reorg, _ = await figures(served)

    chain.embedded.reorg(2)
    buy(chain, fan, busy, 1)  # the new branch goes on
    await served.index()
    after, recounted = await figures(served)

    assert quiet in before_reorg["first_outside_buy"]
    assert quiet not in after["first_outside_buy"]  # the re-org took the only outside buy of quiet
    assert after == recounted
    assert sum(row["trades"] for row in after["avatar_days"].values()) == 4  # 2 creations, 2 buys of busy
    assert sum(row["chats"] for row in after["avatar_days"].values()) == 5
    assert sum(after["nodes"].values()) == 4

    restarted = create_app(settings, chain=chain)  # a restart reads the same figures from the same rows
    async with AsyncTestClient(app=restarted) as client:
        usage = (await client.get("/api/network/usage", params={"window": "7d"})).json()
        daily_csv = await client.get("/api/network/usage", params={"window": "7d", "format": "csv"})
        models_csv = await client.get(
            "/api/network/usage", params={"window": "7d", "format": "csv", "section": "models"}
        )
        avatar = (await client.get(f"/api/avatars/{busy}/usage")).json()
        page = (await client.get("/network")).text

    assert (usage["chats"], usage["chatters"]) == (5, 2)
    assert usage["distribution"]["active_avatars"] == 2
    assert usage["distribution"]["top_shares"]["1"] == 0.8
    assert usage["distribution"]["hhi"] == pytest.approx(0.8**2 + 0.2**2)
    assert usage["new_avatars"] == {"listed": 2, "first_chat": 2, "first_outside_buyer": 1}
    fees = sum(row["creator_fees"] for row in after["avatar_days"].values())
    assert fees > 0
    assert usage["creator_fees"] == {  # one creator earned them all
        "creators": 1,
        "total_wei": str(fees),
        "median_wei": str(fees),
        "p90_wei": str(fees),
        "max_wei": str(fees),
        "top_10_share": 1.0,
        "hhi": 1.0,
        "gini": 0.0,
    }
    assert [(row["model"], row["replies"], row["failed"]) for row in usage["models"]] == [("twin-offline-demo", 4, 1)]
    assert int(usage["models"][0]["spend_wei"]) == 5 * served.price_wei  # the rejected reply was paid too
    assert usage["models"][0]["price_per_reply_wei"] == str(served.price_wei)
    assert [(row["replies"], row["failures"], int(row["earned_wei"])) for row in usage["nodes"]] == [
        (4, 1, 5 * served.price_wei)
    ]
    assert daily_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(daily_csv.text)))
    assert len(rows) == 7
    assert sum(int(row["chats"]) for row in rows) == 5
    assert sum(int(row["trades"]) for row in rows) == 4
    (model_row,) = csv.DictReader(io.StringIO(models_csv.text))
    assert model_row["replies"] == "4"
    assert (avatar["chats"], avatar["chatters"], avatar["returning_chatters"]) == (4, 2, 0)
    assert "<polyline points=" in page
