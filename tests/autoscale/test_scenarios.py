"""The simulator's scenario generator: each family is what it claims, and one seed is one trace; and
the report runs end to end."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from app.chat.admission import AdmissionPolicy, MemoryAdmission
from bench.autoscale_scenarios import DURATION_S, FAMILIES, LONG_LEAD_S, SHORT_LEAD_S, WARM_UP_S, Trace

SEEDS = range(4)
BENCH = Path(__file__).resolve().parents[2] / "bench" / "autoscale_sim.py"


def first_chats(trace: Trace) -> dict[str, float]:
    firsts: dict[str, float] = {}
    for chat in trace.chats:
        firsts.setdefault(chat.fan, chat.at)
    return firsts


@pytest.mark.parametrize("family", FAMILIES)
def test_one_seed_is_one_trace_and_seeds_differ(family: str) -> None:
    first, again, other = FAMILIES[family](3), FAMILIES[family](3), FAMILIES[family](4)
    assert first == again
    assert first.chats != other.chats
    assert [chat.at for chat in first.chats] == sorted(chat.at for chat in first.chats)
    assert all(0 <= chat.at < DURATION_S and chat.service_s > 0 for chat in first.chats)
    assert set(first.models) == set(first.holders)  # every avatar is served by a model
    assert {chat.avatar for chat in first.chats} <= set(first.models)


@pytest.mark.parametrize("family", ["surge_no_buys", "diurnal"])
def test_surges_without_buys_have_none(family: str) -> None:
    for seed in SEEDS:
        trace = FAMILIES[family](seed)
        assert trace.buys == []
        assert trace.lead_s is None
        busiest = max(
            sum(1 for chat in trace.chats if start <= chat.at < start + 300)
            for start in range(int(WARM_UP_S), int(DURATION_S) - 300, 60)
        )
        assert busiest > 1.5 * trace.steady_rate * 300  # and yet chat surges


@pytest.mark.parametrize(("family", "lead_s"), [("buys_long_lead", LONG_LEAD_S), ("buys_short_lead", SHORT_LEAD_S)])
def test_every_lead_is_within_the_familys_range(family: str, lead_s: tuple[float, float]) -> None:
    leads = []
    for seed in SEEDS:
        trace = FAMILIES[family](seed)
        assert trace.lead_s == lead_s
        firsts = first_chats(trace)
        leads += [firsts[buy.buyer] - buy.at for buy in trace.buys if buy.new_holder and buy.buyer in firsts]
    assert len(leads) > 1_000
    assert lead_s[0] <= min(leads)
    assert max(leads) <= lead_s[1]
    assert max(leads) - min(leads) > 0.9 * (lead_s[1] - lead_s[0])  # the whole range, not one value


def test_cascades_overlap_on_both_models_and_keep_their_leads() -> None:
    for seed in SEEDS:
        trace = FAMILIES["cascade"](seed)
        spiking = set(trace.holders) - {"ada", "ben"}
        assert 2 <= len(spiking) <= 4
        if trace.lead_s is not None:
            firsts = first_chats(trace)
            leads = [firsts[buy.buyer] - buy.at for buy in trace.buys if buy.new_holder and buy.buyer in firsts]
            assert all(trace.lead_s[0] <= lead <= trace.lead_s[1] for lead in leads)
    assert {model for seed in SEEDS for model in FAMILIES["cascade"](seed).models.values()} == {"model-a", "model-b"}


def test_false_alarms_buy_and_never_chat() -> None:
    for seed in SEEDS:
        trace = FAMILIES["false_alarm"](seed)
        buyers = {buy.buyer for buy in trace.buys if buy.new_holder}
        assert len(buyers) >= 300
        assert not buyers & {chat.fan for chat in trace.chats}


def test_flash_crowds_vanish() -> None:
    for seed in SEEDS:
        trace = FAMILIES["flash_crowd"](seed)
        crowd = [chat.at for chat in trace.chats if chat.avatar == "av0" and chat.at >= WARM_UP_S]
        after = [at for at in crowd if at > WARM_UP_S + 150]  # the longest crowd lasts 140 s
        # Afterwards the avatar chats as before the crowd, if at all: a few messages a second at most.
        assert len(after) / (DURATION_S - WARM_UP_S - 150) < 1.0 < len(crowd) / 150


def test_nodes_fail_only_in_their_family_and_during_the_spike() -> None:
    for seed in SEEDS:
        failures = FAMILIES["node_failure"](seed).failures
        assert len(failures) == 1
        assert WARM_UP_S < failures[0].at < WARM_UP_S + 600
        assert 0.3 <= failures[0].fraction <= 0.6
        assert all(not FAMILIES[family](seed).failures for family in FAMILIES if family != "node_failure")


def test_the_report_runs_end_to_end() -> None:
    run = subprocess.run(
        [sys.executable, str(BENCH), "--scenarios", "1", "--families", "false_alarm", "--jobs", "1"],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    lines = run.stdout.splitlines()
    assert any(line.startswith("| false_alarm (1) |") for line in lines)  # the fixed-seed table
    family = next(line.split() for line in lines if line.startswith("false_alarm "))
    assert family[1] == "1"  # one random scenario besides the fixed one
    assert any(line.startswith("goals: median miss ratio <= 0.5 ") for line in lines)
    assert any("MAPE" in line for line in lines)
    assert any(line.startswith("over 1.05x reactive: ") for line in lines)  # the small counts, in messages


def test_both_policies_draw_the_same_join_delays(monkeypatch: pytest.MonkeyPatch) -> None:
    """Common random numbers: the n-th node asked for in a sync period joins as late whatever was asked before."""
    monkeypatch.syspath_prepend(str(BENCH.parent))
    import autoscale_sim as sim

    async def delays(asks: list[tuple[float, int]]) -> list[list[float]]:
        cluster = sim.Cluster(MemoryAdmission(0, AdmissionPolicy(max_waiting=10), clock=sim.now), "f:1", 1)
        asked = []
        for at, replicas in asks:
            await asyncio.sleep(at - sim.now())
            before = len(cluster.nodes)
            await cluster.scale_to(replicas)
            asked.append([node.ready_at - node.asked_at for node in cluster.nodes[before:]])
        for joining in cluster.joining:
            joining.cancel()
        return asked

    # One policy asks for 9 more nodes at 15 s, the other for 2; both ask for 3 more at 30 s.
    eager = sim.SimulatedTimeLoop().run_until_complete(delays([(15.0, 10), (30.0, 13)]))
    lazy = sim.SimulatedTimeLoop().run_until_complete(delays([(15.0, 3), (30.0, 6)]))
    assert eager[0][:2] == lazy[0]
    assert eager[1] == lazy[1]
    assert len(set(eager[0])) == 9  # and yet each node draws its own
