"""memory embeddings: a vector per memory (float32, unit length) and the model that made it

Revision ID: e7b4a1c9d2f0
Revises: 61468aedfad9
Create Date: 2026-12-07 15:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = 'e7b4a1c9d2f0'
down_revision: str | None = '61468aedfad9'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE, not a batch: on SQLite a batch would copy the table and lose its full-text triggers.
def upgrade() -> None:
    op.add_column('memory', sa.Column('embedding', sa.LargeBinary(), nullable=True))
    op.add_column('memory', sa.Column('embedding_model', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))


def downgrade() -> None:
    op.drop_column('memory', 'embedding_model')
    op.drop_column('memory', 'embedding')
