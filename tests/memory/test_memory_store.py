"""Memories in the database (SQLite, or PostgreSQL with TWIN_TEST_DATABASE_URL): merging, contradiction,
forgotten keys, full-text retrieval ranking, pruning a thread, and the fan's edits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db.engine import create_engine, session_factory
from app.errors import NotFound
from app.memory.extraction import parse_facts
from app.memory.forgetting import current_strength
from app.memory.models import Memory
from app.memory.retrieval import UNASKED_STRENGTH, candidates, choose, query_terms, recall, text_ranks, with_memories
from app.memory.schemas import MemoryPatch
from app.memory.service import MemoryService, lock_thread, merge_facts, prune_thread, reinforce_used, used_by
from app.proxy.node.upstreams.offline_facts import extract_facts

AVATAR = "0x" + "1a" * 16
OTHER_AVATAR = "0x" + "2b" * 16
FAN = "0x" + "3C" * 20
OTHER_FAN = "0x" + "4d" * 20
HALF_LIFE = 30 * 86_400.0
T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url, pool_size=0)
    yield session_factory(engine)
    await engine.dispose()


async def say(
    sessions: async_sessionmaker[AsyncSession], message: str, at: datetime, *, avatar_id: str = AVATAR, fan: str = FAN
) -> list[Memory]:
    """What the demo model extracts from ``message``, merged as the service merges it."""
    async with sessions() as session:
        await lock_thread(session, avatar_id, fan)
        stored = await merge_facts(
            session,
            avatar_id=avatar_id,
            fan=fan,
            facts=parse_facts(extract_facts(message)),
            message_id=None,
            said=message,
            said_at=at,
            now=at,
            half_life_s=HALF_LIFE,
        )
        await session.commit()
        return stored


async def thread(
    sessions: async_sessionmaker[AsyncSession], *, avatar_id: str = AVATAR, fan: str = FAN
) -> dict[str, Memory]:
    async with sessions() as session:
        return {
            m.key: m
            for m in await session.scalars(select(Memory).where(Memory.avatar_id == avatar_id, Memory.fan == fan))
        }


async def recalled_texts(
    sessions: async_sessionmaker[AsyncSession], message: str, at: datetime, budget: int = 300
) -> list[str]:
    async with sessions() as session:
        found = await recall(session, AVATAR, FAN, message, at, half_life_s=HALF_LIFE, budget_tokens=budget)
    return [memory.text for memory in found.memories]


async def test_facts_are_stored_with_their_source(sessions: async_sessionmaker[AsyncSession]) -> None:
    await say(sessions, "call me Sam, I'm training for a marathon", T0)
    memories = await thread(sessions)
    assert {key: m.text for key, m in memories.items()} == {
        "name": "Their name is Sam",
        "goal:marathon": "They are training for a marathon",
    }
    assert memories["name"].source_text == "call me Sam, I'm training for a marathon"
    assert memories["name"].strength == 2.0


async def test_the_same_fact_again_is_merged_and_reinforced(sessions: async_sessionmaker[AsyncSession]) -> None:
    await say(sessions, "call me Sam", T0)
    await say(sessions, "Call me Sam please", T0 + timedelta(days=1))
    memories = await thread(sessions)
    assert list(memories) == ["name"]
    assert memories["name"].use_count == 1
    assert memories["name"].strength > 2.9


async def test_a_contradicted_fact_is_replaced_not_piled_up(sessions: async_sessionmaker[AsyncSession]) -> None:
    await say(sessions, "I live in Paris", T0)
    await say(sessions, "I love olives", T0)
    await say(sessions, "I live in Berlin", T0 + timedelta(days=2))
    await say(sessions, "I hate olives", T0 + timedelta(days=2))
    memories = await thread(sessions)
    assert memories["home"].text == "They live in Berlin"
    assert memories["preference:olives"].text == "They hate olives"
    assert len(memories) == 2
    assert "Paris" not in " ".join(await recalled_texts(sessions, "where do I live, Paris or Berlin?", T0))


async def test_an_older_statement_never_overwrites_a_newer_one(sessions: async_sessionmaker[AsyncSession]) -> None:
    await say(sessions, "I live in Berlin", T0 + timedelta(days=2))
    await say(sessions, "I live in Paris", T0)  # an extraction retried late
    assert (await thread(sessions))["home"].text == "They live in Berlin"


async def test_threads_are_apart(sessions: async_sessionmaker[AsyncSession]) -> None:
    await say(sessions, "call me Sam", T0)
    await say(sessions, "call me Kim", T0, fan=OTHER_FAN)
    await say(sessions, "call me Lee", T0, avatar_id=OTHER_AVATAR)
    assert (await thread(sessions))["name"].text == "Their name is Sam"
    assert await recalled_texts(sessions, "what is my name?", T0) == ["Their name is Sam"]


async def test_retrieval_puts_what_the_message_is_about_first(sessions: async_sessionmaker[AsyncSession]) -> None:
    for index, thing in enumerate(["sushi", "jazz", "chess", "hiking", "olives", "poetry"]):
        await say(sessions, f"I love {thing}", T0 + timedelta(minutes=index))
    texts = await recalled_texts(sessions, "Should I play chess tonight?", T0 + timedelta(hours=1), budget=30)
    assert texts[0] == "They love chess"
    assert len(texts) < 6  # the budget holds: header and a few lines only


async def test_retrieval_prefers_the_stronger_of_unrelated_memories(sessions: async_sessionmaker[AsyncSession]) -> None:
    await say(sessions, "I love sushi", T0)
    await say(sessions, "I love jazz", T0)
    for day in range(1, 4):
        await say(sessions, "I love jazz", T0 + timedelta(days=day))  # said again and again: stronger
    assert (await recalled_texts(sessions, "hello there", T0 + timedelta(days=4), budget=32)) == ["They love jazz"]


async def test_weak_memories_come_only_when_the_message_touches_them(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await say(sessions, "I love sushi", T0)
    a_month_later = T0 + timedelta(days=30)  # strength 1: weak
    assert await recalled_texts(sessions, "what a day", a_month_later) == []
    assert await recalled_texts(sessions, "sushi tonight?", a_month_later) == ["They love sushi"]


async def varied_thread(sessions: async_sessionmaker[AsyncSession]) -> datetime:
    """Thirty memories of every strength, age and pin, some sharing words; the time to ask at."""
    async with sessions() as session:
        for index in range(30):
            session.add(
                Memory(
                    avatar_id=AVATAR,
                    fan=FAN,
                    kind="preference",
                    key=f"preference:{index}",
                    text=f"They love {['sushi', 'jazz', 'chess'][index % 3]} number {index}",
                    last_used_at=T0 - timedelta(days=index * 3),
                    strength=[0.05, 1.0, 1.6, 1.7, 2.0, 4.0, 8.0][index % 7],
                    pinned=index % 5 == 0,
                )
            )
        await session.commit()
    return T0


async def test_retrieval_reads_only_the_memories_that_can_be_recalled(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = await varied_thread(sessions)
    async with sessions() as session:
        every = await candidates(session, AVATAR, FAN, query_terms("chess tonight?"))
        read = await candidates(session, AVATAR, FAN, query_terms("chess tonight?"), unasked=(now, HALF_LIFE))
    expected = {
        memory.id
        for memory in every.memories
        if memory.terms or current_strength(memory, now, HALF_LIFE) >= UNASKED_STRENGTH
    }
    assert {memory.id for memory in read.memories} == expected
    assert 0 < len(read.memories) < len(every.memories)  # the thread's other rows are never read
    assert read.thread_size == every.thread_size == 30  # the words are weighed against the whole thread


@pytest.mark.parametrize("message", ["chess tonight?", "what a day", "sushi or jazz number 4?"])
async def test_reading_only_what_can_be_recalled_recalls_the_same(
    sessions: async_sessionmaker[AsyncSession], message: str
) -> None:
    now = await varied_thread(sessions)
    async with sessions() as session:
        every = await candidates(session, AVATAR, FAN, query_terms(message))
        found = await recall(session, AVATAR, FAN, message, now, half_life_s=HALF_LIFE, budget_tokens=120)
    ranks, distinctive = text_ranks(every.memories, every.thread_size)
    from_all = choose(every.memories, ranks, distinctive, now, half_life_s=HALF_LIFE, budget_tokens=120)
    assert [memory.id for memory in found.memories] == [memory.id for memory in from_all.memories]
    assert found.about_ids == from_all.about_ids
    assert found.memories  # something is recalled, so the comparison says something


async def test_recalled_memories_go_after_the_persona(sessions: async_sessionmaker[AsyncSession]) -> None:
    await say(sessions, "call me Sam", T0)
    async with sessions() as session:
        found = await recall(session, AVATAR, FAN, "hi", T0, half_life_s=HALF_LIFE, budget_tokens=300)
    messages = with_memories([{"role": "system", "content": "You are Ada."}, {"role": "user", "content": "hi"}], found)
    assert [m["role"] for m in messages] == ["system", "system", "user"]
    assert "- Their name is Sam" in messages[1]["content"]
    assert found.tokens > 0


async def test_a_used_memory_is_reinforced_an_unused_one_decays(sessions: async_sessionmaker[AsyncSession]) -> None:
    await say(sessions, "I love sushi and I love jazz", T0)
    later = T0 + timedelta(days=30)
    async with sessions() as session:
        found = await recall(
            session, AVATAR, FAN, "any sushi place you like?", later, half_life_s=HALF_LIFE, budget_tokens=300
        )
        await reinforce_used(
            session, used_by(found, "any sushi place you like?", "Try the one downtown."), later, HALF_LIFE
        )
        await session.commit()
    memories = await thread(sessions)
    assert memories["preference:sushi"].strength == pytest.approx(2.0)  # 2 halved in 30 days, plus 1
    assert memories["preference:sushi"].use_count == 1
    assert memories["preference:jazz"].use_count == 0  # recalled, not used


async def test_pruning_forgets_the_stale_and_keeps_the_cap(sessions: async_sessionmaker[AsyncSession]) -> None:
    await say(sessions, "I love sushi", T0)
    await say(sessions, "I love jazz", T0 + timedelta(days=200))
    for index, thing in enumerate(["chess", "hiking", "olives"]):
        await say(sessions, f"I love {thing}", T0 + timedelta(days=200, hours=index))
    settings = Settings(memory_max_per_thread=3, memory_half_life_s=HALF_LIFE)
    async with sessions() as session:
        assert await prune_thread(session, AVATAR, FAN, T0 + timedelta(days=201), settings) == 2
        await session.commit()
    assert set(await thread(sessions)) == {"preference:chess", "preference:hiking", "preference:olives"}


def service(sessions: async_sessionmaker[AsyncSession]) -> MemoryService:
    return MemoryService(sessions, proxy=None, settings=Settings(memory_half_life_s=HALF_LIFE))  # type: ignore[arg-type]


async def test_the_fan_edits_pins_and_forgets(sessions: async_sessionmaker[AsyncSession]) -> None:
    await say(sessions, "call me Sam, I'm training for a marathon", T0)
    memories = await thread(sessions)
    name_id, goal_id = memories["name"].id, memories["goal:marathon"].id
    assert name_id is not None
    assert goal_id is not None
    memory = service(sessions)
    async with sessions() as session:
        edited = await memory.edit(session, AVATAR, FAN, name_id, MemoryPatch(text="  Their name is   Samantha "))
        pinned = await memory.edit(session, AVATAR, FAN, goal_id, MemoryPatch(pinned=True))
    assert edited.text == "Their name is Samantha"
    assert pinned.pinned
    await say(sessions, "call me Sam", T0 + timedelta(days=1))  # an extraction from before the edit, run late
    assert (await thread(sessions))["name"].text == "Their name is Samantha"
    async with sessions() as session:
        await memory.forget(session, AVATAR, FAN, goal_id)
    assert set(await thread(sessions)) == {"name"}


async def test_a_memory_deleted_while_a_reply_was_written_never_comes_back(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await say(sessions, "call me Sam", T0)
    said_at = datetime.now(UTC)  # the fan sends "I live in Oslo, call me Sam": the reply is being written…
    memory = service(sessions)
    async with sessions() as session:  # …when the fan deletes their name
        await memory.forget(session, AVATAR, FAN, (await thread(sessions))["name"].id)  # type: ignore[arg-type]
    await say(sessions, "I live in Oslo, call me Sam", said_at)  # the turn's extraction ends after the deletion
    assert set(await thread(sessions)) == {"home"}
    await say(sessions, "call me Sam again", datetime.now(UTC))  # said after the deletion: remembered again
    assert "name" in await thread(sessions)


async def test_forget_everything_covers_extractions_under_way(sessions: async_sessionmaker[AsyncSession]) -> None:
    await say(sessions, "call me Sam, I love jazz", T0)
    said_at = datetime.now(UTC)
    async with sessions() as session:
        assert await service(sessions).forget_everything(session, AVATAR, FAN) == 2
    await say(sessions, "I live in Oslo", said_at)
    assert await thread(sessions) == {}


async def test_nobody_else_reaches_a_fans_memory(sessions: async_sessionmaker[AsyncSession]) -> None:
    await say(sessions, "call me Sam", T0)
    name_id = (await thread(sessions))["name"].id
    assert name_id is not None
    memory = service(sessions)
    for avatar_id, fan in ((AVATAR, OTHER_FAN), (OTHER_AVATAR, FAN)):
        async with sessions() as session:
            with pytest.raises(NotFound):
                await memory.edit(session, avatar_id, fan, name_id, MemoryPatch(pinned=True))
            with pytest.raises(NotFound):
                await memory.forget(session, avatar_id, fan, name_id)
            assert await memory.list_memories(session, avatar_id, fan) == []
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Memory)) == 1
