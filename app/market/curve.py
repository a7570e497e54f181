"""TwinKeys' bonding curve and fees in Python, integer for integer the contract's arithmetic.

Key number ``i`` (0-based) costs ``i² · 10**18 / divisor`` wei. Like the contract, prices are
differences of the floored cumulative sum, so the ETH the curve holds depends on the supply only::

    price(supply=10, amount=2, divisor=1_600_000)        # wei, before fees
    buy_total(10, 2, 1_600_000, 5 * 10**16, 5 * 10**16)  # what the buyer pays
    sell_proceeds(12, 2, 1_600_000, 5 * 10**16, 5 * 10**16)  # what the seller receives

All amounts are wei as Python ints; fee percents are parts of 10**18 (5 % = 5 * 10**16).
"""

from __future__ import annotations

ONE_ETHER = 10**18
MAX_FEE_PERCENT = 5 * 10**16  # TwinKeys.MAX_FEE_PERCENT
MAX_SUPPLY = 2**32 - 1  # supply is a uint32 on-chain


def cumulative_price(keys: int, divisor: int) -> int:
    """Σ_{i<keys} i² · 10**18 / divisor, floored once: what the curve holds at supply ``keys``."""
    if keys < 0 or divisor <= 0:
        raise ValueError("keys must be >= 0 and divisor > 0")
    if keys == 0:
        return 0
    return (keys - 1) * keys * (2 * keys - 1) // 6 * ONE_ETHER // divisor


def price(supply: int, amount: int, divisor: int) -> int:
    """Curve price, before fees, of ``amount`` keys above ``supply`` (buying at, or selling down to, it)."""
    if amount < 0:
        raise ValueError("amount must be >= 0")
    return cumulative_price(supply + amount, divisor) - cumulative_price(supply, divisor)


def fees(curve_price: int, protocol_fee_percent: int, creator_fee_percent: int) -> tuple[int, int]:
    """(protocol fee, creator fee) of a trade whose curve price is ``curve_price``."""
    return (
        curve_price * protocol_fee_percent // ONE_ETHER,
        curve_price * creator_fee_percent // ONE_ETHER,
    )


def buy_total(supply: int, amount: int, divisor: int, protocol_fee_percent: int, creator_fee_percent: int) -> int:
    """What buying ``amount`` keys at ``supply`` costs: curve price plus both fees (getBuyPriceAfterFee)."""
    curve_price = price(supply, amount, divisor)
    return curve_price + sum(fees(curve_price, protocol_fee_percent, creator_fee_percent))


def sell_proceeds(supply: int, amount: int, divisor: int, protocol_fee_percent: int, creator_fee_percent: int) -> int:
    """What selling ``amount`` keys at ``supply`` pays: curve price minus both fees (getSellPriceAfterFee)."""
    if amount > supply:
        raise ValueError("cannot sell more keys than exist")
    curve_price = price(supply - amount, amount, divisor)
    return curve_price - sum(fees(curve_price, protocol_fee_percent, creator_fee_percent))


def market_cap(supply: int, divisor: int) -> int:
    """What the whole supply would sell for on the curve, before fees: every key but the
    unsellable key 0, which is priced 0, so exactly what the curve holds."""
    return cumulative_price(supply, divisor)
