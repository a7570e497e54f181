"""app.market.curve is the contract's arithmetic, integer for integer, on random inputs."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.contract import Contract

from app.chain.embedded import EmbeddedChain
from app.market import curve
from tests.contracts.conftest import DIVISOR, FAR_DEADLINE, avatar_id, send

AVATAR = avatar_id(0xC0FFEE, 0)  # created by the owner, dev account 0
# The snapshot fixture is per test, not per example: examples only read, or revert what they wrote.
SHARED_CHAIN = {"suppress_health_check": [HealthCheck.function_scoped_fixture], "deadline": None}

supplies = st.one_of(st.integers(0, 1_000), st.integers(0, 10_000_000), st.integers(0, curve.MAX_SUPPLY))
amounts = st.one_of(st.integers(0, 100), st.integers(0, 1_000_000))
fee_percents = st.integers(0, curve.MAX_FEE_PERCENT)


@settings(max_examples=300, **SHARED_CHAIN)
@given(supply=supplies, amount=amounts)
def test_price_equals_get_price(twin_keys: Contract, supply: int, amount: int) -> None:
    assert twin_keys.functions.getPrice(supply, amount).call() == curve.price(supply, amount, DIVISOR)


@given(supply=supplies, amount=amounts, split=st.integers(0, 1_000_000))
def test_price_is_path_independent(supply: int, amount: int, split: int) -> None:
    """Buying in two steps costs what buying at once does: prices are differences of one function."""
    first = min(split, amount)
    two_steps = curve.price(supply, first, DIVISOR) + curve.price(supply + first, amount - first, DIVISOR)
    assert two_steps == curve.price(supply, amount, DIVISOR)


@settings(max_examples=40, **SHARED_CHAIN)
@given(supply=st.integers(1, 60), amount=st.integers(1, 60), protocol_fee=fee_percents, creator_fee=fee_percents)
def test_quotes_with_fees_equal_the_contract(
    chain: EmbeddedChain,
    twin_keys: Contract,
    owner: LocalAccount,
    supply: int,
    amount: int,
    protocol_fee: int,
    creator_fee: int,
) -> None:
    snapshot = chain.take_snapshot()
    try:
        send(twin_keys.functions.setProtocolFeePercent(protocol_fee), owner)
        send(twin_keys.functions.setCreatorFeePercent(creator_fee), owner)
        cost = curve.buy_total(0, supply, DIVISOR, protocol_fee, creator_fee)
        send(twin_keys.functions.createAvatar(AVATAR, "uri", supply, cost, FAR_DEADLINE), owner, value=cost)
        functions = twin_keys.functions
        assert functions.getBuyPriceAfterFee(AVATAR, amount).call() == curve.buy_total(
            supply, amount, DIVISOR, protocol_fee, creator_fee
        )
        sellable = min(amount, supply - 1)  # the last key cannot be sold
        if sellable:
            assert functions.getSellPriceAfterFee(AVATAR, sellable).call() == curve.sell_proceeds(
                supply, sellable, DIVISOR, protocol_fee, creator_fee
            )
    finally:
        chain.revert_to_snapshot(snapshot)
