"""trade: gas_paid (the network fee the trader paid, from the receipt), holders_after and balance_after

Trades indexed before this revision keep NULL (unknown), not 0: the portfolio says its fee sum is a floor,
and the activity feed announces no holder milestone for them.

Revision ID: e4b1f7a9c2d3
Revises: c16a0e3f5d21
Create Date: 2026-12-07 15:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db.types

revision: str = 'e4b1f7a9c2d3'
down_revision: str | None = 'c16a0e3f5d21'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('trade') as batch_op:
        batch_op.add_column(sa.Column('gas_paid', app.db.types.Wei(precision=78, scale=0), nullable=True))
        batch_op.add_column(sa.Column('holders_after', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('balance_after', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('trade') as batch_op:
        batch_op.drop_column('balance_after')
        batch_op.drop_column('holders_after')
        batch_op.drop_column('gas_paid')
