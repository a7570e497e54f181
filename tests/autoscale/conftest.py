"""A fake clock and deterministic chat traffic through a demand meter."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from app.autoscale.meter import DemandMeter, MeteredStream

MODEL = "twin-offline-demo"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Traffic:
    """Messages at a steady pace, each served at once for ``service_s`` — no randomness, so no trend."""

    meter: DemandMeter
    clock: FakeClock
    service_s: float = 20.0
    _streams: list[tuple[float, MeteredStream]] = field(default_factory=list)
    _owed: dict[str, float] = field(default_factory=dict)  # fractions of a message, per avatar
    _sent: int = 0

    def run(self, seconds: int, per_second: float, avatar: str, model: str = MODEL, *, queue: bool = False) -> None:
        """``seconds`` seconds of ``per_second`` messages each, from fans who send one message each;
        with ``queue`` they wait for a stream that never comes (no node serves them)."""
        for _ in range(seconds):
            self.clock.now += 1
            for done in [entry for entry in self._streams if entry[0] <= self.clock.now]:
                self._streams.remove(done)
                done[1].finished(tokens=100, paid_wei=10**15)
            self._owed[avatar] = self._owed.get(avatar, 0.0) + per_second
            while self._owed[avatar] >= 1:
                self._owed[avatar] -= 1
                self._sent += 1
                stream = self.meter.track(model, avatar, f"fan-{self._sent}").__enter__()
                if queue:
                    continue
                stream.admitted()
                stream.first_token()
                self._streams.append((self.clock.now + self.service_s, stream))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def meter(clock: FakeClock) -> DemandMeter:
    return DemandMeter(clock=clock)


@pytest.fixture
def traffic(meter: DemandMeter, clock: FakeClock) -> Traffic:
    return Traffic(meter, clock)
