"""memory: facts per fan and avatar, forgotten keys, queued extractions; full-text search

Revision ID: c16a0e3f5d21
Revises: dd63361f61da
Create Date: 2026-12-07 05:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = 'c16a0e3f5d21'
down_revision: str | None = 'dd63361f61da'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite: an FTS5 table of the memories' text, with the thread as a column (one token: "t" + avatar id + fan,
# without their 0x, lower case; app.memory.retrieval.thread_token), kept by triggers. rowid = memory.id.
_THREAD = "'t' || lower(substr({row}.avatar_id, 3)) || lower(substr({row}.fan, 3))"
SQLITE_FTS = [
    "CREATE VIRTUAL TABLE memory_fts USING fts5(text, thread, tokenize = 'porter unicode61')",
    "CREATE TRIGGER memory_fts_insert AFTER INSERT ON memory BEGIN "
    f"INSERT INTO memory_fts(rowid, text, thread) VALUES (new.id, new.text, {_THREAD.format(row='new')}); END",
    "CREATE TRIGGER memory_fts_delete AFTER DELETE ON memory BEGIN "
    "DELETE FROM memory_fts WHERE rowid = old.id; END",
    "CREATE TRIGGER memory_fts_update AFTER UPDATE OF text ON memory BEGIN "
    "UPDATE memory_fts SET text = new.text WHERE rowid = new.id; END",
]
# PostgreSQL: a GIN index on the text's tsvector (the expression retrieval queries with).
POSTGRES_FTS = ["CREATE INDEX ix_memory_text_tsvector ON memory USING gin (to_tsvector('english', text))"]


def upgrade() -> None:
    op.create_table('memory',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('avatar_id', sqlmodel.sql.sqltypes.AutoString(length=34), nullable=False),
    sa.Column('fan', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('source_message_id', sa.Integer(), nullable=True),
    sa.Column('source_text', sa.Text(), nullable=False),
    sa.Column('valid_from', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('last_used_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('use_count', sa.Integer(), nullable=False),
    sa.Column('strength', sa.Float(), nullable=False),
    sa.Column('pinned', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['source_message_id'], ['chat_message.id'], name=op.f('fk_memory_source_message_id_chat_message'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_memory')),
    sa.UniqueConstraint('avatar_id', 'fan', 'key', name=op.f('uq_memory_avatar_id_fan_key'))
    )
    op.create_table('memory_extraction',
    sa.Column('reply_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('source_message_id', sa.Integer(), nullable=False),
    sa.Column('avatar_id', sqlmodel.sql.sqltypes.AutoString(length=34), nullable=False),
    sa.Column('fan', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('verification_level', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('said', sa.Text(), nullable=False),
    sa.Column('said_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.ForeignKeyConstraint(['reply_id'], ['chat_message.id'], name=op.f('fk_memory_extraction_reply_id_chat_message'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('reply_id', name=op.f('pk_memory_extraction'))
    )
    with op.batch_alter_table('memory_extraction', schema=None) as batch_op:
        batch_op.create_index('ix_memory_extraction_next_attempt_at', ['next_attempt_at'], unique=False)

    op.create_table('memory_forgotten',
    sa.Column('avatar_id', sqlmodel.sql.sqltypes.AutoString(length=34), nullable=False),
    sa.Column('fan', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('forgotten_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('avatar_id', 'fan', 'key', name=op.f('pk_memory_forgotten'))
    )
    for statement in SQLITE_FTS if op.get_bind().dialect.name == "sqlite" else POSTGRES_FTS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("memory_fts_update", "memory_fts_delete", "memory_fts_insert"):
            op.execute(f"DROP TRIGGER {trigger}")
        op.execute("DROP TABLE memory_fts")
    else:
        op.execute("DROP INDEX ix_memory_text_tsvector")
    op.drop_table('memory_forgotten')
    with op.batch_alter_table('memory_extraction', schema=None) as batch_op:
        batch_op.drop_index('ix_memory_extraction_next_attempt_at')

    op.drop_table('memory_extraction')
    op.drop_table('memory')
