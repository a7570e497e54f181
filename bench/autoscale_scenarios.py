"""Randomised traffic for the autoscale simulator: families of scenarios, each drawn from a seed.

Every scenario shares one steady world — two avatars on two models whose holders chat 0.7
messages per second together — for ``WARM_UP_S`` (so the meter knows how much holders chat), then
something happens for ``EVENT_S``. What happens is the family's; each draws its parameters (sizes,
onsets, leads, fades) from ``random.Random(seed)``, so a (family, seed) pair is one exact trace:

- ``buys_long_lead``: a burst of key buys on one avatar, its new holders start chatting 60–300 s
  after their first buy (the lead the leading indicator was built around);
- ``buys_short_lead``: the same, chat 0–30 s after the buy (a lead far shorter than a cold start);
- ``surge_no_buys``: an avatar's existing holders chat 4–12x more, ramping up over 5 s to 15 min,
  with no key buys at all;
- ``cascade``: 2–4 smaller spikes on avatars of both models, starting minutes apart and
  overlapping, each with buys (lead 0–300 s) or without;
- ``diurnal``: the whole world's chat ramps to 2–6x and back over 10–20 minutes, no buys;
- ``false_alarm``: a burst of key buys like the first family's on an avatar whose holders chat, but
  the buyers never do (speculators);
- ``flash_crowd``: 5–20x an avatar's chat within seconds, gone after 20–120 s, with or without buys;
- ``node_failure``: a spike with or without buys, during which 30–60 % of the nodes fail (the
  deployment replaces them, after a cold start).

A chat's stream duration is lognormal (mean ``MEAN_SERVICE_S``). New holders' first message comes
exactly their lead after their first buy; the family's ``lead_s`` range bounds every lead.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

WARM_UP_S = 900.0  # the meter's "earlier" window (900 to 300 s ago) is full by then
EVENT_S = 1_200.0
DURATION_S = WARM_UP_S + EVENT_S
MEAN_SERVICE_S = 20.0
SERVICE_SIGMA = 0.5  # lognormal spread of a stream's duration
TOKENS_PER_S = 25
MODELS = ("model-a", "model-b")
# The steady world: avatar → (model, holders, messages per second of all its holders).
STEADY: dict[str, tuple[str, int, float]] = {"ada": ("model-a", 300, 0.4), "ben": ("model-b", 200, 0.3)}
STEADY_RATE = sum(rate for _, _, rate in STEADY.values())

Rate = Callable[[float], float]  # a multiplier of a base rate, by time


@dataclass(frozen=True)
class Chat:
    at: float
    avatar: str
    fan: str
    service_s: float
    tokens: int


@dataclass(frozen=True)
class Buy:
    at: float
    avatar: str
    buyer: str
    new_holder: bool


@dataclass(frozen=True)
class Failure:
    at: float
    fraction: float  # of the nodes alive then


@dataclass
class Trace:
    family: str
    seed: int
    description: str
    lead_s: tuple[float, float] | None  # bounds of every new holder's buy → first message; None: no buys
    holders: dict[str, int] = field(default_factory=dict)  # at the start
    models: dict[str, str] = field(default_factory=dict)  # avatar → model
    steady_rate: float = 0.0  # messages per second before anything happens
    chats: list[Chat] = field(default_factory=list)
    buys: list[Buy] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    def finish(self) -> Trace:
        self.chats.sort(key=lambda chat: chat.at)
        self.buys.sort(key=lambda buy: buy.at)
        return self


class _Builder:
    """Draws one trace's messages and buys."""

    def __init__(self, family: str, seed: int, description: str, lead_s: tuple[float, float] | None) -> None:
        self.rng = random.Random(f"{family}:{seed}")
        self.trace = Trace(family, seed, description, lead_s)
        self._avatars = 0

    def avatar(self, holders: int, rate: float, model: str | None = None, boost: Rate | None = None) -> str:
        """A new avatar whose ``holders`` chat ``rate`` messages per second together, times ``boost(t)``."""
        name = f"av{self._avatars}"
        self._avatars += 1
        self.trace.holders[name] = holders
        self.trace.models[name] = model or self.rng.choice(MODELS)
        self.trace.steady_rate += rate
        self.holders_chat(name, rate, boost or (lambda at: 1.0))
        return name

    def steady_world(self, boost: Rate | None = None) -> None:
        for name, (model, holders, rate) in STEADY.items():
            self.trace.holders[name] = holders
            self.trace.models[name] = model
            self.trace.steady_rate += rate
            self.holders_chat(name, rate, boost or (lambda at: 1.0))

    def message(self, at: float, avatar: str, fan: str) -> None:
        service_s = self.rng.lognormvariate(math.log(MEAN_SERVICE_S) - SERVICE_SIGMA**2 / 2, SERVICE_SIGMA)
        self.trace.chats.append(Chat(at, avatar, fan, service_s, round(service_s * TOKENS_PER_S)))

    def poisson(
        self, start: float, rate: float, boost: Rate, send: Callable[[float], None], end: float = DURATION_S
    ) -> None:
        """Messages at ``rate x boost(t)`` per second from ``start`` to ``end`` (thinning; boost <= its peak)."""
        peak = rate * max(boost(at) for at in _grid(start, end))
        if peak <= 0:
            return
        at = start + self.rng.expovariate(peak)
        while at < end:
            if self.rng.random() * peak < rate * boost(at):
                send(at)
            at += self.rng.expovariate(peak)

    def holders_chat(self, avatar: str, rate: float, boost: Rate) -> None:
        holders = self.trace.holders[avatar]
        self.poisson(
            0.0, rate, boost, lambda at: self.message(at, avatar, f"{avatar}-holder-{self.rng.randrange(holders)}")
        )

    def buy_burst(
        self,
        avatar: str,
        new_holders: int,
        start: float,
        over_s: float,
        *,
        repeat_share: float = 0.2,
        prefix: str = "new",
    ) -> list[Buy]:
        """First buys of ``new_holders`` spread over ``over_s`` from ``start``, and repeat buys by holders."""
        firsts = [
            Buy(start + self.rng.random() * over_s, avatar, f"{avatar}-{prefix}-{i}", True) for i in range(new_holders)
        ]
        holders = self.trace.holders[avatar]
        repeats = [
            Buy(start + self.rng.random() * over_s, avatar, f"{avatar}-holder-{self.rng.randrange(holders)}", False)
            for _ in range(round(new_holders * repeat_share))
        ]
        self.trace.buys += firsts + repeats
        return firsts

    def new_holders_chat(
        self, buys: list[Buy], per_holder: float, lead_s: tuple[float, float], interest: Rate, end: float = DURATION_S
    ) -> None:
        """Each buyer's first message exactly a lead after the buy, then Poisson at ``per_holder x interest``."""
        for buy in buys:
            first = buy.at + self.rng.uniform(*lead_s)
            if first >= end:
                continue
            self.message(first, buy.avatar, buy.buyer)
            self.poisson(
                first, per_holder, interest, lambda at, buy=buy: self.message(at, buy.avatar, buy.buyer), end=end
            )


def _grid(start: float, end: float, step: float = 5.0) -> list[float]:
    count = max(1, int((end - start) / step))
    return [start + i * (end - start) / count for i in range(count + 1)]


def _surge(start: float, onset_s: float, hold_s: float, half_life_s: float, peak: float) -> Rate:
    """1 before ``start``; rises linearly to ``peak`` over ``onset_s``, holds ``hold_s``, then halves every
    ``half_life_s`` back towards 1."""

    def boost(at: float) -> float:
        if at < start:
            return 1.0
        if at < start + onset_s:
            return 1.0 + (peak - 1.0) * (at - start) / onset_s
        past = at - start - onset_s - hold_s
        return peak if past < 0 else 1.0 + (peak - 1.0) * 0.5 ** (past / half_life_s)

    return boost


def _fade(start: float, half_life_s: float) -> Rate:
    return lambda at: 0.5 ** (max(0.0, at - start) / half_life_s)


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


LONG_LEAD_S = (60.0, 300.0)
SHORT_LEAD_S = (0.0, 30.0)
CASCADE_LEAD_S = (0.0, 300.0)
FLASH_LEAD_S = (0.0, 10.0)
FLASH_HALF_LIFE_S = 5.0  # a flash crowd is gone within seconds of its end


def _viral(
    build: _Builder,
    lead_s: tuple[float, float],
    *,
    start: float = WARM_UP_S,
    scale: float = 1.0,
    model: str | None = None,
) -> None:
    """An avatar bought by hundreds to thousands of new holders who then chat, keener at first."""
    rng = build.rng
    holders, rate = rng.randint(80, 400), rng.uniform(0.1, 0.4)
    name = build.avatar(holders, rate, model)
    buys = build.buy_burst(name, round(rng.uniform(300, 1_200) * scale), start, rng.uniform(20, 600))
    keenness = rng.uniform(1.0, 2.0)
    build.new_holders_chat(
        buys, keenness * rate / holders, lead_s, _fade(start + rng.uniform(300, 900), rng.uniform(120, 600))
    )


def _holders_surge(build: _Builder, *, start: float = WARM_UP_S, scale: float = 1.0, model: str | None = None) -> None:
    """An avatar's existing holders chat several times more, with no key buys."""
    rng = build.rng
    onset = _log_uniform(rng, 5, 900)
    peak = 1 + (rng.uniform(4, 12) - 1) * scale
    holders, rate = rng.randint(300, 1_500), rng.uniform(0.2, 0.5)
    build.avatar(holders, rate, model, _surge(start, onset, rng.uniform(300, 900), rng.uniform(60, 300), peak))


def buys_long_lead(seed: int) -> Trace:
    build = _Builder("buys_long_lead", seed, "key buys, chat 60-300 s later", LONG_LEAD_S)
    build.steady_world()
    _viral(build, LONG_LEAD_S)
    return build.trace.finish()


def buys_short_lead(seed: int) -> Trace:
    build = _Builder("buys_short_lead", seed, "key buys, chat 0-30 s later", SHORT_LEAD_S)
    build.steady_world()
    _viral(build, SHORT_LEAD_S)
    return build.trace.finish()


def surge_no_buys(seed: int) -> Trace:
    build = _Builder("surge_no_buys", seed, "holders chat 4-12x, onset 5 s-15 min, no buys", None)
    build.steady_world()
    _holders_surge(build)
    return build.trace.finish()


def cascade(seed: int) -> Trace:
    build = _Builder("cascade", seed, "2-4 overlapping spikes on both models", CASCADE_LEAD_S)
    build.steady_world()
    start = WARM_UP_S
    for _ in range(build.rng.randint(2, 4)):
        model = build.rng.choice(MODELS)
        if build.rng.random() < 0.5:
            _viral(build, (0.0, build.rng.uniform(0, CASCADE_LEAD_S[1])), start=start, scale=0.4, model=model)
        else:
            _holders_surge(build, start=start, scale=0.5, model=model)
        start += build.rng.uniform(60, 480)
    if not build.trace.buys:
        build.trace.lead_s = None
    return build.trace.finish()


def diurnal(seed: int) -> Trace:
    build = _Builder("diurnal", seed, "all chat ramps to 2-6x and back over 10-20 min", None)
    peak, period = build.rng.uniform(2, 6), build.rng.uniform(600, 1_200)

    def boost(at: float) -> float:
        phase = min(max(0.0, at - WARM_UP_S) / period, 1.0)
        return 1 + (peak - 1) * math.sin(math.pi * phase) ** 2

    build.steady_world(boost)
    for _ in range(2):
        build.avatar(build.rng.randint(100, 400), build.rng.uniform(0.1, 0.3), boost=boost)
    return build.trace.finish()


def false_alarm(seed: int) -> Trace:
    build = _Builder("false_alarm", seed, "a burst of key buys, the buyers never chat", LONG_LEAD_S)
    build.steady_world()
    rng = build.rng
    name = build.avatar(rng.randint(80, 400), rng.uniform(0.1, 0.4))
    build.buy_burst(name, round(rng.uniform(300, 1_200)), WARM_UP_S, rng.uniform(20, 600))
    build.trace.lead_s = None  # nobody's chat follows a buy
    return build.trace.finish()


def flash_crowd(seed: int) -> Trace:
    build = _Builder("flash_crowd", seed, "5-20x within seconds, gone after 20-120 s", None)
    build.steady_world()
    rng = build.rng
    onset, lasts = rng.uniform(1, 20), rng.uniform(20, 120)
    if rng.random() < 0.5:
        peak = rng.uniform(5, 20)
        build.avatar(
            rng.randint(300, 1_500),
            rng.uniform(0.2, 0.5),
            boost=_surge(WARM_UP_S, onset, lasts - onset, FLASH_HALF_LIFE_S, peak),
        )
    else:
        holders, rate = rng.randint(80, 400), rng.uniform(0.1, 0.4)
        name = build.avatar(holders, rate)
        buys = build.buy_burst(name, round(rng.uniform(200, 800)), WARM_UP_S, onset)
        build.trace.lead_s = FLASH_LEAD_S
        build.new_holders_chat(
            buys, rng.uniform(0.005, 0.015), FLASH_LEAD_S, lambda at: 1.0, end=WARM_UP_S + onset + lasts
        )
    return build.trace.finish()


def node_failure(seed: int) -> Trace:
    build = _Builder("node_failure", seed, "a spike, then 30-60 % of nodes fail", None)
    build.steady_world()
    rng = build.rng
    if rng.random() < 0.5:
        build.trace.lead_s = LONG_LEAD_S
        _viral(build, LONG_LEAD_S)
    else:
        _holders_surge(build)
    build.trace.failures.append(Failure(WARM_UP_S + rng.uniform(120, 600), rng.uniform(0.3, 0.6)))
    return build.trace.finish()


FAMILIES: dict[str, Callable[[int], Trace]] = {
    family.__name__: family
    for family in (
        buys_long_lead,
        buys_short_lead,
        surge_no_buys,
        cascade,
        diurnal,
        false_alarm,
        flash_crowd,
        node_failure,
    )
}
