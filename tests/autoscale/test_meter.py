"""The demand meter: counts that follow each message, rates over windows, latencies, new holders."""

from __future__ import annotations

import pytest

from app.autoscale.meter import (
    LEAD_WINDOW_S,
    LONG_WINDOW_S,
    SHORT_WINDOW_S,
    AvatarDemand,
    DemandFigures,
    DemandMeter,
    EventCounts,
    percentile,
)
from tests.autoscale.conftest import MODEL, FakeClock, Traffic

AVATAR = "0x" + "ab" * 16


def figures(meter: DemandMeter) -> DemandFigures:
    return meter.snapshot().models[MODEL].figures


def avatar_demand(meter: DemandMeter, avatar: str = AVATAR) -> AvatarDemand:
    return next(entry for entry in meter.snapshot().models[MODEL].avatars if entry.avatar_id == avatar)


def test_a_message_waits_then_streams_then_leaves(meter: DemandMeter, clock: FakeClock) -> None:
    with meter.track(MODEL, AVATAR, "0xFan") as stream:
        assert (figures(meter).queue_depth, figures(meter).in_flight) == (1, 0)
        clock.now += 3
        stream.admitted()
        assert (figures(meter).queue_depth, figures(meter).in_flight) == (0, 1)
        clock.now += 0.5
        stream.first_token()
        clock.now += 10
        stream.finished(tokens=300, paid_wei=7)
    model = figures(meter)
    assert (model.queue_depth, model.in_flight, model.arrivals_short) == (0, 0, 1)
    assert (model.wait_p50_s, model.ttft_p50_s, model.mean_service_s) == (3, 0.5, 10.5)
    assert model.tokens_per_s == 300 / SHORT_WINDOW_S
    assert model.price_wei == 7
    assert avatar_demand(meter).figures.in_flight == 0


@pytest.mark.parametrize("admitted", [False, True])
def test_a_message_that_fails_anywhere_releases_what_it_held(meter: DemandMeter, admitted: bool) -> None:
    def fan_leaves() -> None:
        with meter.track(MODEL, AVATAR, "0xFan") as stream:
            if admitted:
                stream.admitted()
            raise RuntimeError("the fan left")

    with pytest.raises(RuntimeError):
        fan_leaves()
    assert (figures(meter).queue_depth, figures(meter).in_flight) == (0, 0)
    assert figures(meter).mean_service_s is None  # only completed streams say how long a stream takes


def test_refusals_are_counted_by_reason_and_free_the_place(meter: DemandMeter) -> None:
    for _ in range(2):
        with meter.track(MODEL, AVATAR, "0xFan") as stream:
            stream.refused("queue_full")
    assert figures(meter).refusals == {"queue_full": 2}
    assert figures(meter).queue_depth == 0


def test_rates_cover_their_windows_and_idle_avatars_are_forgotten(
    meter: DemandMeter, traffic: Traffic, clock: FakeClock
) -> None:
    traffic.run(SHORT_WINDOW_S, 2.0, AVATAR)
    assert figures(meter).arrivals_per_s == 2.0
    traffic.run(SHORT_WINDOW_S, 0.0, AVATAR)
    assert figures(meter).arrivals_per_s == 0.0
    clock.now += LONG_WINDOW_S
    assert meter.snapshot().models == {}
    assert meter.avatar_ids() == []


def test_earlier_chat_is_the_chat_before_the_lead_window(meter: DemandMeter, traffic: Traffic) -> None:
    traffic.run(LONG_WINDOW_S - LEAD_WINDOW_S, 1.0, AVATAR)
    traffic.run(LEAD_WINDOW_S, 5.0, AVATAR)
    assert figures(meter).earlier_arrivals_per_s == 1.0
    assert figures(meter).arrivals_per_s == 5.0


def test_new_holders_are_silent_until_they_chat_or_the_lead_window_ends(meter: DemandMeter, clock: FakeClock) -> None:
    meter.key_bought(MODEL, AVATAR, "0xAAA", new_holder=True)
    meter.key_bought(MODEL, AVATAR, "0xBBB", new_holder=True)
    meter.key_bought(MODEL, AVATAR, "0xCCC", new_holder=False)
    meter.set_holders(AVATAR, 12)
    avatar = avatar_demand(meter)
    assert (avatar.key_buys, avatar.new_holders, avatar.silent_new_holders, avatar.holders) == (3, 2, 2, 12)
    assert avatar.holders_before == 10
    with meter.track(MODEL, AVATAR, "0xaaa"):  # addresses compare case-insensitively
        pass
    assert avatar_demand(meter).silent_new_holders == 1
    clock.now += LEAD_WINDOW_S
    avatar = avatar_demand(meter)
    assert (avatar.new_holders, avatar.silent_new_holders) == (0, 0)


def test_holder_counts_of_avatars_not_followed_are_ignored(meter: DemandMeter) -> None:
    meter.set_holders(AVATAR, 5)
    assert meter.avatar_ids() == []


def test_event_counts_series_and_percentiles(clock: FakeClock) -> None:
    counts = EventCounts(10)
    for offset, amount in ((-3, 2), (-1, 5), (0, 1)):
        counts.add(clock.now + offset, amount)
    assert counts.series(clock.now, 4) == (0, 2, 0, 5)  # the current second is not whole yet
    assert counts.last(clock.now, 2) == 6
    assert counts.total(clock.now, 1, 4) == 7
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.99) == 4.0
    assert percentile([], 0.5) is None
