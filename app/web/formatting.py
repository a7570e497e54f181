"""Jinja filters that turn wei, addresses and times into text for people (display only)."""

from __future__ import annotations

from datetime import UTC, datetime

from app.market.curve import ONE_ETHER
from app.web.portraits import portrait_url

DECIMALS_ABOVE_ONE_ETHER = 6
SIGNIFICANT_DIGITS_BELOW = 4


def format_eth(wei: int | str, unit: str = "ETH") -> str:
    """``1234500000000000000`` → ``"1.2345 ETH"``, ``625000000000`` → ``"0.000000625 ETH"``: rounded
    down, trailing zeros dropped, 6 decimals from 1 ETH up and 4 significant digits below; never a float.
    ``unit`` names another 18-decimal token (OPG). (frontend/static/js/format.js formats alike.)"""
    amount = int(wei)
    whole, fraction = divmod(abs(amount), ONE_ETHER)
    padded = f"{fraction:018d}"
    leading_zeros = len(padded) - len(padded.lstrip("0"))
    shown = DECIMALS_ABOVE_ONE_ETHER if whole else min(18, leading_zeros + SIGNIFICANT_DIGITS_BELOW)
    digits = padded[:shown].rstrip("0")
    sign = "-" if amount < 0 else ""
    return f"{sign}{whole:,}{'.' + digits if digits else ''} {unit}"


def short_address(address: str) -> str:
    """``0x1234…abcd``: enough to recognise an address, short enough for a table."""
    return f"{address[:6]}…{address[-4:]}" if len(address) > 12 else address


def utc_time(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


FILTERS = {"eth": format_eth, "short_address": short_address, "utc": utc_time, "portrait": portrait_url}
