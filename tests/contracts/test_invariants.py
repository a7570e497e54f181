"""Random launches, buys, sells, withdrawals, fee changes and pauses by several accounts; after every
step the market's invariants hold against the deployed contract, and its state equals a Python model.

Invariants (contracts/README.md lists them):
  I1  keysSupply(id) == Σ keysBalance(id, holder)
  I2  ETH held == Σ cumulativePrice(keysSupply(id)) + Σ creatorFees(id) + Σ protocolFees(id), to the wei
  I3  buying keys and selling them straight back never returns more than was paid
  I4  fee percents stay within MAX_FEE_PERCENT
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from web3.contract import Contract

from app.chain.embedded import EmbeddedChain
from app.market import curve
from tests.contracts.conftest import DEFAULT_FEE, DIVISOR, FAR_DEADLINE, avatar_id, events, send, simulate_error

MAX_AVATARS = 3
TRADER_COUNT = 3
fee_percents = st.integers(0, curve.MAX_FEE_PERCENT + 10**16)  # sometimes above the cap, which must revert


@dataclass
class MarketModel:
    creator: str
    supply: int
    balances: dict[str, int] = field(default_factory=dict)
    creator_fees: int = 0
    protocol_fees: int = 0


class TwinKeysMachine(RuleBasedStateMachine):
    chain: EmbeddedChain
    twin_keys: Contract
    owner: LocalAccount
    traders: list[LocalAccount]

    def __init__(self) -> None:
        super().__init__()
        self.snapshot = self.chain.take_snapshot()
        self.markets: dict[bytes, MarketModel] = {}
        self.protocol_fee = DEFAULT_FEE
        self.creator_fee = DEFAULT_FEE
        self.paused = False

    def teardown(self) -> None:
        self.chain.revert_to_snapshot(self.snapshot)

    # ------------------------------------------------------------ helpers

    def _trade(self, market: MarketModel, trader: str, amount: int) -> tuple[int, int, int]:
        """Apply a trade of ±amount to the model; return (price, protocol fee, creator fee)."""
        supply_before = market.supply if amount > 0 else market.supply + amount
        price = curve.price(supply_before, abs(amount), DIVISOR)
        protocol_fee, creator_fee = curve.fees(price, self.protocol_fee, self.creator_fee)
        market.supply += amount
        market.balances[trader] = market.balances.get(trader, 0) + amount
        market.creator_fees += creator_fee
        market.protocol_fees += protocol_fee
        return price, protocol_fee, creator_fee

    def _avatar(self, index: int) -> tuple[bytes, MarketModel]:
        avatar = sorted(self.markets)[index % len(self.markets)]
        return avatar, self.markets[avatar]

    # ------------------------------------------------------------ rules

    @precondition(lambda self: len(self.markets) < MAX_AVATARS)
    @rule(creator=st.integers(0, TRADER_COUNT - 1), amount=st.integers(1, 20), overpay=st.integers(0, 10**15))
    def launch(self, creator: int, amount: int, overpay: int) -> None:
        account = self.traders[creator]
        avatar = avatar_id(len(self.markets) + 1, account.address)
        cost = curve.buy_total(0, amount, DIVISOR, self.protocol_fee, self.creator_fee)
        function = self.twin_keys.functions.createAvatar(avatar, "uri", amount, cost, FAR_DEADLINE)
        if self.paused:
            assert simulate_error(function, account, cost) == "EnforcedPause"
            return
        send(function, account, value=cost + overpay)
        self.markets[avatar] = MarketModel(creator=account.address, supply=0)
        self._trade(self.markets[avatar], account.address, amount)

    @precondition(lambda self: self.markets)
    @rule(
        trader=st.integers(0, TRADER_COUNT - 1),
        index=st.integers(0, MAX_AVATARS - 1),
        amount=st.integers(1, 30),
        overpay=st.integers(0, 10**15),
    )
    def buy(self, trader: int, index: int, amount: int, overpay: int) -> None:
        account = self.traders[trader]
        avatar, market = self._avatar(index)
        cost = curve.buy_total(market.supply, amount, DIVISOR, self.protocol_fee, self.creator_fee)
        function = self.twin_keys.functions.buyKeys(avatar, amount, cost, FAR_DEADLINE)
        if self.paused:
            assert simulate_error(function, account, cost) == "EnforcedPause"
            return
        send(function, account, value=cost + overpay)
        self._trade(market, account.address, amount)

    @precondition(lambda self: self.markets)
    @rule(trader=st.integers(0, TRADER_COUNT - 1), index=st.integers(0, MAX_AVATARS - 1), amount=st.integers(1, 30))
    def sell(self, trader: int, index: int, amount: int) -> None:
        account = self.traders[trader]
        avatar, market = self._avatar(index)
        function = self.twin_keys.functions.sellKeys(avatar, amount, 0, FAR_DEADLINE)
        if amount >= market.supply:
            assert simulate_error(function, account) == "CannotSellLastKey"
        elif market.balances.get(account.address, 0) < amount:
            assert simulate_error(function, account) == "InsufficientKeys"
        else:
            send(function, account)
            self._trade(market, account.address, -amount)

    @precondition(lambda self: self.markets and not self.paused)
    @rule(trader=st.integers(0, TRADER_COUNT - 1), index=st.integers(0, MAX_AVATARS - 1), amount=st.integers(1, 30))
    def buy_then_sell(self, trader: int, index: int, amount: int) -> None:
        """I3: the round trip loses at least the fees, and never gains."""
        account = self.traders[trader]
        avatar, market = self._avatar(index)
        cost = curve.buy_total(market.supply, amount, DIVISOR, self.protocol_fee, self.creator_fee)
        bought = send(self.twin_keys.functions.buyKeys(avatar, amount, cost, FAR_DEADLINE), account, value=cost)
        sold = send(self.twin_keys.functions.sellKeys(avatar, amount, 0, FAR_DEADLINE), account)
        buy_event = events(self.twin_keys, "Trade", bought)[0]
        sell_event = events(self.twin_keys, "Trade", sold)[0]
        paid = buy_event["ethAmount"] + buy_event["protocolEthAmount"] + buy_event["subjectEthAmount"]
        received = sell_event["ethAmount"] - sell_event["protocolEthAmount"] - sell_event["subjectEthAmount"]
        assert paid == cost
        assert received <= paid
        self._trade(market, account.address, amount)
        self._trade(market, account.address, -amount)

    @precondition(lambda self: self.markets)
    @rule(index=st.integers(0, MAX_AVATARS - 1))
    def withdraw_creator_fees(self, index: int) -> None:
        avatar, market = self._avatar(index)
        creator = next(account for account in self.traders if account.address == market.creator)
        function = self.twin_keys.functions.withdrawCreatorFees(avatar, creator.address)
        if market.creator_fees == 0:
            assert simulate_error(function, creator) == "NothingToWithdraw"
            return
        send(function, creator)
        market.creator_fees = 0

    @precondition(lambda self: self.markets)
    @rule(chosen=st.sets(st.integers(0, MAX_AVATARS - 1), min_size=1))
    def withdraw_protocol_fees(self, chosen: set[int]) -> None:
        avatars = {self._avatar(index)[0] for index in chosen}
        function = self.twin_keys.functions.withdrawProtocolFees(sorted(avatars), self.owner.address)
        if all(self.markets[avatar].protocol_fees == 0 for avatar in avatars):
            assert simulate_error(function, self.owner) == "NothingToWithdraw"
            return
        send(function, self.owner)
        for avatar in avatars:
            self.markets[avatar].protocol_fees = 0

    @rule(protocol_fee=fee_percents, creator_fee=fee_percents)
    def set_fees(self, protocol_fee: int, creator_fee: int) -> None:
        for setter, value, attribute in (
            (self.twin_keys.functions.setProtocolFeePercent, protocol_fee, "protocol_fee"),
            (self.twin_keys.functions.setCreatorFeePercent, creator_fee, "creator_fee"),
        ):
            if value > curve.MAX_FEE_PERCENT:
                assert simulate_error(setter(value), self.owner) == "FeeTooHigh"
            else:
                send(setter(value), self.owner)
                setattr(self, attribute, value)

    @rule()
    def toggle_pause(self) -> None:
        functions = self.twin_keys.functions
        send(functions.unpause() if self.paused else functions.pause(), self.owner)
        self.paused = not self.paused

    # ------------------------------------------------------------ invariants

    @invariant()
    def market_state_matches_model_and_supply_is_sum_of_balances(self) -> None:
        functions = self.twin_keys.functions
        for avatar, market in self.markets.items():
            supply = functions.keysSupply(avatar).call()
            balances = [functions.keysBalance(avatar, trader.address).call() for trader in self.traders]
            assert supply == market.supply == sum(balances)  # I1
            assert balances == [market.balances.get(trader.address, 0) for trader in self.traders]
            assert functions.creatorFees(avatar).call() == market.creator_fees
            assert functions.protocolFees(avatar).call() == market.protocol_fees

    @invariant()
    def eth_held_is_reserves_plus_unclaimed_fees(self) -> None:  # I2
        expected = sum(
            curve.cumulative_price(market.supply, DIVISOR) + market.creator_fees + market.protocol_fees
            for market in self.markets.values()
        )
        assert self.chain.w3.eth.get_balance(self.twin_keys.address) == expected

    @invariant()
    def fees_within_caps(self) -> None:  # I4
        functions = self.twin_keys.functions
        assert functions.protocolFeePercent().call() == self.protocol_fee <= curve.MAX_FEE_PERCENT
        assert functions.creatorFeePercent().call() == self.creator_fee <= curve.MAX_FEE_PERCENT
        assert functions.paused().call() is self.paused


def test_twin_keys_invariants(
    chain: EmbeddedChain, twin_keys: Contract, owner: LocalAccount, accounts: list[LocalAccount]
) -> None:
    TwinKeysMachine.chain = chain
    TwinKeysMachine.twin_keys = twin_keys
    TwinKeysMachine.owner = owner
    TwinKeysMachine.traders = accounts[1 : 1 + TRADER_COUNT]
    run_state_machine_as_test(
        TwinKeysMachine, settings=settings(max_examples=25, stateful_step_count=20, deadline=None)
    )
