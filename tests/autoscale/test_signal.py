"""The signal on HTTP as KEDA and the operations page read it, its history, its Prometheus gauges, and
key buys from the chain reaching it. The backend runs under uvicorn in the test's event loop, so the
test ticks the autoscaler itself."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime

import pytest

from app.autoscale.meter import DemandMeter
from app.autoscale.service import AutoscaleService
from app.chain.client import Chain
from app.config import Settings
from tests.autoscale.conftest import MODEL
from tests.chat.conftest import Served, serving
from tests.helpers import buy, launch

AVATAR = "0x" + "ab" * 16
SIGNAL_FIELDS = {
    "decision_id",
    "decided_at",
    "desired_nodes",
    "current_nodes",
    "previous_nodes",
    "direction",
    "reason",
    "demand_streams",
    "forecast_streams",
    "streams_per_node",
    "expected_earnings_wei_per_node_hour",
    "acks",
    "models",
}


@pytest.fixture
async def served(settings: Settings, chain: Chain) -> AsyncIterator[Served]:
    async with serving(settings, chain) as running:
        yield running


def autoscale_of(served: Served) -> AutoscaleService:
    return served.app.state.services.autoscale


class LaterClock:
    """Real time, moved forward at will: a stream's twenty seconds pass at once."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock(served: Served) -> LaterClock:
    """The autoscaler's meter on a clock the test moves."""
    later = LaterClock()
    autoscale_of(served).meter = DemandMeter(clock=later)
    return later


@contextlib.contextmanager
def queued(served: Served, clock: LaterClock, fans: int) -> Iterator[None]:
    """Ten paid replies of 20 s each, then ``fans`` messages waiting for a stream while the block runs."""
    meter = autoscale_of(served).meter
    for fan in range(10):
        with meter.track(MODEL, AVATAR, f"0xpaid{fan}") as stream:
            stream.admitted()
            clock.offset += 20
            stream.finished(tokens=50, paid_wei=10**15)
    with contextlib.ExitStack() as waiting:
        for fan in range(fans):
            waiting.enter_context(meter.track(MODEL, AVATAR, f"0xwaiting{fan}"))
        yield


async def test_the_signal_answers_with_a_decision(served: Served) -> None:
    http = await served.signed_in(served.chain.dev_accounts[3])
    response = await http.get("/api/autoscale/signal")
    assert response.status_code == 200
    signal = response.json()
    assert set(signal) == SIGNAL_FIELDS
    assert re.fullmatch(r"[0-9a-f]{32}", signal["decision_id"])
    assert signal["current_nodes"] == 1  # the in-process node, per the registry
    assert signal["desired_nodes"] == 1
    assert signal["streams_per_node"] == served.app.state.services.settings.chat_streams_per_node
    assert signal["models"] == []
    assert signal["expected_earnings_wei_per_node_hour"] == {"current": "0", "forecast": "0"}


async def test_queued_fans_raise_the_signal(served: Served, clock: LaterClock) -> None:
    http = await served.signed_in(served.chain.dev_accounts[3])
    first = await autoscale_of(served).tick()
    with queued(served, clock, 40):
        decision = await autoscale_of(served).tick()
        signal = (await http.get("/api/autoscale/signal")).json()
    assert signal["decision_id"] == decision.decision_id != first.decision_id
    assert (signal["direction"], signal["previous_nodes"]) == ("up", 1)
    assert signal["desired_nodes"] == decision.desired_nodes > 1
    assert signal["reason"].startswith("up: ")
    (model,) = signal["models"]
    assert (model["model"], model["queue_depth"], model["demand_streams"]) == (MODEL, 40, 40)
    cold_start_s = served.app.state.services.settings.autoscale_cold_start_s
    assert model["forecast_streams"] >= 40 * 20 / cold_start_s  # at least the backlog, drained within a cold start
    assert int(signal["expected_earnings_wei_per_node_hour"]["forecast"]) > 0  # 10 paid replies set the price
    assert model["top_avatars"][0]["avatar_id"] == AVATAR


async def test_the_signal_narrows_to_a_known_model_and_refuses_an_unknown_one(
    served: Served, clock: LaterClock
) -> None:
    http = await served.signed_in(served.chain.dev_accounts[3])
    with queued(served, clock, 5):
        await autoscale_of(served).tick()
        narrowed = await http.get("/api/autoscale/signal", params={"model": MODEL})
        unknown = await http.get("/api/autoscale/signal", params={"model": "gpt-nonexistent"})
        too_long = await http.get("/api/autoscale/signal", params={"model": "m" * 200})
    assert narrowed.status_code == 200
    assert [model["model"] for model in narrowed.json()["models"]] == [MODEL]
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "unknown_model"
    assert MODEL in unknown.json()["detail"]
    assert too_long.status_code == 400
    assert too_long.json()["error"] == "invalid_request"


async def test_history_has_a_point_per_tick(served: Served, clock: LaterClock) -> None:
    http = await served.signed_in(served.chain.dev_accounts[3])
    await autoscale_of(served).tick()
    with queued(served, clock, 24):
        await autoscale_of(served).tick()
        await autoscale_of(served).tick()
    history = (await http.get("/api/autoscale/history")).json()
    assert [set(point) for point in history["points"]] == [
        {"timestamp", "demand", "forecast", "desired", "current"}
    ] * 3
    assert [point["demand"] for point in history["points"]] == [0, 24, 24]
    moments = [datetime.fromisoformat(point["timestamp"]) for point in history["points"]]
    assert moments == sorted(moments)
    last_two = (await http.get("/api/autoscale/history", params={"points": 2})).json()["points"]
    assert last_two == history["points"][1:]
    refused = await http.get("/api/autoscale/history", params={"points": 0})
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_request"


async def test_metrics_show_the_gauges_in_base_units_without_fans(served: Served, clock: LaterClock) -> None:
    http = await served.signed_in(served.chain.dev_accounts[3])
    with queued(served, clock, 30):
        decision = await autoscale_of(served).tick()
    metrics = (await http.get("/metrics")).text
    assert f"twin_autoscale_desired_nodes {decision.desired_nodes:.1f}" in metrics
    assert "twin_autoscale_current_nodes 1.0" in metrics
    assert f'twin_autoscale_queue_depth{{model="{MODEL}"}} 30.0' in metrics
    forecast = re.search(rf'twin_autoscale_forecast_streams{{model="{MODEL}"}} ([0-9.e+]+)', metrics)
    assert forecast is not None
    assert float(forecast.group(1)) == pytest.approx(decision.forecast_streams)
    autoscale_lines = [line for line in metrics.splitlines() if line.startswith("twin_autoscale_")]
    assert not [line for line in autoscale_lines if "0x" in line or "fan" in line or "avatar" in line]


async def test_key_buys_on_chain_reach_the_signal(served: Served) -> None:
    chain = served.chain
    http = await served.signed_in(chain.dev_accounts[1])
    avatar_id = await launch(http, chain, chain.dev_accounts[1], "viral")  # the creator's first key
    for fan in chain.dev_accounts[2:5]:
        buy(chain, fan, avatar_id, 1)
    buy(chain, chain.dev_accounts[2], avatar_id, 2)  # more keys for a holder: a buy, not a new holder
    await served.index()
    await autoscale_of(served).tick()
    (model,) = (await http.get("/api/autoscale/signal")).json()["models"]
    assert model["model"] == "twin-offline-demo"
    (avatar,) = model["top_avatars"]
    assert avatar == {
        "avatar_id": avatar_id,
        "arrivals_per_s": 0.0,
        "key_buys": 5,
        "new_holders": 4,
        "silent_new_holders": 4,
        "holders": 4,
    }
    buy(chain, chain.dev_accounts[5], avatar_id, 1)
    await served.index()
    await autoscale_of(served).tick()
    (model,) = (await http.get("/api/autoscale/signal")).json()["models"]
    assert model["top_avatars"][0]["new_holders"] == 5  # each trade is fed once: the cursor moved on
