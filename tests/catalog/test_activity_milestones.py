"""The activity feed's milestones, read from the index after real trades on the embedded chain: an
avatar's first holder besides its creator, its 5th and 10th holder, its market cap passing round
figures, each right after the trade that reached it, and announced once."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.catalog.activity import event_json
from app.catalog.movement import ActivityEvent, recent_activity
from app.chain.client import Chain
from app.market import curve
from tests.helpers import buy, index, launch, sell

DIVISOR = 1_600_000


async def feed(app: Litestar) -> list[ActivityEvent]:
    async with app.state.services.sessions() as session:
        return await recent_activity(session, limit=100, divisor=DIVISOR)


def described(events: list[ActivityEvent]) -> list[str]:
    """The feed oldest first, one word per trade and the milestones in full."""
    return [event.summary if event.kind == "milestone" else event.kind for event in reversed(events)]


async def test_milestones_follow_the_trades_that_reached_them_once(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain
) -> None:
    creator, *fans = chain.dev_accounts[1:10]
    owner = chain.dev_accounts[0]
    avatar_id = await launch(client, chain, creator, "milestones")
    buy(chain, creator, avatar_id, 1)  # the creator's own buy: no milestone
    for fan in [*fans, owner]:  # nine more holders: the first outside one, the 5th and the 10th holder
        buy(chain, fan, avatar_id, 1)
    buy(chain, fans[0], avatar_id, 1)  # a holder buying more: not a new holder
    sell(chain, fans[1], avatar_id, 1)  # 9 holders again
    buy(chain, fans[1], avatar_id, 1)  # the 10th holder once more: reached before, not announced again
    supply = 12
    assert curve.market_cap(supply, DIVISOR) < 10**15
    assert curve.market_cap(40, DIVISOR) >= 10**16  # to 40 keys: the market cap passes 0.001 and 0.01 ETH
    buy(chain, fans[2], avatar_id, 40 - supply)
    await index(app)

    events = await feed(app)

    assert described(events) == [
        "launch",
        "buy",
        "buy",
        "has its first holder besides its creator",
        "buy",
        "buy",
        "buy",
        "reached 5 holders",
        "buy",
        "buy",
        "buy",
        "market cap passed 0.0001 ETH",  # supply 9
        "buy",
        "buy",
        "reached 10 holders",
        "buy",
        "sell",
        "buy",
        "buy",
        "market cap passed 0.001 ETH",
        "market cap passed 0.01 ETH",
    ]
    keys = [event.key for event in reversed(events)]
    assert keys == sorted(keys)  # a milestone sorts right after its trade
    assert len(set(keys)) == len(keys)
    milestone = next(event for event in events if event.threshold == 10**16)
    assert event_json(milestone, DIVISOR) | {"at": None} == event_json(milestone, DIVISOR) | {
        "at": None,
        "kind": "milestone",
        "milestone": "market_cap",
        "threshold": str(10**16),
        "summary": "market cap passed 0.01 ETH",
        "actor": fans[2].address,
    }


async def test_the_feed_read_after_a_trade_gives_only_the_newer_trades_with_their_milestones(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain
) -> None:
    creator, fan = chain.dev_accounts[1:3]
    avatar_id = await launch(client, chain, creator, "later")
    await index(app)
    (launched,) = await feed(app)
    buy(chain, fan, avatar_id, 1)
    await index(app)

    async with app.state.services.sessions() as session:
        newer = await recent_activity(session, limit=50, divisor=DIVISOR, after_trade_id=launched.trade_id)

    assert [(event.kind, event.milestone) for event in newer] == [("milestone", "first_outside_buyer"), ("buy", None)]
