"""A fan's message through the chat websocket is metered: the signal sees its arrival, its stream, its
tokens and payment, and the fan stops counting as a new holder whose chat is still to come."""

from __future__ import annotations

from app.chain.client import Chain
from app.config import Settings
from tests.chat.conftest import holding_fan, reply_frames, send_message, serving
from tests.helpers import launch

MODEL = "twin-offline-demo"


async def test_a_chat_message_is_metered(settings: Settings, chain: Chain) -> None:
    creator, fan = chain.dev_accounts[1], chain.dev_accounts[2]
    async with serving(settings, chain) as served:
        http = await served.signed_in(creator)
        avatar_id = await launch(http, chain, creator, "metered")
        fan_http = await holding_fan(served, fan, avatar_id)
        autoscale = served.app.state.services.autoscale
        await autoscale.tick()
        before = (await http.get("/api/autoscale/signal")).json()
        async with served.chat(avatar_id, fan_http) as socket:
            await send_message(socket, "m1", "hello")
            frames = await reply_frames(socket)
        assert frames[-1]["type"] == "done"
        await autoscale.tick()
        after = (await http.get("/api/autoscale/signal")).json()
    assert before["models"][0]["top_avatars"][0]["silent_new_holders"] == 2  # the creator and the fan
    (model,) = after["models"]
    assert model["model"] == MODEL
    assert (model["queue_depth"], model["in_flight"]) == (0, 0)
    assert model["arrivals_per_s"] == round(1 / 60, 4)
    assert model["tokens_per_s"] > 0
    assert model["ttft_s"]["p50"] is not None
    assert model["queue_wait_s"]["p50"] is not None
    (avatar,) = model["top_avatars"]
    assert (avatar["avatar_id"], avatar["silent_new_holders"]) == (avatar_id, 1)  # the fan chatted
    price = served.proxy_settings.models[MODEL].price_wei
    assert after["expected_earnings_wei_per_node_hour"]["current"] == str(60 * price)  # one paid reply a minute
