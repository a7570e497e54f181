"""Attacks on TwinKeys: a creator that rejects ETH, re-entrant traders, front-running, stale transactions."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector
from web3 import Web3
from web3.contract import Contract

from app.chain.embedded import EmbeddedChain
from app.market import curve
from tests.contracts.conftest import (
    DEFAULT_FEE,
    DIVISOR,
    FAR_DEADLINE,
    avatar_id,
    compiled_test_contracts,
    deploy,
    reverts,
    send,
)

AVATAR = avatar_id(0xADE)
REENTRANCY_ERROR = function_signature_to_4byte_selector("ReentrancyGuardReentrantCall()")


class Attack:
    NONE, BUY, SELL, WITHDRAW_CREATOR_FEES, CREATE = range(5)


@pytest.fixture
def artifacts() -> dict[str, dict[str, Any]]:
    return compiled_test_contracts()


def quote_buy(twin_keys: Contract, amount: int, avatar: bytes = AVATAR) -> int:
    return twin_keys.functions.getBuyPriceAfterFee(avatar, amount).call()


def test_creator_that_rejects_eth_cannot_block_trading(
    w3: Web3, twin_keys: Contract, artifacts: dict[str, Any], accounts: list[LocalAccount]
) -> None:
    deployer, fan, receiver = accounts[1], accounts[2], accounts[3]
    creator = deploy(w3, artifacts["RejectingCreator"], deployer, twin_keys.address)
    avatar = avatar_id(0xADE, creator.address)  # bound to the contract that creates it
    send(creator.functions.launch(avatar, 2), deployer, value=curve.buy_total(0, 2, DIVISOR, DEFAULT_FEE, DEFAULT_FEE))
    assert twin_keys.functions.isCreator(avatar, creator.address).call()
    assert not twin_keys.functions.isCreator(avatar, deployer.address).call()

    cost = quote_buy(twin_keys, 5, avatar)
    send(twin_keys.functions.buyKeys(avatar, 5, cost, FAR_DEADLINE), fan, value=cost)
    send(twin_keys.functions.sellKeys(avatar, 5, 0, FAR_DEADLINE), fan)
    fees = twin_keys.functions.creatorFees(avatar).call()
    assert fees > 0
    # Its own withdrawal to itself fails, which only hurts itself; it can direct the fees elsewhere.
    reverts(creator.functions.withdrawTo(avatar, creator.address), deployer, "EthTransferFailed")
    before = w3.eth.get_balance(receiver.address)
    send(creator.functions.withdrawTo(avatar, receiver.address), deployer)
    assert w3.eth.get_balance(receiver.address) - before == fees


def test_refund_callback_cannot_reenter(
    w3: Web3, twin_keys: Contract, artifacts: dict[str, Any], accounts: list[LocalAccount]
) -> None:
    funder = accounts[1]
    trader = deploy(w3, artifacts["ReentrantTrader"], funder, twin_keys.address, value=10**18)
    avatar = avatar_id(0xADE, trader.address)  # bound to the contract that creates it
    cost = curve.buy_total(0, 3, DIVISOR, DEFAULT_FEE, DEFAULT_FEE)
    send(trader.functions.launch(avatar, 3, cost), funder, value=cost)
    for attack in (Attack.BUY, Attack.SELL, Attack.WITHDRAW_CREATOR_FEES, Attack.CREATE):
        send(trader.functions.setAttack(attack, avatar), funder)
        attempts = trader.functions.reentryAttempts().call()
        supply = twin_keys.functions.keysSupply(avatar).call()
        cost = quote_buy(twin_keys, 1, avatar)
        send(trader.functions.buy(avatar, 1, cost), funder, value=cost + 1000)  # overpay: refund calls back
        assert trader.functions.reentryAttempts().call() == attempts + 1
        assert trader.functions.lastReentryError().call() == REENTRANCY_ERROR
        assert twin_keys.functions.keysSupply(avatar).call() == supply + 1  # only the outer buy happened


@pytest.mark.parametrize("attack", [Attack.BUY, Attack.SELL, Attack.WITHDRAW_CREATOR_FEES])
def test_sell_proceeds_and_withdrawal_callbacks_cannot_reenter(
    w3: Web3, twin_keys: Contract, artifacts: dict[str, Any], accounts: list[LocalAccount], attack: int
) -> None:
    funder, fan = accounts[1], accounts[2]
    trader = deploy(w3, artifacts["ReentrantTrader"], funder, twin_keys.address, value=10**18)
    avatar = avatar_id(0xADE, trader.address)  # bound to the contract that creates it
    cost = curve.buy_total(0, 6, DIVISOR, DEFAULT_FEE, DEFAULT_FEE)
    send(trader.functions.launch(avatar, 6, cost), funder, value=cost)
    fan_cost = quote_buy(twin_keys, 4, avatar)
    send(twin_keys.functions.buyKeys(avatar, 4, fan_cost, FAR_DEADLINE), fan, value=fan_cost)
    send(trader.functions.setAttack(attack, avatar), funder)

    send(trader.functions.sell(avatar, 2), funder)
    assert trader.functions.reentryAttempts().call() == 1
    assert trader.functions.lastReentryError().call() == REENTRANCY_ERROR
    assert twin_keys.functions.keysSupply(avatar).call() == 8

    send(trader.functions.withdraw(avatar), funder)
    assert trader.functions.reentryAttempts().call() == 2
    assert trader.functions.lastReentryError().call() == REENTRANCY_ERROR
    assert twin_keys.functions.creatorFees(avatar).call() == 0


def test_front_runner_cannot_push_a_buy_above_max_total_cost(twin_keys: Contract, accounts: list[LocalAccount]) -> None:
    creator, victim, attacker = accounts[1], accounts[2], accounts[3]
    send(twin_keys.functions.createAvatar(AVATAR, "uri", 1, 0, FAR_DEADLINE), creator)
    quoted = quote_buy(twin_keys, 5)
    victim_buy = twin_keys.functions.buyKeys(AVATAR, 5, quoted, FAR_DEADLINE)
    attacker_cost = quote_buy(twin_keys, 20)
    send(twin_keys.functions.buyKeys(AVATAR, 20, attacker_cost, FAR_DEADLINE), attacker, value=attacker_cost)
    # The victim sent generously more ETH than quoted, but the bound is maxTotalCost.
    reverts(victim_buy, victim, "TotalCostAboveMax", value=quoted * 100)
    assert twin_keys.functions.keysBalance(AVATAR, victim.address).call() == 0


def test_front_runner_cannot_push_a_sell_below_min_proceeds(twin_keys: Contract, accounts: list[LocalAccount]) -> None:
    creator, victim, attacker = accounts[1], accounts[2], accounts[3]
    send(twin_keys.functions.createAvatar(AVATAR, "uri", 1, 0, FAR_DEADLINE), creator)
    for trader in (victim, attacker):
        cost = quote_buy(twin_keys, 10)
        send(twin_keys.functions.buyKeys(AVATAR, 10, cost, FAR_DEADLINE), trader, value=cost)
    quoted = twin_keys.functions.getSellPriceAfterFee(AVATAR, 10).call()
    send(twin_keys.functions.sellKeys(AVATAR, 10, 0, FAR_DEADLINE), attacker)
    reverts(twin_keys.functions.sellKeys(AVATAR, 10, quoted, FAR_DEADLINE), victim, "ProceedsBelowMin")
    assert twin_keys.functions.keysBalance(AVATAR, victim.address).call() == 10


def test_a_transaction_held_past_its_deadline_reverts(
    w3: Web3, chain: EmbeddedChain, twin_keys: Contract, accounts: list[LocalAccount]
) -> None:
    creator, fan = accounts[1], accounts[2]
    # A block first: after a revert the latest one is as old as the snapshot (a minute or more after a
    # long test), while the next one is mined at the clock's now.
    chain.mine_blocks()
    now = w3.eth.get_block("latest")["timestamp"]
    send(twin_keys.functions.createAvatar(AVATAR, "uri", 3, 10**18, now + 60), creator, value=10**18)
    cost = quote_buy(twin_keys, 1)
    chain.time_travel(now + 61)
    chain.mine_blocks()
    reverts(twin_keys.functions.buyKeys(AVATAR, 1, cost, now + 60), fan, "DeadlineExpired", value=cost)
    reverts(twin_keys.functions.sellKeys(AVATAR, 1, 0, now + 60), creator, "DeadlineExpired")
