"""The metadata every table shares, with an explicit constraint naming convention."""

from typing import cast

from sqlalchemy import Table, inspect
from sqlmodel import SQLModel

# Named constraints keep Alembic migrations deterministic and reversible on every database.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = SQLModel.metadata


def table_of(model: type[SQLModel]) -> Table:
    """A table model's Core table, for bulk inserts and row reads without ORM bookkeeping (SQLModel does not
    declare ``__table__`` to type checkers)."""
    return cast(Table, inspect(model).local_table)
