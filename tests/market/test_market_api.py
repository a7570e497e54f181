"""The market over the API, against real signed transactions on the embedded chain:
launch, trade, index, then compare every figure with what the contract reports."""

from __future__ import annotations

import time

import pytest
from eth_account.signers.local import LocalAccount
from litestar import Litestar
from litestar.testing import AsyncTestClient
from web3.exceptions import ContractLogicError

from app.chain.client import Chain
from app.config import Settings
from app.db.models import utc_now
from app.main import create_app
from app.market import curve
from app.market.service import QUOTE_TTL_S
from app.network.rollups import record_turn
from tests.helpers import (
    FAR_DEADLINE,
    avatar_bytes,
    buy,
    index,
    index_differences,
    launch,
    sell,
    sign_in,
    sync_twin_keys,
    transact,
    view,
)


@pytest.fixture
def accounts(chain: Chain) -> dict[str, LocalAccount]:
    creator, fan, other, stranger = chain.dev_accounts[1:5]
    return {"creator": creator, "fan": fan, "other": other, "stranger": stranger}


async def test_trades_from_several_wallets_are_indexed_exactly(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain, accounts: dict[str, LocalAccount]
) -> None:
    creator, fan, other = accounts["creator"], accounts["fan"], accounts["other"]
    await index(app)  # the deployment's own events (ownership, fee levels, treasury)
    avatar_id = await launch(client, chain, creator, "ada", first_keys=2)
    buy(chain, fan, avatar_id, 3)
    buy(chain, other, avatar_id, 1)
    sell(chain, fan, avatar_id, 1)
    buy(chain, fan, avatar_id, 2)
    assert await index(app) == 6  # AvatarCreated + 5 trades

    key = avatar_bytes(avatar_id)
    for account in (creator, fan, other):
        holdings = (await client.get(f"/api/wallets/{account.address}/holdings")).json()
        assert holdings[0]["balance"] == view(chain, "keysBalance", key, account.address)
    profile = (await client.get(f"/api/avatars/{avatar_id}")).json()
    assert profile["listed"] is True
    assert profile["market"]["supply"] == view(chain, "keysSupply", key) == 7
    assert profile["market"]["holders"] == 3
    assert int(profile["market"]["creator_fees_earned"]) == view(chain, "creatorFees", key)
    assert int(profile["market"]["next_key_price"]) == view(chain, "getBuyPrice", key, 1)

    trades = (await client.get(f"/api/avatars/{avatar_id}/trades")).json()["items"]
    # newest first: fan buys 2, fan sells 1, other buys 1, fan buys 3, creator's first buy of 2
    assert [(t["side"], t["amount"]) for t in trades] == [("buy", 2), ("sell", 1), ("buy", 1), ("buy", 3), ("buy", 2)]
    assert sum(int(t["protocol_fee"]) for t in trades) == view(chain, "protocolFees", key)
    fan_trades = (await client.get(f"/api/wallets/{fan.address}/trades")).json()["items"]
    assert len(fan_trades) == 3
    assert {t["trader"] for t in fan_trades} == {fan.address}


async def test_holding_value_and_cost_basis(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain, accounts: dict[str, LocalAccount]
) -> None:
    avatar_id = await launch(client, chain, accounts["creator"], "bea")
    before = chain.embedded.w3.eth.get_balance(accounts["fan"].address)
    receipt = buy(chain, accounts["fan"], avatar_id, 4)
    await index(app)

    holding = (await client.get(f"/api/wallets/{accounts['fan'].address}/holdings")).json()[0]
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert int(holding["cost_basis"]) == before - chain.embedded.w3.eth.get_balance(accounts["fan"].address) - gas
    assert int(holding["sell_value"]) == view(chain, "getSellPriceAfterFee", avatar_bytes(avatar_id), 4)
    assert holding["sellable"] == 4
    # The index records the network fee the buy's transaction paid, from its receipt.
    assert int(holding["gas_paid"]) == gas
    assert holding["gas_paid_known"] is True
    (trade,) = (await client.get(f"/api/wallets/{accounts['fan'].address}/trades")).json()["items"]
    assert int(trade["gas_paid"]) == gas


async def test_quotes_equal_what_the_contract_charges(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain, accounts: dict[str, LocalAccount]
) -> None:
    avatar_id = await launch(client, chain, accounts["creator"], "cyd", first_keys=3)
    fan = accounts["fan"]

    quote = (
        await client.get(f"/api/avatars/{avatar_id}/quote", params={"side": "buy", "amount": 5, "slippage_bps": 50})
    ).json()
    total = int(quote["total"])
    assert total == view(chain, "getBuyPriceAfterFee", avatar_bytes(avatar_id), 5)
    assert int(quote["max_total_cost"]) == total * 10_050 // 10_000
    assert quote["block_number"] == chain.embedded.w3.eth.block_number
    balance = chain.embedded.w3.eth.get_balance(fan.address)
    receipt = transact(
        chain,
        fan,
        "buyKeys",
        avatar_bytes(avatar_id),
        5,
        int(quote["max_total_cost"]),
        quote["deadline"],
        value=int(quote["max_total_cost"]),
    )
    paid = balance - chain.embedded.w3.eth.get_balance(fan.address) - receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert paid == total  # the overpayment came back

    sell_quote = (await client.get(f"/api/avatars/{avatar_id}/quote", params={"side": "sell", "amount": 2})).json()
    assert int(sell_quote["total"]) == view(chain, "getSellPriceAfterFee", avatar_bytes(avatar_id), 2)
    assert int(sell_quote["min_proceeds"]) == int(sell_quote["total"]) * 9_900 // 10_000
    fees = curve.fees(int(sell_quote["price"]), view(chain, "protocolFeePercent"), view(chain, "creatorFeePercent"))
    assert (int(sell_quote["protocol_fee"]), int(sell_quote["creator_fee"])) == fees


async def test_buy_quotes_are_refused_while_the_market_is_paused(
    client: AsyncTestClient[Litestar], chain: Chain, accounts: dict[str, LocalAccount]
) -> None:
    avatar_id = await launch(client, chain, accounts["creator"], "pia", first_keys=3)
    owner = chain.dev_accounts[0]
    transact(chain, owner, "pause")

    refused = await client.get(f"/api/avatars/{avatar_id}/quote", params={"side": "buy", "amount": 1})
    assert refused.status_code == 409
    assert refused.json()["error"] == "paused"
    sell = await client.get(f"/api/avatars/{avatar_id}/quote", params={"side": "sell", "amount": 1})
    assert sell.status_code == 200  # sells are never paused

    transact(chain, owner, "unpause")
    resumed = await client.get(f"/api/avatars/{avatar_id}/quote", params={"side": "buy", "amount": 1})
    assert resumed.status_code == 200


async def test_a_quote_s_deadline_runs_on_block_time(
    client: AsyncTestClient[Litestar], chain: Chain, accounts: dict[str, LocalAccount]
) -> None:
    avatar_id = await launch(client, chain, accounts["creator"], "cal")
    chain.embedded.time_travel(int(time.time()) + 3600)  # a chain whose clock runs an hour ahead of ours
    chain.embedded.mine_blocks(1)
    block_time = chain.embedded.w3.eth.get_block("latest")["timestamp"]

    quote = (await client.get(f"/api/avatars/{avatar_id}/quote", params={"side": "buy", "amount": 1})).json()
    assert quote["deadline"] >= block_time + QUOTE_TTL_S > time.time() + 3600
    receipt = transact(
        chain,
        accounts["fan"],
        "buyKeys",
        avatar_bytes(avatar_id),
        1,
        int(quote["max_total_cost"]),
        quote["deadline"],
        value=int(quote["max_total_cost"]),
    )
    assert receipt["status"] == 1


async def test_reorg_leaves_the_index_equal_to_the_new_chain(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain, accounts: dict[str, LocalAccount]
) -> None:
    avatar_id = await launch(client, chain, accounts["creator"], "dee")
    await index(app)
    fork_point = chain.embedded.take_snapshot()
    buy(chain, accounts["fan"], avatar_id, 3)
    await index(app)
    assert (await client.get(f"/api/avatars/{avatar_id}")).json()["market"]["supply"] == 4

    chain.embedded.revert_to_snapshot(fork_point)  # the fan's buy is orphaned
    buy(chain, accounts["other"], avatar_id, 1)
    chain.embedded.mine_blocks(3)
    await index(app)

    profile = (await client.get(f"/api/avatars/{avatar_id}")).json()
    assert profile["market"]["supply"] == view(chain, "keysSupply", avatar_bytes(avatar_id)) == 2
    assert profile["market"]["holders"] == 2
    assert (await client.get(f"/api/wallets/{accounts['fan'].address}/holdings")).json() == []
    traders = [t["trader"] for t in (await client.get(f"/api/avatars/{avatar_id}/trades")).json()["items"]]
    assert traders == [accounts["other"].address, accounts["creator"].address]


async def test_reorg_that_removes_the_creation_unlists_the_avatar(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain, accounts: dict[str, LocalAccount]
) -> None:
    fork_point = chain.embedded.take_snapshot()
    avatar_id = await launch(client, chain, accounts["creator"], "eve")
    await index(app)
    assert (await client.get("/api/avatars")).json()["items"][0]["id"] == avatar_id

    chain.embedded.revert_to_snapshot(fork_point)
    chain.embedded.mine_blocks(5)
    await index(app)

    assert (await client.get("/api/avatars")).json()["items"] == []
    assert (await client.get(f"/api/avatars/{avatar_id}")).json()["listed"] is False


async def test_an_avatar_the_chain_lost_is_launched_again_by_its_creator_only(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain, accounts: dict[str, LocalAccount]
) -> None:
    fork_point = chain.embedded.take_snapshot()
    avatar_id = await launch(client, chain, accounts["creator"], "gus")
    await index(app)
    chain.embedded.revert_to_snapshot(fork_point)  # the chain no longer holds the avatar
    chain.embedded.mine_blocks(3)
    await index(app)
    body = {"name": "Gus", "handle": "gus", "persona": "You are gus, back again.", "model": "twin-offline-demo"}

    await sign_in(client, accounts["other"])
    assert (await client.post("/api/avatars", json=body)).status_code == 409  # not theirs to take
    await sign_in(client, accounts["creator"])
    again = await client.post("/api/avatars", json=body)
    assert again.status_code == 201, again.text
    assert again.json()["id"] == avatar_id
    transact(
        chain,
        accounts["creator"],
        "createAvatar",
        avatar_bytes(avatar_id),
        again.json()["metadata_uri"],
        1,
        0,
        FAR_DEADLINE,
    )
    await index(app)

    profile = (await client.get(f"/api/avatars/{avatar_id}")).json()
    assert profile["listed"] is True
    assert profile["persona"] == "You are gus, back again."


async def test_restart_resumes_without_duplicates(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    chain: Chain,
    settings: Settings,
    accounts: dict[str, LocalAccount],
) -> None:
    avatar_id = await launch(client, chain, accounts["creator"], "fay")
    buy(chain, accounts["fan"], avatar_id, 2)
    await index(app)
    buy(chain, accounts["other"], avatar_id, 1)

    restarted = create_app(settings, chain=chain)
    async with AsyncTestClient(app=restarted) as second:
        assert await index(restarted) == 1  # only the trade it had not seen
        assert await index(restarted) == 0
        trades = (await second.get(f"/api/avatars/{avatar_id}/trades")).json()["items"]
    assert len(trades) == 3
    assert len({t["tx_hash"] for t in trades}) == 3


async def test_fee_withdrawal_moves_fees_from_claimable_to_claimed(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain, accounts: dict[str, LocalAccount]
) -> None:
    creator = accounts["creator"]
    avatar_id = await launch(client, chain, creator, "gus")
    buy(chain, accounts["fan"], avatar_id, 5)
    await index(app)
    earned = view(chain, "creatorFees", avatar_bytes(avatar_id))
    assert earned > 0

    transact(chain, creator, "withdrawCreatorFees", avatar_bytes(avatar_id), creator.address)
    await index(app)
    await sign_in(client, creator)
    stats = (await client.get("/api/creators/me/stats")).json()

    assert stats[0]["avatar_id"] == avatar_id
    assert int(stats[0]["fees_earned"]) == earned
    assert int(stats[0]["fees_claimed"]) == earned
    assert int(stats[0]["fees_claimable"]) == 0 == view(chain, "creatorFees", avatar_bytes(avatar_id))
    assert stats[0]["holders"] == 2


async def test_rankings_order_and_pagination(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain, accounts: dict[str, LocalAccount]
) -> None:
    ids = {}
    for handle, keys in (("small", 1), ("large", 6), ("medium", 3)):
        ids[handle] = await launch(client, chain, accounts["creator"], handle, first_keys=keys)
    buy(chain, accounts["fan"], ids["small"], 1)
    await index(app)
    async with app.state.services.sessions() as session:  # one chat: chats_24h ranks it, then the two without
        await record_turn(
            session,
            avatar_id=ids["medium"],
            fan=accounts["fan"].address,
            model=None,
            ended_at=utc_now(),
            replied=True,
            prompt_tokens=None,
            completion_tokens=None,
            paid_wei=0,
        )
        await session.commit()

    by_cap = (await client.get("/api/avatars", params={"sort": "market_cap"})).json()["items"]
    assert [a["handle"] for a in by_cap] == ["large", "medium", "small"]
    caps = [int(a["market"]["market_cap"]) for a in by_cap]
    assert caps == [
        view(chain, "getSellPrice", avatar_bytes(ids[a["handle"]]), a["market"]["supply"] - 1) for a in by_cap
    ]
    by_holders = (await client.get("/api/avatars", params={"sort": "holders"})).json()["items"]
    assert by_holders[0]["handle"] == "small"
    newest = (await client.get("/api/avatars", params={"sort": "newest"})).json()["items"]
    assert [a["handle"] for a in newest] == ["medium", "large", "small"]
    searched = (await client.get("/api/avatars", params={"q": "MED"})).json()["items"]
    assert [a["handle"] for a in searched] == ["medium"]

    for sort in ("volume_24h", "chats_24h", "market_cap", "holders", "newest"):
        whole = [a["handle"] for a in (await client.get("/api/avatars", params={"sort": sort})).json()["items"]]
        seen, cursor = [], None
        while True:
            params = {"sort": sort, "limit": 1} | ({"cursor": cursor} if cursor else {})
            page = (await client.get("/api/avatars", params=params)).json()
            seen += [a["handle"] for a in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == whole, sort
        assert sorted(seen) == ["large", "medium", "small"]
        if sort == "volume_24h":
            assert seen[0] == "large"  # the creator's 6-key first buy is the largest volume
        if sort == "chats_24h":  # the avatars without chats after it, newest id first: paged across both steps
            assert seen == ["medium", *sorted(("small", "large"), key=lambda handle: ids[handle], reverse=True)]


async def test_candles_follow_the_spot_price(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain, accounts: dict[str, LocalAccount]
) -> None:
    avatar_id = await launch(client, chain, accounts["creator"], "hal")
    buy(chain, accounts["fan"], avatar_id, 2)
    sell(chain, accounts["fan"], avatar_id, 1)
    await index(app)

    candles = (await client.get(f"/api/avatars/{avatar_id}/candles", params={"interval": "1d"})).json()
    assert sum(c["trades"] for c in candles) == 3
    last = candles[-1]
    assert int(last["close"]) == view(chain, "getBuyPrice", avatar_bytes(avatar_id), 1)
    assert int(last["high"]) >= int(last["close"]) >= int(last["low"])


async def test_persona_is_shown_only_to_its_creator(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain, accounts: dict[str, LocalAccount]
) -> None:
    avatar_id = await launch(client, chain, accounts["creator"], "ivy")
    assert "terse and kind" in (await client.get(f"/api/avatars/{avatar_id}")).json()["persona"]

    await sign_in(client, accounts["fan"])
    assert (await client.get(f"/api/avatars/{avatar_id}")).json()["persona"] is None
    client.cookies.clear()
    assert (await client.get(f"/api/avatars/{avatar_id}")).json()["persona"] is None
    metadata = (await client.get(f"/api/avatars/{avatar_id}/metadata")).json()
    assert "persona" not in metadata
    assert metadata["handle"] == "ivy"


async def test_creator_edits_and_others_cannot(
    client: AsyncTestClient[Litestar], chain: Chain, accounts: dict[str, LocalAccount]
) -> None:
    avatar_id = await launch(client, chain, accounts["creator"], "jon")
    edited = await client.patch(f"/api/avatars/{avatar_id}", json={"bio": "new bio", "persona": "You are new."})
    assert edited.status_code == 200
    assert edited.json()["bio"] == "new bio"
    assert edited.json()["persona"] == "You are new."

    await sign_in(client, accounts["fan"])
    refused = await client.patch(f"/api/avatars/{avatar_id}", json={"bio": "hijacked"})
    assert refused.status_code == 403
    assert (await client.get(f"/api/avatars/{avatar_id}")).json()["bio"] == "new bio"


async def test_creation_by_another_wallet_does_not_list(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain, accounts: dict[str, LocalAccount]
) -> None:
    await sign_in(client, accounts["creator"])
    launched = (
        await client.post(
            "/api/avatars", json={"name": "Kim", "handle": "kim", "persona": "p", "model": "twin-offline-demo"}
        )
    ).json()
    # The id is bound to its creator (TwinKeys.avatarIdFor): another wallet cannot even create it.
    with pytest.raises(ContractLogicError):
        transact(
            chain,
            accounts["stranger"],
            "createAvatar",
            avatar_bytes(launched["id"]),
            launched["metadata_uri"],
            1,
            0,
            FAR_DEADLINE,
        )
    await index(app)

    assert (await client.get(f"/api/avatars/{launched['id']}")).json()["listed"] is False
    assert (await client.get("/api/avatars")).json()["items"] == []
    transact(
        chain,
        accounts["creator"],
        "createAvatar",
        avatar_bytes(launched["id"]),
        launched["metadata_uri"],
        1,
        0,
        FAR_DEADLINE,
    )
    await index(app)
    assert (await client.get(f"/api/avatars/{launched['id']}")).json()["listed"] is True


async def test_an_abandoned_launch_releases_its_handle_after_the_ttl(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain, accounts: dict[str, LocalAccount]
) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from app.avatars.models import Avatar
    from app.avatars.service import avatar_id_for
    from app.db.models import utc_now

    body = {"name": "Lee", "handle": "lee", "persona": "p", "model": "twin-offline-demo"}
    creator, stranger = accounts["creator"], accounts["stranger"]
    await sign_in(client, creator)
    first = (await client.post("/api/avatars", json=body)).json()
    assert first["id"] == avatar_id_for(creator.address, int(first["id"][-8:], 16))  # bound to its creator

    await sign_in(client, stranger)
    taken = await client.post("/api/avatars", json=body)
    assert taken.status_code == 409
    assert taken.json()["error"] == "conflict"

    ttl = app.state.services.settings.avatar_launch_ttl_s
    assert ttl == 86_400
    async with app.state.services.sessions() as session:  # a day passes; the launch never reached the chain
        await session.execute(
            update(Avatar).where(Avatar.id == first["id"]).values(updated_at=utc_now() - timedelta(seconds=ttl + 1))
        )
        await session.commit()
    second = await client.post("/api/avatars", json=body)
    assert second.status_code == 201
    released = second.json()
    assert released["id"] != first["id"]
    assert released["id"] == avatar_id_for(stranger.address, int(released["id"][-8:], 16))
    assert (await client.get(f"/api/avatars/{first['id']}")).status_code == 404

    transact(
        chain, stranger, "createAvatar", avatar_bytes(released["id"]), released["metadata_uri"], 1, 0, FAR_DEADLINE
    )
    await index(app)
    assert (await client.get(f"/api/avatars/{released['id']}")).json()["listed"] is True
    async with app.state.services.sessions() as session:  # a listed handle is never released
        await session.execute(
            update(Avatar).where(Avatar.id == released["id"]).values(updated_at=utc_now() - timedelta(days=30))
        )
        await session.commit()
    await sign_in(client, creator)
    assert (await client.post("/api/avatars", json=body)).status_code == 409


async def test_catch_up_over_many_ranges_reads_ahead_and_stores_each_once(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain, accounts: dict[str, LocalAccount]
) -> None:
    avatar_id = await launch(client, chain, accounts["creator"], "ivy")
    for _ in range(4):
        buy(chain, accounts["fan"], avatar_id, 2)
        sell(chain, accounts["fan"], avatar_id, 1)
        buy(chain, accounts["other"], avatar_id, 1)
    app.state.services.indexer._batch_blocks = 2  # many ranges: each read while the one before is stored

    assert await index(app) == 14  # the creation, its first key and twelve trades
    assert await index_differences(client, sync_twin_keys(chain), [avatar_id], list(accounts.values())) == []
