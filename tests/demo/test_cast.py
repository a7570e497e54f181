"""The demo world's script holds together: nobody sells keys they do not hold, every avatar is
launched before it trades and ends with a holder to chat, and only an embedded demo chain is backdated."""

from __future__ import annotations

from app.config import Settings
from app.demo.cast import CAST, HISTORY_S, LAUNCHED_HOURS_AGO, TRADES, holdings, main_holder
from app.demo.world import genesis_timestamp


def test_every_sell_is_of_keys_the_seller_holds_and_every_trade_follows_the_launch() -> None:
    held: dict[tuple[str, int], int] = {(avatar.handle, avatar.creator_account): 1 for avatar in CAST}
    for hours_ago, account, handle, keys in sorted(TRADES, key=lambda trade: -trade[0]):
        assert hours_ago < LAUNCHED_HOURS_AGO[handle], (handle, hours_ago)
        held[handle, account] = held.get((handle, account), 0) + keys
        assert held[handle, account] >= 0, (handle, account, hours_ago)


def test_each_avatar_has_a_holder_besides_its_creator_to_chat_with_it() -> None:
    for avatar in CAST:
        holder = main_holder(avatar)
        assert holder != avatar.creator_account
        assert holdings(avatar.handle)[holder] > 0
        assert avatar.questions


def test_only_an_embedded_demo_chain_starts_in_the_past() -> None:
    now = 1_800_000_000

    assert genesis_timestamp(Settings(demo_world=True), now) == now - HISTORY_S
    assert genesis_timestamp(Settings(demo_world=False), now) is None
    assert genesis_timestamp(Settings(demo_world=True, chain_rpc_url="http://127.0.0.1:8545"), now) is None
    assert max(LAUNCHED_HOURS_AGO.values()) * 3600 < HISTORY_S  # the first launch comes after genesis
