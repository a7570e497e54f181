"""The creator stats' daily figures from a real trade and a real paid chat: holders, volume and fees from the
market, messages and inference spend from the chat."""

from __future__ import annotations

from datetime import UTC, datetime

from eth_account.signers.local import LocalAccount

from tests.chat.conftest import Served, holding_fan, reply_frames, send_message
from tests.helpers import launch


async def test_creator_stats_chart_today_s_holders_volume_fees_messages_and_spend(
    served: Served, creator: LocalAccount, fan: LocalAccount
) -> None:
    http = await served.signed_in(creator)
    avatar_id = await launch(http, served.chain, creator, "charted")  # type: ignore[arg-type]
    await served.index()
    fan_http = await holding_fan(served, fan, avatar_id, keys=2)
    async with served.chat(avatar_id, fan_http) as ws:
        await send_message(ws, "m1", "Hello")
        done = (await reply_frames(ws))[-1]
    assert done["type"] == "done"
    trades = (await http.get(f"/api/avatars/{avatar_id}/trades")).json()["items"]

    (stats,) = (await http.get("/api/creators/me/stats")).json()
    today = datetime.now(UTC).date().isoformat()

    assert len(stats["holders_by_day"]) == 30
    assert list(stats["holders_by_day"].items())[-1] == (today, 2)
    assert stats["volume_by_day"] == {today: str(sum(int(trade["price"]) for trade in trades))}
    assert stats["fees_by_day"] == {today: stats["fees_earned"]}
    assert int(stats["fees_earned"]) > 0
    assert stats["chat_messages_by_day"] == {today: 1}
    assert int(done["cost_wei"]) == served.price_wei
    assert stats["inference_spend_by_day"] == {today: done["cost_wei"]}
