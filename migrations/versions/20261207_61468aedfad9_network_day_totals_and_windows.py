"""network usage at scale: the network's day totals, and per-window totals per avatar and creator

Revision ID: 61468aedfad9
Revises: e4b1f7a9c2d3
Create Date: 2026-12-07 15:10:00.000000
"""

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.db.types

revision: str = '61468aedfad9'
down_revision: str | None = 'e4b1f7a9c2d3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = ('last_chatters', 'chats', 'active_avatars', 'trades', 'new_avatars', 'new_chatted', 'new_bought')
WEI = ('volume', 'creator_fees')

_avatar_day = sa.table(
    'network_avatar_day',
    sa.column('day', sa.Date()),
    sa.column('chats', sa.Integer()),
    sa.column('trades', sa.Integer()),
    sa.column('volume', app.db.types.Wei()),
    sa.column('creator_fees', app.db.types.Wei()),
)
_chatter = sa.table('network_chatter', sa.column('last_day', sa.Date()))
_avatar = sa.table(
    'network_avatar',
    sa.column('listed_at', sqlmodel.sql.sqltypes.UTCDateTime()),
    sa.column('first_chat_at', sqlmodel.sql.sqltypes.UTCDateTime()),
    sa.column('first_outside_buy_at', sqlmodel.sql.sqltypes.UTCDateTime()),
)
_day = sa.table(
    'network_day',
    sa.column('day', sa.Date()),
    sa.column('chatters', sa.Integer()),
    *(sa.column(name, sa.Integer()) for name in COUNTS),
    *(sa.column(name, app.db.types.Wei()) for name in WEI),
)


def _utc_day(moment: datetime) -> date:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).date()


def _backfill() -> None:
    """The new day totals counted from the rollups already kept (wei summed in Python: exact everywhere)."""
    bind = op.get_bind()
    days: dict[date, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS + WEI, 0))
    for day, chats, trades, volume, fees in bind.execute(sa.select(_avatar_day)):
        totals = days[day]
        totals['chats'] += chats
        totals['active_avatars'] += chats > 0
        totals['trades'] += trades
        totals['volume'] += volume
        totals['creator_fees'] += fees
    for (last_day,) in bind.execute(sa.select(_chatter)):
        days[last_day]['last_chatters'] += 1
    for listed_at, first_chat_at, first_outside_buy_at in bind.execute(
        sa.select(_avatar).where(_avatar.c.listed_at.is_not(None))
    ):
        totals = days[_utc_day(listed_at)]
        totals['new_avatars'] += 1
        totals['new_chatted'] += first_chat_at is not None
        totals['new_bought'] += first_outside_buy_at is not None
    known = {day for (day,) in bind.execute(sa.select(_day.c.day))}
    for day, totals in days.items():
        if day in known:
            bind.execute(_day.update().where(_day.c.day == day).values(**totals))
        else:
            bind.execute(_day.insert().values(day=day, chatters=0, **totals))


def upgrade() -> None:
    with op.batch_alter_table('network_day', schema=None) as batch_op:
        for name in COUNTS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default='0'))
        for name in WEI:
            batch_op.add_column(
                sa.Column(name, app.db.types.Wei(precision=78, scale=0), nullable=False, server_default='0')
            )
    _backfill()
    with op.batch_alter_table('network_day', schema=None) as batch_op:  # the defaults only served existing rows
        for name in COUNTS:
            batch_op.alter_column(name, existing_type=sa.Integer(), server_default=None)
        for name in WEI:
            batch_op.alter_column(name, existing_type=app.db.types.Wei(precision=78, scale=0), server_default=None)

    op.create_table('network_window',
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('last_day', sa.Date(), nullable=True),
    sa.PrimaryKeyConstraint('days', name=op.f('pk_network_window'))
    )
    op.create_table('network_avatar_window',
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('avatar_id', sqlmodel.sql.sqltypes.AutoString(length=34), nullable=False),
    sa.Column('chats', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('days', 'avatar_id', name=op.f('pk_network_avatar_window'))
    )
    with op.batch_alter_table('network_avatar_window', schema=None) as batch_op:
        batch_op.create_index('ix_network_avatar_window_days_chats', ['days', 'chats'], unique=False)

    op.create_table('network_creator_window',
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('creator', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('creator_fees', app.db.types.Wei(precision=78, scale=0), nullable=False),
    sa.PrimaryKeyConstraint('days', 'creator', name=op.f('pk_network_creator_window'))
    )
    with op.batch_alter_table('network_creator_window', schema=None) as batch_op:
        batch_op.create_index('ix_network_creator_window_days_creator_fees', ['days', 'creator_fees'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('network_creator_window', schema=None) as batch_op:
        batch_op.drop_index('ix_network_creator_window_days_creator_fees')

    op.drop_table('network_creator_window')
    with op.batch_alter_table('network_avatar_window', schema=None) as batch_op:
        batch_op.drop_index('ix_network_avatar_window_days_chats')

    op.drop_table('network_avatar_window')
    op.drop_table('network_window')
    with op.batch_alter_table('network_day', schema=None) as batch_op:
        for name in reversed(COUNTS + WEI):
            batch_op.drop_column(name)
