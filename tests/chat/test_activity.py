"""Chats feed the rankings (sort=chats_24h), the profile's chat figures and the creator's stats."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount

from tests.chat.conftest import Served, holding_fan, reply_frames, send_message
from tests.helpers import launch


async def test_rankings_by_chats_and_creator_stats_count_real_chats(
    served: Served, creator: LocalAccount, fan: LocalAccount
) -> None:
    http = await served.signed_in(creator)
    quiet = await launch(http, served.chain, creator, "quiet")  # type: ignore[arg-type]
    busy = await launch(http, served.chain, creator, "busy")  # type: ignore[arg-type]
    await served.index()
    fan_http = await holding_fan(served, fan, busy)
    for who, avatar_id, count in ((http, quiet, 1), (http, busy, 2), (fan_http, busy, 1)):
        async with served.chat(avatar_id, who) as ws:
            for number in range(count):
                await send_message(ws, f"r{number}", "Hi")
                assert (await reply_frames(ws))[-1]["type"] == "done"

    ranked = (await http.get("/api/avatars", params={"sort": "chats_24h"})).json()["items"]
    profile = (await http.get(f"/api/avatars/{busy}")).json()
    stats = {row["avatar_id"]: row for row in (await http.get("/api/creators/me/stats")).json()}

    assert [(row["handle"], row["market"]["chats_24h"], row["market"]["chatters_24h"]) for row in ranked] == [
        ("busy", 3, 2),
        ("quiet", 1, 1),
    ]
    assert (profile["market"]["chats_24h"], profile["market"]["chatters_24h"]) == (3, 2)
    assert list(stats[busy]["chat_messages_by_day"].values()) == [3]
    assert list(stats[quiet]["chat_messages_by_day"].values()) == [1]
