"""recent chatters kept with the recent totals; the rankings by market cap and holders read through indexes

Revision ID: a1d4c7e9f2b3
Revises: d7f3b9e2a5c1
Create Date: 2026-12-08 00:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'a1d4c7e9f2b3'
down_revision: str | None = 'd7f3b9e2a5c1'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('network_avatar_recent', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chatters', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('network_avatar_chatter', schema=None) as batch_op:
        batch_op.create_index('ix_network_avatar_chatter_last_hour', ['last_hour'], unique=False)
    with op.batch_alter_table('market_avatar', schema=None) as batch_op:
        batch_op.create_index('ix_market_avatar_market_cap_avatar_id', ['market_cap', 'avatar_id'], unique=False)
        batch_op.create_index('ix_market_avatar_holders_avatar_id', ['holders', 'avatar_id'], unique=False)
    # The chatters of the recent hours, counted once; before the upkeep first sums them (no first hour yet) there
    # is nothing to count, and that first sum counts them.
    op.execute(
        "INSERT INTO network_avatar_recent (avatar_id, chats, volume, chatters) "
        "SELECT avatar_id, 0, 0, 0 FROM network_avatar_chatter "
        "WHERE last_hour >= (SELECT first_hour FROM network_recent_hours) "
        "AND avatar_id NOT IN (SELECT avatar_id FROM network_avatar_recent) GROUP BY avatar_id"
    )
    op.execute(
        "UPDATE network_avatar_recent SET chatters = (SELECT count(*) FROM network_avatar_chatter "
        "WHERE network_avatar_chatter.avatar_id = network_avatar_recent.avatar_id "
        "AND network_avatar_chatter.last_hour >= (SELECT first_hour FROM network_recent_hours))"
    )
    with op.batch_alter_table('network_avatar_recent', schema=None) as batch_op:
        batch_op.alter_column('chatters', existing_type=sa.Integer(), server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('market_avatar', schema=None) as batch_op:
        batch_op.drop_index('ix_market_avatar_holders_avatar_id')
        batch_op.drop_index('ix_market_avatar_market_cap_avatar_id')
    with op.batch_alter_table('network_avatar_chatter', schema=None) as batch_op:
        batch_op.drop_index('ix_network_avatar_chatter_last_hour')
    with op.batch_alter_table('network_avatar_recent', schema=None) as batch_op:
        batch_op.drop_column('chatters')
