"""memory: the text's tsvector stored (PostgreSQL), so a retrieval matches stored vectors instead of parsing texts

Revision ID: f3c8d1a6b7e2
Revises: e7b4a1c9d2f0
Create Date: 2026-12-07 19:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "f3c8d1a6b7e2"
down_revision: str | None = "e7b4a1c9d2f0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Retrieval reads a thread's rows through its (avatar_id, fan, key) index and matches each one's stored vector:
# the GIN index across every thread's texts is not what it reads, so it goes. SQLite keeps its FTS5 table.
POSTGRES_UPGRADE = [
    "ALTER TABLE memory ADD COLUMN document tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED",
    "DROP INDEX ix_memory_text_tsvector",
]
POSTGRES_DOWNGRADE = [
    "CREATE INDEX ix_memory_text_tsvector ON memory USING gin (to_tsvector('english', text))",
    "ALTER TABLE memory DROP COLUMN document",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRES_UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRES_DOWNGRADE:
            op.execute(statement)
