"""Column types shared by every domain."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Dialect, Numeric, String
from sqlalchemy.types import TypeDecorator, TypeEngine

WEI_DIGITS = 78  # 2**256 - 1 has 78 decimal digits.


class Wei(TypeDecorator[int]):
    """A non-negative integer up to 2**256 - 1, stored exactly on every database.

    PostgreSQL gets ``NUMERIC(78, 0)``. SQLite has no exact type that wide (its
    NUMERIC affinity turns big integers into floats), so the value is stored as
    zero-padded text of 78 digits: exact, and ordered like the number itself.
    """

    impl = Numeric(WEI_DIGITS, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(WEI_DIGITS))
        return dialect.type_descriptor(Numeric(WEI_DIGITS, 0))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = int(value)
        if not 0 <= value < 2**256:
            raise ValueError(f"wei amount out of range: {value}")
        return str(value).zfill(WEI_DIGITS) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)
