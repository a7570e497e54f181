"""What goes with a message as context, and the activity counts, straight from the store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.chain.client import Chain
from app.chat.analytics import inference_spend_by_day, messages_by_day
from app.chat.context import context_messages, recent_history
from app.chat.models import ChatMessage, MessageStatus, Role
from app.config import Settings
from app.db.engine import create_engine, session_factory
from app.main import create_app

AVATAR = "0x" + "11" * 16
OTHER = "0x" + "22" * 16
FAN = "0x" + "aa" * 20
NOW = datetime.now(UTC)


@pytest.fixture
async def session(database_url: str) -> AsyncIterator[AsyncSession]:
    engine = create_engine(database_url, pool_size=0)
    async with session_factory(engine)() as session:
        yield session
    await engine.dispose()


async def exchange(
    session: AsyncSession,
    question: str,
    answer: str,
    *,
    status: str = MessageStatus.complete,
    avatar_id: str = AVATAR,
    fan: str = FAN,
    at: datetime = NOW,
    cost_wei: int = 0,
) -> None:
    prompt = ChatMessage(
        avatar_id=avatar_id,
        fan=fan,
        role=Role.user,
        content=question,
        created_at=at,
        status=MessageStatus.answered if status == MessageStatus.complete else status,
    )
    session.add(prompt)
    await session.flush()
    session.add(
        ChatMessage(
            avatar_id=avatar_id,
            fan=fan,
            role=Role.assistant,
            content=answer,
            reply_to=prompt.id,
            status=status,
            created_at=at,
            cost_wei=cost_wei,
        )
    )
    await session.commit()


async def test_history_keeps_the_latest_complete_exchanges_within_the_budget(session: AsyncSession) -> None:
    await exchange(session, "q1" * 20, "a1" * 20)  # 10 + 10 tokens
    await exchange(session, "q2" * 20, "a2" * 20)
    await exchange(session, "cut", "partial", status=MessageStatus.incomplete)
    await exchange(session, "q3" * 20, "a3" * 20)
    await exchange(session, "elsewhere", "not this thread", avatar_id=OTHER)

    assert [m["content"][:2] for m in await recent_history(session, AVATAR, FAN, 40)] == ["q2", "a2", "q3", "a3"]
    assert [m["content"][:2] for m in await recent_history(session, AVATAR, FAN, 39)] == ["q3", "a3"]
    assert await recent_history(session, AVATAR, FAN, 19) == []
    assert await recent_history(session, AVATAR, FAN, 0) == []
    history = await recent_history(session, AVATAR, FAN, 1_000)
    assert [m["role"] for m in history] == ["user", "assistant"] * 3
    assert context_messages("You are Ada.", history, "new")[0] == {"role": "system", "content": "You are Ada."}
    assert context_messages("You are Ada.", history, "new")[-1] == {"role": "user", "content": "new"}


async def test_activity_counts_fans_messages_by_avatar_and_day(session: AsyncSession) -> None:
    await exchange(session, "today", "yes")
    await exchange(session, "today again", "yes")
    await exchange(session, "another fan", "yes", fan="0x" + "bb" * 20)
    await exchange(session, "two days ago", "yes", at=NOW - timedelta(days=2))
    await exchange(session, "other avatar", "yes", avatar_id=OTHER)

    by_day = await messages_by_day(session, [AVATAR])
    assert by_day == {AVATAR: {(NOW - timedelta(days=2)).date().isoformat(): 1, NOW.date().isoformat(): 3}}
    assert await messages_by_day(session, []) == {}


async def test_inference_spend_sums_what_replies_cost_by_avatar_and_day(session: AsyncSession) -> None:
    await exchange(session, "today", "yes", cost_wei=10**15)
    await exchange(session, "today again", "yes", cost_wei=3 * 10**15, fan="0x" + "bb" * 20)
    await exchange(session, "bad signature", "", status=MessageStatus.failed, cost_wei=10**15)  # the node was paid
    await exchange(session, "cut off", "Half a", status=MessageStatus.incomplete)  # nothing paid
    await exchange(session, "yesterday", "yes", at=NOW - timedelta(days=1), cost_wei=2 * 10**15)
    await exchange(session, "a month ago", "yes", at=NOW - timedelta(days=31), cost_wei=10**18)
    await exchange(session, "unpaid avatar", "yes", avatar_id=OTHER)

    spend = await inference_spend_by_day(session, [AVATAR, OTHER])

    assert spend == {
        AVATAR: {(NOW - timedelta(days=1)).date().isoformat(): str(2 * 10**15), NOW.date().isoformat(): str(5 * 10**15)}
    }
    assert await inference_spend_by_day(session, []) == {}


async def test_the_only_worker_starting_marks_replies_left_pending_as_abandoned(
    session: AsyncSession, settings: Settings, chain: Chain
) -> None:
    await exchange(session, "Still there?", "Half a", status=MessageStatus.pending)
    await exchange(session, "Hello", "Hi", status=MessageStatus.complete)

    async with AsyncTestClient(create_app(settings, chain=chain)):
        pass

    rows = (
        await session.scalars(select(ChatMessage).order_by(ChatMessage.id).execution_options(populate_existing=True))
    ).all()
    assert [(row.status, row.error_code) for row in rows] == [
        (MessageStatus.failed, "abandoned"),
        (MessageStatus.failed, "abandoned"),
        (MessageStatus.answered, None),
        (MessageStatus.complete, None),
    ]
