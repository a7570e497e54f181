"""network avatar recent indexes: the 24 h rankings read their page through them

Revision ID: d7f3b9e2a5c1
Revises: c9e1f4a7b2d6
Create Date: 2026-12-07 20:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = 'd7f3b9e2a5c1'
down_revision: str | None = 'c9e1f4a7b2d6'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('network_avatar_recent', schema=None) as batch_op:
        batch_op.create_index('ix_network_avatar_recent_chats_avatar_id', ['chats', 'avatar_id'], unique=False)
        batch_op.create_index('ix_network_avatar_recent_volume_avatar_id', ['volume', 'avatar_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('network_avatar_recent', schema=None) as batch_op:
        batch_op.drop_index('ix_network_avatar_recent_volume_avatar_id')
        batch_op.drop_index('ix_network_avatar_recent_chats_avatar_id')
