"""The forecaster on metered demand: up at once, down slowly, one scale-up per spike while nodes join,
new key holders read through how much past holders chatted, and a trend only beyond noise."""

from __future__ import annotations

import pytest

from app.autoscale.forecast import Decision, Forecaster, ScalingPolicy, confidence, trend_rate
from app.autoscale.meter import LEAD_WINDOW_S, DemandMeter
from app.autoscale.service import expected_earnings
from app.config import ConfigError, load_settings
from tests.autoscale.conftest import MODEL, FakeClock, Traffic

AVATAR = "0x" + "ab" * 16
QUIET = "0x" + "cd" * 16
POLICY = ScalingPolicy(
    streams_per_node=8, headroom=0.25, min_nodes=1, max_nodes=100, cold_start_s=120, stabilization_s=300
)


@pytest.fixture
def forecaster() -> Forecaster:
    return Forecaster(POLICY)


def decide(forecaster: Forecaster, meter: DemandMeter, current_nodes: int) -> Decision:
    return forecaster.decide(meter.snapshot(), current_nodes)


def test_steady_demand_holds_its_count_and_its_decision(
    forecaster: Forecaster, meter: DemandMeter, traffic: Traffic
) -> None:
    traffic.run(300, 0.4, AVATAR)  # 0.4 messages/s x 20 s = 8 streams, x 1.25 headroom = 10 → 2 nodes of 8
    first = decide(forecaster, meter, 2)
    traffic.run(60, 0.4, AVATAR)
    second = decide(forecaster, meter, 2)
    assert (first.desired_nodes, second.desired_nodes) == (2, 2)
    assert second.direction == "hold"
    assert second.decision_id == first.decision_id


def test_a_spike_is_met_in_one_decision(forecaster: Forecaster, meter: DemandMeter, traffic: Traffic) -> None:
    traffic.run(300, 0.4, AVATAR)
    decide(forecaster, meter, 2)
    traffic.run(30, 4.0, AVATAR, queue=True)  # ten times the messages, and no stream for them yet
    decision = decide(forecaster, meter, 2)
    assert decision.direction == "up"
    assert decision.previous_nodes == 2
    assert decision.desired_nodes == POLICY.nodes_for(decision.forecast_streams)
    assert decision.desired_nodes >= 15  # 120 queued plus 4 messages/s of 20 s streams: not a step of one
    assert decision.reason.startswith("up: ")


def test_scale_down_waits_out_the_stabilization_window(
    forecaster: Forecaster, meter: DemandMeter, traffic: Traffic, clock: FakeClock
) -> None:
    traffic.run(300, 2.0, AVATAR)  # 40 streams → 7 nodes
    high = decide(forecaster, meter, 7)
    assert high.desired_nodes == 7
    dropped_at = clock.now
    history = []
    while clock.now < dropped_at + 600:
        traffic.run(10, 0.2, AVATAR)
        decision = decide(forecaster, meter, forecaster.last.desired_nodes if forecaster.last else 7)
        history.append((clock.now - dropped_at, decision))
    first_down = next((elapsed, decision) for elapsed, decision in history if decision.desired_nodes < 7)
    # Demand fell at once; the count falls only once 300 s passed since 7 nodes were last wanted.
    assert first_down[0] > POLICY.stabilization_s
    assert first_down[1].direction == "down"
    assert first_down[1].decision_id != high.decision_id
    assert history[-1][1].desired_nodes == 1  # 0.2 messages/s x 20 s = 4 streams


def test_while_nodes_join_the_count_follows_the_queue_as_a_reactive_hpa_would(
    forecaster: Forecaster, meter: DemandMeter, traffic: Traffic, clock: FakeClock
) -> None:
    traffic.run(300, 0.4, AVATAR)
    decide(forecaster, meter, 2)
    traffic.run(30, 2.0, AVATAR, queue=True)
    spike = decide(forecaster, meter, 2)
    assert spike.direction == "up"
    asked_at = clock.now
    joining = []
    while clock.now < asked_at + POLICY.cold_start_s - 10:  # the queue grows while no new node serves yet
        traffic.run(10, 2.0, AVATAR, queue=True)
        joining.append(decide(forecaster, meter, 2))
    # Never fewer than an HPA on streams in flight and waiting asks for, at any tick.
    assert all(decision.desired_nodes >= POLICY.nodes_for(decision.demand_streams) for decision in joining)
    assert joining[-1].desired_nodes > spike.desired_nodes
    assert any(
        decision.reason.startswith("up again: ") and "in flight and waiting" in decision.reason for decision in joining
    )


def test_a_bigger_spike_while_nodes_join_scales_up_again(
    forecaster: Forecaster, meter: DemandMeter, traffic: Traffic
) -> None:
    traffic.run(300, 0.4, AVATAR)
    decide(forecaster, meter, 2)
    traffic.run(30, 2.0, AVATAR, queue=True)
    spike = decide(forecaster, meter, 2)
    traffic.run(60, 20.0, AVATAR, queue=True)
    again = decide(forecaster, meter, 2)
    assert again.desired_nodes > spike.desired_nodes * (1 + POLICY.headroom)
    assert again.reason.startswith("up again")


def boost_from_new_holders(chatty: bool) -> tuple[float, Decision, Decision]:
    """Two avatars of 100 holders each, one chatty (0.25 messages/s), one quiet (0.005/s); then 300 fans
    buy their first keys of one of them. The forecast arrivals they add, before and after."""
    clock = FakeClock()
    meter = DemandMeter(clock=clock)
    traffic = Traffic(meter, clock)
    forecaster = Forecaster(POLICY)
    for _ in range(90):  # taking turns, five seconds each
        traffic.run(5, 0.5, AVATAR)
        traffic.run(5, 0.01, QUIET)
    for avatar in (AVATAR, QUIET):
        meter.set_holders(avatar, 100)
    before = decide(forecaster, meter, 2)
    bought = AVATAR if chatty else QUIET
    for buyer in range(300):
        meter.key_bought("twin-offline-demo", bought, f"0x{buyer:040x}", new_holder=True)
    meter.set_holders(bought, 400)
    after = decide(forecaster, meter, 2)
    return (after.models[0].forecast_arrivals_per_s - before.models[0].forecast_arrivals_per_s), before, after


def test_new_holders_of_a_chatty_avatar_raise_the_forecast_before_they_chat() -> None:
    boost, before, after = boost_from_new_holders(chatty=True)
    assert after.models[0].demand.figures.arrivals_per_s == before.models[0].demand.figures.arrivals_per_s
    # 300 silent new holders plus 300 more at this pace within the cold start, each chatting like the
    # avatar's past holders (0.25/100 per second, drawn a third towards the all-avatar 0.255/200).
    # The 300 bought within the last minute count in full; the spree's next ones, before any new holder
    # chatted, count for the warm pool's share.
    per_holder = (0.25 + 0.255 / 200 * POLICY.prior_holders) / (100 + POLICY.prior_holders)
    coming = 300 / 60 * POLICY.cold_start_s
    assert boost == pytest.approx((300 + coming * POLICY.warm_pool_share) * per_holder, rel=0.05)
    assert after.direction == "up"
    assert "new key holders" in after.reason


def test_new_holders_of_a_quiet_avatar_barely_move_it() -> None:
    quiet_boost, _, quiet = boost_from_new_holders(chatty=False)
    chatty_boost, _, _ = boost_from_new_holders(chatty=True)
    assert quiet_boost < chatty_boost / 4
    assert quiet.desired_nodes < POLICY.nodes_for(quiet.forecast_streams + chatty_boost * 20)


def test_a_trend_counts_only_beyond_noise() -> None:
    assert trend_rate([3] * 120, 120) is None
    assert trend_rate([2, 4] * 60, 120) is None  # jitter around a flat mean
    ramp = [index // 10 for index in range(120)]  # one more message per second every 10 s
    assert trend_rate(ramp, 120) == pytest.approx(11.5 + 120 / 10, abs=0.6)
    assert trend_rate(list(reversed(ramp)), 120) == 0.0  # a fall extended past zero is zero
    assert trend_rate([], 120) is None
    slow = [6 + index // 40 for index in range(120)]  # a slow ramp: 3.2 standard errors of Poisson noise
    assert trend_rate(slow, 120) == pytest.approx(11.0, abs=0.1)


def test_stabilization_must_outlast_a_cold_start(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="stabilization_s"):
        ScalingPolicy(cold_start_s=300, stabilization_s=300)
    monkeypatch.setenv("TWIN_AUTOSCALE_COLD_START_S", "400")
    with pytest.raises(ConfigError, match="TWIN_AUTOSCALE_STABILIZATION_S"):
        load_settings()


def leading_boost(meter: DemandMeter, forecaster: Forecaster) -> float:
    decision = decide(forecaster, meter, 2)
    return decision.models[0].leading_arrivals_per_s - decision.models[0].demand.figures.arrivals_per_s


def test_silent_new_holders_count_as_far_as_the_evidence_goes(meter: DemandMeter, traffic: Traffic) -> None:
    forecaster = Forecaster(POLICY)
    traffic.run(1_000, 0.25, AVATAR)  # the meter's windows are full: how much holders chat stays put
    meter.set_holders(AVATAR, 100)
    buyers = [f"0x{buyer:040x}" for buyer in range(300)]
    for buyer in buyers:
        meter.key_bought(MODEL, AVATAR, buyer, new_holder=True)
    meter.set_holders(AVATAR, 400)
    young = leading_boost(meter, forecaster)  # 300 bought this minute, and 600 more to come at this pace
    traffic.run(90, 0.25, AVATAR)  # a minute and a half, and none of them chatted
    [avatar] = meter.snapshot().models[MODEL].avatars
    assert confidence(avatar, POLICY) == POLICY.warm_pool_share
    unproven = leading_boost(meter, forecaster)
    share = POLICY.warm_pool_share
    assert unproven == pytest.approx(young * 300 * share / (300 + 600 * share), rel=0.05)
    for buyer in buyers[:15]:  # 5 % of them chat: half way to believing the whole cohort
        with meter.track(MODEL, AVATAR, buyer) as stream:
            stream.admitted()
    [avatar] = meter.snapshot().models[MODEL].avatars
    assert confidence(avatar, POLICY) == pytest.approx(POLICY.warm_pool_share + (1 - POLICY.warm_pool_share) / 2)
    for buyer in buyers[15:30]:
        with meter.track(MODEL, AVATAR, buyer) as stream:
            stream.admitted()
    [avatar] = meter.snapshot().models[MODEL].avatars
    assert confidence(avatar, POLICY) == 1.0
    assert leading_boost(meter, forecaster) > 3 * unproven


def test_a_backed_cohort_s_first_messages_are_forecast_over_the_lead_window(
    meter: DemandMeter, traffic: Traffic
) -> None:
    forecaster = Forecaster(POLICY)
    traffic.run(1_000, 0.01, AVATAR)  # holders who barely chat: what new holders add is their first message
    meter.set_holders(AVATAR, 10_000)
    buyers = [f"0x{buyer:040x}" for buyer in range(300)]
    for buyer in buyers:
        meter.key_bought(MODEL, AVATAR, buyer, new_holder=True)
    meter.set_holders(AVATAR, 10_300)
    traffic.run(90, 0.01, AVATAR)
    speculators = leading_boost(meter, forecaster)  # none chatted: a warm pool, no first messages
    for buyer in buyers[:30]:  # 10 % chatted: the cohort is believed
        with meter.track(MODEL, AVATAR, buyer) as stream:
            stream.admitted()
    believed = leading_boost(meter, forecaster)
    assert speculators < 0.01
    assert believed == pytest.approx(270 / LEAD_WINDOW_S, rel=0.05)  # the 270 silent ones, over the window


@pytest.mark.parametrize(("warm_pool_share", "evidence_share"), [(-0.1, 0.1), (1.1, 0.1), (0.2, 0.0), (0.2, 1.5)])
def test_the_evidence_shares_are_bounded(warm_pool_share: float, evidence_share: float) -> None:
    with pytest.raises(ValueError, match="warm_pool_share"):
        ScalingPolicy(warm_pool_share=warm_pool_share, evidence_share=evidence_share)


def test_the_earnings_signal_rises_ahead_of_the_peak() -> None:
    _, before, after = boost_from_new_holders(chatty=True)
    assert after.models[0].demand.figures.arrivals_per_s == before.models[0].demand.figures.arrivals_per_s
    current, ahead = expected_earnings(before), expected_earnings(after)
    assert int(ahead.current) == int(current.current) > 0  # nothing more is paid yet
    # The new holders' chat is forecast, not yet paid: the two nodes serving now would share it.
    assert int(ahead.forecast) > int(current.forecast) * 1.5
    assert int(ahead.forecast) > int(ahead.current)
    # Never more than a node's streams can serve: 8 streams of 20 s at 10**15 wei a reply.
    assert int(ahead.forecast) <= POLICY.streams_per_node * 3_600 // 20 * 10**15 * 1.01


def test_no_node_goes_while_fans_wait(
    forecaster: Forecaster, meter: DemandMeter, traffic: Traffic, clock: FakeClock
) -> None:
    traffic.run(300, 2.0, AVATAR)  # 40 streams → 7 nodes
    assert decide(forecaster, meter, 7).desired_nodes == 7
    traffic.run(1, 1.0, AVATAR, queue=True)  # one fan waits, and keeps waiting
    dropped_at = clock.now
    while clock.now < dropped_at + 600:  # twice the window after which demand this low lets nodes go
        traffic.run(10, 0.2, AVATAR)
        decision = decide(forecaster, meter, 7)
        assert decision.desired_nodes == 7
    assert decision.reason == "hold: 1 fans wait for a stream"


def test_above_the_count_the_floor_reacts_without_the_hpas_tolerance() -> None:
    # 68 streams x 1.25 / 8 = 10.6 nodes: within the HPA's 10 % of 10, which the HPA applies itself.
    assert POLICY.reactive_nodes(68, 10) == 11
    assert POLICY.reactive_nodes(60, 10) == 10  # 9.4 nodes: within 10 % below, the count is kept
    assert POLICY.reactive_nodes(40, 10) == 7
