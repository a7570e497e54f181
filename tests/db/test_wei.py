"""Money columns keep every value up to 2**256 - 1 exactly, and order like numbers."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, select

from app.db.engine import create_engine
from app.db.types import Wei

VALUES = [0, 1, 10**18, 2**64 + 1, 10**30 + 7, 2**256 - 1]


@pytest.fixture
async def wei_table(database_url: str):
    table = Table("wei_probe", MetaData(), Column("id", Integer, primary_key=True), Column("amount", Wei()))
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(table.create)
    yield engine, table
    async with engine.begin() as connection:
        await connection.run_sync(table.drop)
    await engine.dispose()


async def test_wei_round_trips_and_sorts_exactly(wei_table) -> None:
    engine, table = wei_table
    async with engine.begin() as connection:
        rows = [{"id": i, "amount": v} for i, v in enumerate(reversed(VALUES))]
        await connection.execute(table.insert(), rows)
        stored = (await connection.execute(select(table.c.amount).order_by(table.c.amount))).scalars().all()
        biggest = (await connection.execute(select(table.c.amount).where(table.c.amount > 10**30))).scalars()

    assert stored == VALUES
    assert all(type(value) is int for value in stored)
    assert sorted(biggest) == [10**30 + 7, 2**256 - 1]


async def test_wei_refuses_values_out_of_range(wei_table) -> None:
    engine, table = wei_table
    for bad in (-1, 2**256):
        with pytest.raises(Exception, match="out of range"):
            async with engine.begin() as connection:
                await connection.execute(table.insert(), {"id": 1, "amount": bad})
