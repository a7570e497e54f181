"""network hours: each avatar's chats and volume per UTC hour, their sum over the recent hours, and each fan's
latest hour with an avatar (the rankings' 24 h figures from rollups)

Revision ID: a3c8e5f1b7d4
Revises: f3c8d1a6b7e2
Create Date: 2026-12-07 19:30:00.000000
"""

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.db.types

revision: str = 'a3c8e5f1b7d4'
down_revision: str | None = 'f3c8d1a6b7e2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000

_message = sa.table(
    'chat_message',
    sa.column('id', sa.Integer()),
    sa.column('avatar_id', sa.String()),
    sa.column('fan', sa.String()),
    sa.column('role', sa.String()),
    sa.column('status', sa.String()),
    sa.column('reply_to', sa.Integer()),
    sa.column('completed_at', sqlmodel.sql.sqltypes.UTCDateTime()),
)
_trade = sa.table(
    'trade',
    sa.column('avatar_id', sa.String()),
    sa.column('timestamp', sqlmodel.sql.sqltypes.UTCDateTime()),
    sa.column('eth_amount', app.db.types.Wei()),
)
_chatter = sa.table(
    'network_avatar_chatter',
    sa.column('avatar_id', sa.String()),
    sa.column('fan', sa.String()),
    sa.column('last_day', sa.Date()),
    sa.column('last_hour', sqlmodel.sql.sqltypes.UTCDateTime()),
)
_hour = sa.table(
    'network_avatar_hour',
    sa.column('avatar_id', sa.String()),
    sa.column('hour', sqlmodel.sql.sqltypes.UTCDateTime()),
    sa.column('chats', sa.Integer()),
    sa.column('volume', app.db.types.Wei()),
)


def _hour_of(moment: datetime) -> datetime:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _insert(table: sa.TableClause, rows: list[dict[str, object]]) -> None:
    for start in range(0, len(rows), BATCH):
        op.get_bind().execute(table.insert(), rows[start : start + BATCH])


def _backfill() -> None:
    """The hours counted from the raw tables as the rollups count them (a turn in the hour it ended, a trade in its
    block's; wei summed in Python: exact everywhere), and each fan's latest hour with an avatar from their turns
    (the start of their last day where none is left). The recent totals are summed from the hours by the app's
    first move of them (app.network.rollups.advance_recent)."""
    bind = op.get_bind()
    hours: dict[tuple[str, datetime], list[int]] = defaultdict(lambda: [0, 0])
    latest: dict[tuple[str, str], datetime] = {}
    reply = _message.alias('reply')
    for avatar_id, fan, completed_at in bind.execute(
        sa.select(_message.c.avatar_id, _message.c.fan, _message.c.completed_at)
        .join(reply, reply.c.reply_to == _message.c.id)
        .where(_message.c.role == 'user', _message.c.status != 'pending')
    ):
        hour = _hour_of(completed_at)
        hours[avatar_id, hour][0] += 1
        latest[avatar_id, fan] = max(hour, latest.get((avatar_id, fan), hour))
    for avatar_id, timestamp, amount in bind.execute(sa.select(_trade)):
        hours[avatar_id, _hour_of(timestamp)][1] += amount
    _insert(
        _hour,
        [{'avatar_id': a, 'hour': h, 'chats': chats, 'volume': volume} for (a, h), (chats, volume) in hours.items()],
    )
    update = (
        _chatter.update()
        .where(_chatter.c.avatar_id == sa.bindparam('a'), _chatter.c.fan == sa.bindparam('f'))
        .values(last_hour=sa.bindparam('h'))
    )
    changes = [
        {'a': a, 'f': f, 'h': latest.get((a, f)) or datetime.combine(last_day, datetime.min.time(), UTC)}
        for a, f, last_day in bind.execute(sa.select(_chatter.c.avatar_id, _chatter.c.fan, _chatter.c.last_day))
    ]
    for start in range(0, len(changes), BATCH):
        bind.execute(update, changes[start : start + BATCH])


def upgrade() -> None:
    op.create_table('network_avatar_hour',
    sa.Column('avatar_id', sqlmodel.sql.sqltypes.AutoString(length=34), nullable=False),
    sa.Column('hour', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('chats', sa.Integer(), nullable=False),
    sa.Column('volume', app.db.types.Wei(precision=78, scale=0), nullable=False),
    sa.PrimaryKeyConstraint('avatar_id', 'hour', name=op.f('pk_network_avatar_hour'))
    )
    with op.batch_alter_table('network_avatar_hour', schema=None) as batch_op:
        batch_op.create_index('ix_network_avatar_hour_hour', ['hour'], unique=False)

    op.create_table('network_recent_hours',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('first_hour', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_network_recent_hours'))
    )
    op.create_table('network_avatar_recent',
    sa.Column('avatar_id', sqlmodel.sql.sqltypes.AutoString(length=34), nullable=False),
    sa.Column('chats', sa.Integer(), nullable=False),
    sa.Column('volume', app.db.types.Wei(precision=78, scale=0), nullable=False),
    sa.PrimaryKeyConstraint('avatar_id', name=op.f('pk_network_avatar_recent'))
    )
    with op.batch_alter_table('network_avatar_chatter', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_hour', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    _backfill()
    with op.batch_alter_table('network_avatar_chatter', schema=None) as batch_op:  # nullable only to be filled
        batch_op.alter_column('last_hour', existing_type=sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False)
        batch_op.create_index(
            'ix_network_avatar_chatter_avatar_id_last_hour', ['avatar_id', 'last_hour'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('network_avatar_chatter', schema=None) as batch_op:
        batch_op.drop_index('ix_network_avatar_chatter_avatar_id_last_hour')
        batch_op.drop_column('last_hour')
    op.drop_table('network_avatar_recent')
    op.drop_table('network_recent_hours')
    with op.batch_alter_table('network_avatar_hour', schema=None) as batch_op:
        batch_op.drop_index('ix_network_avatar_hour_hour')
    op.drop_table('network_avatar_hour')
