"""TwinKeys: every external function, event and revert path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError

from app.chain.artifacts import load_artifact
from app.market import curve
from tests.contracts.conftest import (
    DEFAULT_FEE,
    DIVISOR,
    FAR_DEADLINE,
    avatar_id,
    deploy,
    error_name,
    events,
    reverts,
    send,
)

AVATAR = avatar_id(0xA11CE)  # bound to the creator fixture, dev account 1
URI = "https://twin.example/avatars/a11ce.json"
ZERO_ADDRESS = "0x" + "00" * 20


def buy_cost(supply: int, amount: int) -> int:
    return curve.buy_total(supply, amount, DIVISOR, DEFAULT_FEE, DEFAULT_FEE)


def launch(twin_keys: Contract, creator: LocalAccount, amount: int = 1, avatar: bytes = AVATAR) -> None:
    cost = buy_cost(0, amount)
    send(twin_keys.functions.createAvatar(avatar, URI, amount, cost, FAR_DEADLINE), creator, value=cost)


def buy(twin_keys: Contract, trader: LocalAccount, amount: int, avatar: bytes = AVATAR) -> int:
    cost = twin_keys.functions.getBuyPriceAfterFee(avatar, amount).call()
    send(twin_keys.functions.buyKeys(avatar, amount, cost, FAR_DEADLINE), trader, value=cost)
    return cost


def past_deadline(w3: Web3) -> int:
    return w3.eth.get_block("latest")["timestamp"] - 1


@pytest.fixture
def creator(accounts: list[LocalAccount]) -> LocalAccount:
    return accounts[1]


@pytest.fixture
def fan(accounts: list[LocalAccount]) -> LocalAccount:
    return accounts[2]


# ---------------------------------------------------------------- deployment and views


def test_deployment_parameters(twin_keys: Contract, owner: LocalAccount) -> None:
    assert twin_keys.functions.curveDivisor().call() == DIVISOR
    assert twin_keys.functions.protocolFeePercent().call() == DEFAULT_FEE
    assert twin_keys.functions.creatorFeePercent().call() == DEFAULT_FEE
    assert twin_keys.functions.MAX_FEE_PERCENT().call() == curve.MAX_FEE_PERCENT
    assert twin_keys.functions.owner().call() == owner.address
    assert twin_keys.functions.treasury().call() == owner.address
    assert twin_keys.functions.paused().call() is False


@pytest.mark.parametrize(
    ("divisor", "protocol_fee", "creator_fee", "zero_treasury", "error"),
    [
        (0, 0, 0, False, "ZeroDivisor"),
        (DIVISOR, curve.MAX_FEE_PERCENT + 1, 0, False, "FeeTooHigh"),
        (DIVISOR, 0, curve.MAX_FEE_PERCENT + 1, False, "FeeTooHigh"),
        (DIVISOR, 0, 0, True, "ZeroAddress"),
    ],
)
def test_constructor_rejects_bad_parameters(
    w3: Web3,
    owner: LocalAccount,
    divisor: int,
    protocol_fee: int,
    creator_fee: int,
    zero_treasury: bool,
    error: str,
) -> None:
    treasury = ZERO_ADDRESS if zero_treasury else owner.address
    artifact = load_artifact("TwinKeys")
    constructor = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode).constructor(
        divisor, protocol_fee, creator_fee, treasury
    )
    with pytest.raises(ContractLogicError) as failure:
        w3.eth.call({"from": owner.address, "data": constructor.data_in_transaction})
    assert error_name(failure.value) == error


def test_divisor_is_a_constructor_argument(w3: Web3, owner: LocalAccount) -> None:
    """A TwinKeys deployed with friend.tech's divisor prices key 1 at 1e18 / 16,000."""
    artifact = load_artifact("TwinKeys")
    second = deploy(w3, {"abi": artifact.abi, "bytecode": artifact.bytecode}, owner, 16_000, 0, 0, owner.address)
    assert second.functions.getPrice(1, 1).call() == 10**18 // 16_000
    assert second.functions.getPrice(0, 3).call() == 5 * 10**18 // 16_000


def test_price_views_follow_the_curve(twin_keys: Contract, creator: LocalAccount, fan: LocalAccount) -> None:
    launch(twin_keys, creator, amount=3)
    functions = twin_keys.functions
    assert functions.getPrice(0, 1).call() == 0  # key 0 is free
    assert functions.getPrice(1, 1).call() == 10**18 // DIVISOR
    assert functions.getBuyPrice(AVATAR, 2).call() == curve.price(3, 2, DIVISOR)
    assert functions.getSellPrice(AVATAR, 2).call() == curve.price(1, 2, DIVISOR)
    assert functions.getBuyPriceAfterFee(AVATAR, 2).call() == buy_cost(3, 2)
    assert functions.getSellPriceAfterFee(AVATAR, 2).call() == curve.sell_proceeds(
        3, 2, DIVISOR, DEFAULT_FEE, DEFAULT_FEE
    )


# ---------------------------------------------------------------- createAvatar


def test_create_avatar_with_a_multi_key_first_buy(w3: Web3, twin_keys: Contract, creator: LocalAccount) -> None:
    """friend.tech's first buy of several shares underflowed; here the creator buys 5 at once."""
    cost = buy_cost(0, 5)
    receipt = send(twin_keys.functions.createAvatar(AVATAR, URI, 5, cost, FAR_DEADLINE), creator, value=cost)
    created = events(twin_keys, "AvatarCreated", receipt)[0]
    assert (created["id"], created["creator"], created["metadataURI"]) == (AVATAR, creator.address, URI)
    trade = events(twin_keys, "Trade", receipt)[0]
    price = curve.price(0, 5, DIVISOR)
    protocol_fee, creator_fee = curve.fees(price, DEFAULT_FEE, DEFAULT_FEE)
    assert dict(trade) == {
        "trader": creator.address,
        "id": AVATAR,
        "isBuy": True,
        "shareAmount": 5,
        "ethAmount": price,
        "protocolEthAmount": protocol_fee,
        "subjectEthAmount": creator_fee,
        "supply": 5,
    }
    assert twin_keys.functions.keysSupply(AVATAR).call() == 5
    assert twin_keys.functions.keysBalance(AVATAR, creator.address).call() == 5
    assert twin_keys.functions.isCreator(AVATAR, creator.address).call()
    assert twin_keys.functions.creatorFees(AVATAR).call() == creator_fee
    assert twin_keys.functions.protocolFees(AVATAR).call() == protocol_fee
    assert w3.eth.get_balance(twin_keys.address) == cost


def test_create_avatar_refunds_overpayment(w3: Web3, twin_keys: Contract, creator: LocalAccount) -> None:
    cost = buy_cost(0, 3)
    before = w3.eth.get_balance(creator.address)
    receipt = send(twin_keys.functions.createAvatar(AVATAR, URI, 3, cost, FAR_DEADLINE), creator, value=cost + 10**18)
    spent = before - w3.eth.get_balance(creator.address)
    assert spent == cost + receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert w3.eth.get_balance(twin_keys.address) == cost


@pytest.mark.parametrize(
    ("avatar", "amount", "max_cost_delta", "value_delta", "error"),
    [
        (bytes(16), 1, 0, 0, "InvalidAvatarId"),
        (AVATAR, 0, 0, 0, "ZeroAmount"),
        (AVATAR, 2**32, 0, 0, "SupplyOverflow"),
        (AVATAR, 3, -1, 0, "TotalCostAboveMax"),
        (AVATAR, 3, 0, -1, "InsufficientPayment"),
    ],
)
def test_create_avatar_reverts(
    twin_keys: Contract,
    creator: LocalAccount,
    avatar: bytes,
    amount: int,
    max_cost_delta: int,
    value_delta: int,
    error: str,
) -> None:
    cost = buy_cost(0, amount) if amount < 2**32 else 0
    function = twin_keys.functions.createAvatar(avatar, URI, amount, cost + max_cost_delta, FAR_DEADLINE)
    reverts(function, creator, error, value=cost + value_delta)


def test_create_avatar_twice_reverts(twin_keys: Contract, creator: LocalAccount, fan: LocalAccount) -> None:
    launch(twin_keys, creator)
    reverts(twin_keys.functions.createAvatar(AVATAR, URI, 1, 0, FAR_DEADLINE), creator, "AvatarExists")
    reverts(twin_keys.functions.createAvatar(AVATAR, URI, 1, 0, FAR_DEADLINE), fan, "InvalidAvatarId")


def test_an_id_issued_to_one_creator_cannot_be_created_by_another(
    twin_keys: Contract, creator: LocalAccount, fan: LocalAccount
) -> None:
    """Ids commit to their creator: a fan front-running the creator's launch with its id reverts."""
    from app.avatars.service import avatar_id_for, new_avatar_id

    assert twin_keys.functions.avatarIdFor(creator.address, 0xA11CE).call() == AVATAR
    assert "0x" + AVATAR.hex() == avatar_id_for(creator.address, 0xA11CE)
    issued = bytes.fromhex(new_avatar_id(creator.address)[2:])
    cost = buy_cost(0, 2)
    for squatter_id in (issued, AVATAR, bytes(16), bytes(12) + AVATAR[12:]):
        reverts(
            twin_keys.functions.createAvatar(squatter_id, URI, 2, cost, FAR_DEADLINE),
            fan,
            "InvalidAvatarId",
            value=cost,
        )
    launch(twin_keys, creator, amount=2, avatar=issued)
    assert twin_keys.functions.isCreator(issued, creator.address).call()
    assert not twin_keys.functions.isCreator(issued, fan.address).call()


def test_create_avatar_after_deadline_reverts(w3: Web3, twin_keys: Contract, creator: LocalAccount) -> None:
    reverts(twin_keys.functions.createAvatar(AVATAR, URI, 1, 0, past_deadline(w3)), creator, "DeadlineExpired")


# ---------------------------------------------------------------- buyKeys


def test_only_the_creator_buys_at_supply_zero(twin_keys: Contract, fan: LocalAccount) -> None:
    reverts(twin_keys.functions.buyKeys(AVATAR, 1, 10**18, FAR_DEADLINE), fan, "AvatarNotFound", value=10**18)


def test_buy_accrues_fees_and_refunds_the_excess(
    w3: Web3, twin_keys: Contract, creator: LocalAccount, fan: LocalAccount
) -> None:
    launch(twin_keys, creator)
    cost = buy_cost(1, 4)
    before = w3.eth.get_balance(fan.address)
    receipt = send(twin_keys.functions.buyKeys(AVATAR, 4, cost, FAR_DEADLINE), fan, value=cost * 2)
    assert before - w3.eth.get_balance(fan.address) == cost + receipt["gasUsed"] * receipt["effectiveGasPrice"]
    price = curve.price(1, 4, DIVISOR)
    protocol_fee, creator_fee = curve.fees(price, DEFAULT_FEE, DEFAULT_FEE)
    trade = events(twin_keys, "Trade", receipt)[0]
    assert (trade["isBuy"], trade["shareAmount"], trade["ethAmount"], trade["supply"]) == (True, 4, price, 5)
    assert twin_keys.functions.keysBalance(AVATAR, fan.address).call() == 4
    assert twin_keys.functions.creatorFees(AVATAR).call() == creator_fee
    assert twin_keys.functions.protocolFees(AVATAR).call() == protocol_fee
    assert w3.eth.get_balance(twin_keys.address) == cost


@pytest.mark.parametrize(
    ("amount", "max_cost_delta", "value_delta", "error"),
    [
        (0, 0, 0, "ZeroAmount"),
        (2**32, 0, 0, "SupplyOverflow"),
        (2, -1, 0, "TotalCostAboveMax"),
        (2, 0, -1, "InsufficientPayment"),
    ],
)
def test_buy_reverts(
    twin_keys: Contract,
    creator: LocalAccount,
    fan: LocalAccount,
    amount: int,
    max_cost_delta: int,
    value_delta: int,
    error: str,
) -> None:
    launch(twin_keys, creator)
    cost = buy_cost(1, amount) if amount < 2**32 else 0
    function = twin_keys.functions.buyKeys(AVATAR, amount, cost + max_cost_delta, FAR_DEADLINE)
    reverts(function, fan, error, value=cost + value_delta)


def test_buy_after_deadline_reverts(w3: Web3, twin_keys: Contract, creator: LocalAccount, fan: LocalAccount) -> None:
    launch(twin_keys, creator)
    function = twin_keys.functions.buyKeys(AVATAR, 1, 10**18, past_deadline(w3))
    reverts(function, fan, "DeadlineExpired", value=10**18)


# ---------------------------------------------------------------- sellKeys


def test_sell_pays_proceeds_and_accrues_fees(
    w3: Web3, twin_keys: Contract, creator: LocalAccount, fan: LocalAccount
) -> None:
    launch(twin_keys, creator)
    buy(twin_keys, fan, 5)
    proceeds = curve.sell_proceeds(6, 3, DIVISOR, DEFAULT_FEE, DEFAULT_FEE)
    fees_before = twin_keys.functions.creatorFees(AVATAR).call()
    before = w3.eth.get_balance(fan.address)
    receipt = send(twin_keys.functions.sellKeys(AVATAR, 3, proceeds, FAR_DEADLINE), fan)
    assert w3.eth.get_balance(fan.address) - before == proceeds - receipt["gasUsed"] * receipt["effectiveGasPrice"]
    price = curve.price(3, 3, DIVISOR)
    protocol_fee, creator_fee = curve.fees(price, DEFAULT_FEE, DEFAULT_FEE)
    trade = events(twin_keys, "Trade", receipt)[0]
    assert dict(trade) == {
        "trader": fan.address,
        "id": AVATAR,
        "isBuy": False,
        "shareAmount": 3,
        "ethAmount": price,
        "protocolEthAmount": protocol_fee,
        "subjectEthAmount": creator_fee,
        "supply": 3,
    }
    assert twin_keys.functions.keysBalance(AVATAR, fan.address).call() == 2
    assert twin_keys.functions.creatorFees(AVATAR).call() == fees_before + creator_fee


def test_sell_is_not_paused(twin_keys: Contract, owner: LocalAccount, creator: LocalAccount, fan: LocalAccount) -> None:
    launch(twin_keys, creator)
    buy(twin_keys, fan, 2)
    send(twin_keys.functions.pause(), owner)
    send(twin_keys.functions.sellKeys(AVATAR, 2, 0, FAR_DEADLINE), fan)
    assert twin_keys.functions.keysBalance(AVATAR, fan.address).call() == 0


def test_the_last_key_cannot_be_sold(twin_keys: Contract, creator: LocalAccount) -> None:
    launch(twin_keys, creator, amount=3)
    reverts(twin_keys.functions.sellKeys(AVATAR, 3, 0, FAR_DEADLINE), creator, "CannotSellLastKey")
    send(twin_keys.functions.sellKeys(AVATAR, 2, 0, FAR_DEADLINE), creator)
    assert twin_keys.functions.keysSupply(AVATAR).call() == 1


@pytest.mark.parametrize(
    ("amount", "min_delta", "error"),
    [(0, 0, "ZeroAmount"), (3, 0, "InsufficientKeys"), (2, 1, "ProceedsBelowMin")],
)
def test_sell_reverts(
    twin_keys: Contract, creator: LocalAccount, fan: LocalAccount, amount: int, min_delta: int, error: str
) -> None:
    launch(twin_keys, creator, amount=2)
    buy(twin_keys, fan, 2)
    proceeds = curve.sell_proceeds(4, amount, DIVISOR, DEFAULT_FEE, DEFAULT_FEE)
    reverts(twin_keys.functions.sellKeys(AVATAR, amount, proceeds + min_delta, FAR_DEADLINE), fan, error)


def test_sell_of_unknown_avatar_reverts(twin_keys: Contract, fan: LocalAccount) -> None:
    reverts(twin_keys.functions.sellKeys(AVATAR, 1, 0, FAR_DEADLINE), fan, "AvatarNotFound")


def test_sell_after_deadline_reverts(w3: Web3, twin_keys: Contract, creator: LocalAccount) -> None:
    launch(twin_keys, creator, amount=2)
    reverts(twin_keys.functions.sellKeys(AVATAR, 1, 0, past_deadline(w3)), creator, "DeadlineExpired")


# ---------------------------------------------------------------- withdrawals


def test_creator_withdraws_fees_to_any_address(
    w3: Web3, twin_keys: Contract, creator: LocalAccount, fan: LocalAccount, accounts: list[LocalAccount]
) -> None:
    launch(twin_keys, creator)
    buy(twin_keys, fan, 10)
    fees = twin_keys.functions.creatorFees(AVATAR).call()
    assert fees > 0
    receiver = accounts[5]
    before = w3.eth.get_balance(receiver.address)
    receipt = send(twin_keys.functions.withdrawCreatorFees(AVATAR, receiver.address), creator)
    assert w3.eth.get_balance(receiver.address) - before == fees
    event = events(twin_keys, "CreatorFeesWithdrawn", receipt)[0]
    assert dict(event) == {"id": AVATAR, "creator": creator.address, "to": receiver.address, "amount": fees}
    assert twin_keys.functions.creatorFees(AVATAR).call() == 0
    reverts(twin_keys.functions.withdrawCreatorFees(AVATAR, creator.address), creator, "NothingToWithdraw")


def test_creator_withdrawal_reverts(twin_keys: Contract, creator: LocalAccount, fan: LocalAccount) -> None:
    launch(twin_keys, creator)
    buy(twin_keys, fan, 2)
    reverts(twin_keys.functions.withdrawCreatorFees(AVATAR, fan.address), fan, "NotCreator")
    reverts(twin_keys.functions.withdrawCreatorFees(AVATAR, ZERO_ADDRESS), creator, "ZeroAddress")


def test_treasury_withdraws_protocol_fees_of_many_avatars(
    w3: Web3,
    twin_keys: Contract,
    owner: LocalAccount,
    creator: LocalAccount,
    fan: LocalAccount,
    accounts: list[LocalAccount],
) -> None:
    other = avatar_id(0xB0B)
    launch(twin_keys, creator)
    launch(twin_keys, creator, avatar=other)
    buy(twin_keys, fan, 3)
    buy(twin_keys, fan, 7, avatar=other)
    owed = [twin_keys.functions.protocolFees(avatar).call() for avatar in (AVATAR, other)]
    receiver = accounts[6]
    before = w3.eth.get_balance(receiver.address)
    receipt = send(twin_keys.functions.withdrawProtocolFees([AVATAR, other, AVATAR], receiver.address), owner)
    assert w3.eth.get_balance(receiver.address) - before == sum(owed)
    assert events(twin_keys, "ProtocolFeesWithdrawn", receipt) == [
        {"id": avatar, "treasury": owner.address, "to": receiver.address, "amount": amount}
        for avatar, amount in zip((AVATAR, other), owed, strict=True)
    ]
    reverts(twin_keys.functions.withdrawProtocolFees([AVATAR, other], owner.address), owner, "NothingToWithdraw")


def test_protocol_withdrawal_reverts(twin_keys: Contract, owner: LocalAccount, creator: LocalAccount) -> None:
    launch(twin_keys, creator, amount=4)
    reverts(twin_keys.functions.withdrawProtocolFees([AVATAR], creator.address), creator, "NotTreasury")
    reverts(twin_keys.functions.withdrawProtocolFees([AVATAR], ZERO_ADDRESS), owner, "ZeroAddress")


# ---------------------------------------------------------------- owner powers


def test_fee_changes_are_capped_and_emitted(twin_keys: Contract, owner: LocalAccount) -> None:
    receipt = send(twin_keys.functions.setProtocolFeePercent(10**16), owner)
    event = events(twin_keys, "ProtocolFeePercentUpdated", receipt)[0]
    assert (event["previousPercent"], event["newPercent"]) == (DEFAULT_FEE, 10**16)
    receipt = send(twin_keys.functions.setCreatorFeePercent(0), owner)
    event = events(twin_keys, "CreatorFeePercentUpdated", receipt)[0]
    assert (event["previousPercent"], event["newPercent"]) == (DEFAULT_FEE, 0)
    assert twin_keys.functions.protocolFeePercent().call() == 10**16
    assert twin_keys.functions.creatorFeePercent().call() == 0
    too_high = curve.MAX_FEE_PERCENT + 1
    reverts(twin_keys.functions.setProtocolFeePercent(too_high), owner, "FeeTooHigh")
    reverts(twin_keys.functions.setCreatorFeePercent(too_high), owner, "FeeTooHigh")


def test_new_fees_apply_to_later_trades(
    twin_keys: Contract, owner: LocalAccount, creator: LocalAccount, fan: LocalAccount
) -> None:
    launch(twin_keys, creator)
    send(twin_keys.functions.setProtocolFeePercent(10**16), owner)
    send(twin_keys.functions.setCreatorFeePercent(2 * 10**16), owner)
    assert buy(twin_keys, fan, 3) == curve.buy_total(1, 3, DIVISOR, 10**16, 2 * 10**16)


def test_treasury_change_moves_the_right_to_withdraw(
    twin_keys: Contract,
    owner: LocalAccount,
    creator: LocalAccount,
    fan: LocalAccount,
    accounts: list[LocalAccount],
) -> None:
    launch(twin_keys, creator)
    buy(twin_keys, fan, 3)
    new_treasury = accounts[7]
    receipt = send(twin_keys.functions.setTreasury(new_treasury.address), owner)
    event = events(twin_keys, "TreasuryUpdated", receipt)[0]
    assert (event["previousTreasury"], event["newTreasury"]) == (owner.address, new_treasury.address)
    reverts(twin_keys.functions.withdrawProtocolFees([AVATAR], owner.address), owner, "NotTreasury")
    send(twin_keys.functions.withdrawProtocolFees([AVATAR], new_treasury.address), new_treasury)
    reverts(twin_keys.functions.setTreasury(ZERO_ADDRESS), owner, "ZeroAddress")


def test_pause_stops_creation_and_buys_only(
    twin_keys: Contract, owner: LocalAccount, creator: LocalAccount, fan: LocalAccount
) -> None:
    launch(twin_keys, creator)
    buy(twin_keys, fan, 3)
    receipt = send(twin_keys.functions.pause(), owner)
    assert events(twin_keys, "Paused", receipt)[0]["account"] == owner.address
    assert twin_keys.functions.paused().call() is True
    reverts(twin_keys.functions.pause(), owner, "EnforcedPause")
    cost = buy_cost(4, 1)
    reverts(twin_keys.functions.buyKeys(AVATAR, 1, cost, FAR_DEADLINE), fan, "EnforcedPause", value=cost)
    reverts(twin_keys.functions.createAvatar(avatar_id(2, fan.address), URI, 1, 0, FAR_DEADLINE), fan, "EnforcedPause")
    send(twin_keys.functions.sellKeys(AVATAR, 1, 0, FAR_DEADLINE), fan)
    send(twin_keys.functions.withdrawCreatorFees(AVATAR, creator.address), creator)
    send(twin_keys.functions.withdrawProtocolFees([AVATAR], owner.address), owner)
    receipt = send(twin_keys.functions.unpause(), owner)
    assert events(twin_keys, "Unpaused", receipt)[0]["account"] == owner.address
    reverts(twin_keys.functions.unpause(), owner, "ExpectedPause")
    buy(twin_keys, fan, 1)


@pytest.mark.parametrize(
    "call",
    [
        lambda f, a: f.setProtocolFeePercent(0),
        lambda f, a: f.setCreatorFeePercent(0),
        lambda f, a: f.setTreasury(a),
        lambda f, a: f.pause(),
        lambda f, a: f.unpause(),
        lambda f, a: f.transferOwnership(a),
    ],
)
def test_owner_functions_reject_others(
    twin_keys: Contract, fan: LocalAccount, call: Callable[[Any, str], ContractFunction]
) -> None:
    reverts(call(twin_keys.functions, fan.address), fan, "OwnableUnauthorizedAccount")


def test_ownership_moves_in_two_steps_and_cannot_be_renounced(
    twin_keys: Contract, owner: LocalAccount, creator: LocalAccount, fan: LocalAccount
) -> None:
    reverts(twin_keys.functions.renounceOwnership(), owner, "RenounceDisabled")
    send(twin_keys.functions.transferOwnership(creator.address), owner)
    assert twin_keys.functions.owner().call() == owner.address
    assert twin_keys.functions.pendingOwner().call() == creator.address
    reverts(twin_keys.functions.acceptOwnership(), fan, "OwnableUnauthorizedAccount")
    send(twin_keys.functions.acceptOwnership(), creator)
    assert twin_keys.functions.owner().call() == creator.address
    send(twin_keys.functions.setCreatorFeePercent(0), creator)


def test_the_sell_quote_reverts_where_the_sell_would(twin_keys: Contract, creator: LocalAccount) -> None:
    """getSellPriceAfterFee(id, supply) used to quote the unsellable last key; now it reverts like the sell."""
    functions = twin_keys.functions
    with pytest.raises(ContractLogicError) as failure:
        functions.getSellPriceAfterFee(AVATAR, 1).call()
    assert error_name(failure.value) == "AvatarNotFound"
    launch(twin_keys, creator, amount=3)
    assert functions.getSellPriceAfterFee(AVATAR, 2).call() == curve.sell_proceeds(
        3, 2, DIVISOR, DEFAULT_FEE, DEFAULT_FEE
    )
    for amount in (3, 4):
        with pytest.raises(ContractLogicError) as failure:
            functions.getSellPriceAfterFee(AVATAR, amount).call()
        assert error_name(failure.value) == "CannotSellLastKey"
        reverts(functions.sellKeys(AVATAR, amount, 0, FAR_DEADLINE), creator, "CannotSellLastKey")
