"""Keyset pagination: a ``Page`` of items with an opaque ``next_cursor`` that carries the sort key of the last
item, decoded and checked value by value (a cursor is client input)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from msgspec import Struct

from app.validation import BadInput

PAGE_LIMIT_MAX = 100

T = TypeVar("T")


class Page(Struct, Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


# Row ids (trades, chat messages) are INTEGER columns: 32-bit on PostgreSQL, where a larger value overflows
# the driver rather than finding nothing (SQLite's are 64-bit, but ids count up from 1 and never get near).
MAX_ROW_ID = 2**31 - 1


def cursor_id(value: Any) -> bool:
    """A row id, as trades and messages page by."""
    return cursor_int(value) and 0 <= value <= MAX_ROW_ID


def cursor_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def cursor_str(value: Any) -> bool:
    return isinstance(value, str)


def decode_cursor(cursor: str | None, *shape: Callable[[Any], bool]) -> list[Any] | None:
    """The values a ``next_cursor`` carries, each checked by its place in ``shape``: a cursor is
    client input, and a value of another type or size would fail deep in a comparison or a query."""
    if cursor is None:
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadInput("cursor", "not a cursor this API returned") from None
    if (
        not isinstance(values, list)
        or len(values) != len(shape)
        or not all(check(value) for check, value in zip(shape, values, strict=True))
    ):
        raise BadInput("cursor", "not a cursor this API returned")
    return values


def check_limit(limit: int) -> int:
    if not 1 <= limit <= PAGE_LIMIT_MAX:
        raise BadInput("limit", f"must be between 1 and {PAGE_LIMIT_MAX}")
    return limit
