"""The leader's forecast counts every worker's chats: two meters (two workers) on the real Redis,
each serving chats of its own; the leader's combined snapshot holds both workers' demand."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from app.autoscale.meter import DemandMeter
from app.autoscale.shared_meter import SharedMeter, combine
from tests.cluster.test_leader import redis_namespace
from tests.redis_namespace import redis_url_for_tests

MODEL = "twin-offline-demo"


def serve(meter: DemandMeter, avatar_id: str, fans: int, *, waiting: int = 0) -> list[object]:
    """``fans`` chats answered on ``meter``, and ``waiting`` more still queued (their blocks left open)."""
    for index in range(fans):
        with meter.track(MODEL, avatar_id, f"0xfan{index}") as stream:
            stream.admitted()
            stream.first_token()
            stream.finished(tokens=40, paid_wei=10**15)
    queued = [meter.track(MODEL, avatar_id, f"0xwaiting{index}") for index in range(waiting)]
    for stream in queued:
        stream.__enter__()
    return queued


async def test_the_leader_forecasts_from_every_workers_chats() -> None:
    async with redis_namespace() as namespace:
        leader_meter, follower_meter = DemandMeter(), DemandMeter()
        serve(leader_meter, "0xaaaa", 2)
        serve(follower_meter, "0xaaaa", 3, waiting=4)
        serve(follower_meter, "0xbbbb", 1)
        leader = SharedMeter(Redis.from_url(redis_url_for_tests()), namespace, leader_meter, tick_s=5)
        follower = SharedMeter(Redis.from_url(redis_url_for_tests()), namespace, follower_meter, tick_s=5)
        await follower.publish()
        await leader.publish()  # its own is not counted twice

        combined = await leader.combined(leader_meter.snapshot())
        figures = combined.models[MODEL].figures
        assert figures.arrivals_short == 2 + 3 + 4 + 1
        assert figures.queue_depth == 4
        avatars = {avatar.avatar_id: avatar.figures.arrivals_short for avatar in combined.models[MODEL].avatars}
        assert avatars == {"0xaaaa": 2 + 3 + 4, "0xbbbb": 1}
        assert combined.at <= time.time()
        alone = await follower.combined(follower_meter.snapshot())  # the follower's view counts the leader's too
        assert alone.models[MODEL].figures.arrivals_short == 10


def test_combining_one_snapshot_changes_nothing() -> None:
    meter = DemandMeter()
    serve(meter, "0xaaaa", 3, waiting=2)
    snapshot = meter.snapshot()
    assert combine([snapshot]) == snapshot
