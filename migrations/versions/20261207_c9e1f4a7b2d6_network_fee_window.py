"""network fee window: how each window's creators' fees are spread, kept with the windows' totals

Revision ID: c9e1f4a7b2d6
Revises: a3c8e5f1b7d4
Create Date: 2026-12-07 20:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db.types

revision: str = 'c9e1f4a7b2d6'
down_revision: str | None = 'a3c8e5f1b7d4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('network_fee_window',
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('creators', sa.Integer(), nullable=False),
    sa.Column('median', app.db.types.Wei(precision=78, scale=0), nullable=False),
    sa.Column('p90', app.db.types.Wei(precision=78, scale=0), nullable=False),
    sa.Column('largest', app.db.types.Wei(precision=78, scale=0), nullable=False),
    sa.Column('top_10', app.db.types.Wei(precision=78, scale=0), nullable=False),
    sa.Column('hhi', sa.Float(), nullable=False),
    sa.Column('gini', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('days', name=op.f('pk_network_fee_window'))
    )
    # The windows summed again (by the app's upkeep, or the next request) so that their summaries are made too.
    op.execute(sa.text('UPDATE network_window SET last_day = NULL'))


def downgrade() -> None:
    op.drop_table('network_fee_window')
