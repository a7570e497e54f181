"""What the indexer keeps to resume and to notice re-orgs."""

from __future__ import annotations

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel


class IndexedBlock(SQLModel, table=True):
    """Hash of a recently indexed block; a later mismatch means the chain re-organised."""

    __tablename__ = "indexed_block"

    number: int = Field(primary_key=True, sa_type=BigInteger)
    hash: str = Field(max_length=66)
