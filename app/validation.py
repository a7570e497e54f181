"""Parsing of what clients send that every domain shares: addresses, avatar ids, amounts.

Each parser raises ``BadInput`` naming the field, so the client gets a 400 that says
exactly what was wrong.
"""

from __future__ import annotations

import re
from typing import Annotated

from eth_utils import is_hex_address, to_checksum_address
from litestar.params import Parameter
from web3 import AsyncWeb3

from app.errors import AppError

AVATAR_ID_PATTERN = re.compile(r"^0x[0-9a-fA-F]{32}$")
MAX_KEY_AMOUNT = 1_000_000

# What routes take, for the OpenAPI document only: the parsers below check it and answer a bad value
# with 400 naming the field, where Litestar's own check would name no field.
AvatarIdParam = Annotated[
    str,
    Parameter(
        description="a bytes16 avatar id: 0x followed by 32 hex digits",
        schema_extra={"pattern": AVATAR_ID_PATTERN.pattern},
    ),
]
AddressParam = Annotated[
    str,
    Parameter(
        description="a wallet address: 0x followed by 40 hex digits", schema_extra={"pattern": "^0x[0-9a-fA-F]{40}$"}
    ),
]
KeyAmountParam = Annotated[
    int, Parameter(description=f"keys, 1–{MAX_KEY_AMOUNT:,}", schema_extra={"minimum": 1, "maximum": MAX_KEY_AMOUNT})
]


class BadInput(AppError):
    status_code = 400
    code = "invalid_request"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}", extra={"field": field})


def parse_address(value: str, field: str = "address") -> str:
    """A 0x-prefixed 20-byte hex address, returned checksummed."""
    if not isinstance(value, str) or not is_hex_address(value):
        raise BadInput(field, "expected a 0x-prefixed 20-byte hex address")
    return to_checksum_address(value)


async def require_no_code(w3: AsyncWeb3, address: str, field: str = "address") -> str:
    """An address with no contract code (a wallet): sending ETH to a contract without a payable
    fallback reverts, which the caller would otherwise report as its own failure."""
    if await w3.eth.get_code(to_checksum_address(address)):
        raise BadInput(field, "is a contract; give a wallet address")
    return address


def parse_avatar_id(value: str, field: str = "id") -> str:
    """A bytes16 avatar id as 0x + 32 hex digits, returned lower-case."""
    if not isinstance(value, str) or not AVATAR_ID_PATTERN.match(value):
        raise BadInput(field, "expected a bytes16 id: 0x followed by 32 hex digits")
    return value.lower()


def parse_key_amount(value: int, field: str = "amount") -> int:
    if value <= 0:
        raise BadInput(field, "must be a positive whole number of keys")
    if value > MAX_KEY_AMOUNT:
        raise BadInput(field, f"must be at most {MAX_KEY_AMOUNT:,} keys in one trade")
    return value
