"""Embeddings in memory (SQLite, or PostgreSQL with TWIN_TEST_DATABASE_URL): cosine similarity mixed with full-text
relevance, vectors made through a real node whose upstream is a fake speaking OpenAI's embeddings protocol, and
failures that lose nothing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.chain.client import Chain
from app.config import Settings
from app.memory.models import Memory
from app.memory.retrieval import SemanticQuery, recall, unit_vector_bytes
from app.memory.service import MemoryService
from app.proxy.accounts import platform_wallet
from app.proxy.client.client import NoNodeAvailable, ProxyClient
from app.proxy.node.app import in_process_node
from tests.conftest import connected_chain_of_its_own
from tests.memory.test_memory_store import AVATAR, FAN, HALF_LIFE, T0, say, sessions, thread
from tests.proxy.conftest import FAKE_KEYS, node_settings
from tests.proxy.fakes import FakeProviders, fake_embedding, serving

__all__ = ["sessions"]  # the database fixture, shared with the store's tests

A_MONTH_LATER = T0 + timedelta(days=30)  # a new memory's strength has halved to 1: recalled only when related
SUSHI, JAZZ = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]


async def vector(value: Sequence[float] | None) -> Sequence[float] | None:
    return value


async def set_vector(sessions: async_sessionmaker[AsyncSession], key: str, value: list[float], model: str) -> None:
    async with sessions() as session:
        await session.execute(
            update(Memory)
            .where(Memory.key == key)  # type: ignore[arg-type]
            .values(embedding=unit_vector_bytes(value), embedding_model=model)
        )
        await session.commit()


async def recalled(
    sessions: async_sessionmaker[AsyncSession], message: str, query: Sequence[float] | None, model: str = "embed"
) -> list[str]:
    semantic = SemanticQuery(model, 0.3, vector(query)) if query is not None else None
    async with sessions() as session:
        found = await recall(
            session, AVATAR, FAN, message, A_MONTH_LATER, half_life_s=HALF_LIFE, budget_tokens=300, semantic=semantic
        )
    return [memory.text for memory in found.memories]


async def test_a_memory_close_in_meaning_is_recalled_without_a_shared_word(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await say(sessions, "I love sushi and I love jazz", T0)
    await set_vector(sessions, "preference:sushi", SUSHI, "embed")
    await set_vector(sessions, "preference:jazz", JAZZ, "embed")
    question = "what should I eat tonight?"

    assert await recalled(sessions, question, None) == []  # full-text search alone finds nothing
    assert await recalled(sessions, question, [0.9, 0.1, 0.0]) == ["They love sushi"]
    assert await recalled(sessions, question, [0.1, 0.9, 0.0]) == ["They love jazz"]
    # Vectors from another model are in another space: never compared.
    assert await recalled(sessions, question, [0.9, 0.1, 0.0], model="other") == []
    # The message's embedding failed: full-text relevance still works.
    async with sessions() as session:
        found = await recall(
            session,
            AVATAR,
            FAN,
            "sushi tonight?",
            A_MONTH_LATER,
            half_life_s=HALF_LIFE,
            budget_tokens=300,
            semantic=SemanticQuery("embed", 0.3, vector(None)),
        )
    assert [memory.text for memory in found.memories] == ["They love sushi"]


@pytest.fixture(scope="module")
async def chain(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Chain]:
    async with connected_chain_of_its_own(tmp_path_factory) as chain:
        yield chain


@pytest.fixture
async def proxy(chain: Chain) -> AsyncIterator[tuple[ProxyClient, FakeProviders]]:
    """The backend's proxy client and a trusted in-process node whose OpenAI upstream (the fake) embeds."""
    os.environ.update(FAKE_KEYS)
    providers = FakeProviders()
    async with serving(lambda _: providers) as upstream_url:
        settings = node_settings(upstream_url)
        async with in_process_node(settings, chain, name="memory-embeddings") as node:
            client = ProxyClient(
                chain,
                platform_wallet(settings, chain),
                settings,
                transports={node.endpoint: node.transport},
                own_tee_ids=[node.tee_id],
            )
            try:
                yield client, providers
            finally:
                await client.aclose()


def memory_service(sessions: async_sessionmaker[AsyncSession], proxy: ProxyClient, model: str) -> MemoryService:
    settings = Settings(memory_half_life_s=HALF_LIFE, memory_embedding_model=model, memory_embedding_timeout_s=10)
    return MemoryService(sessions, proxy, settings)


async def test_vectors_are_made_through_the_node_and_remade_when_the_text_changes(
    sessions: async_sessionmaker[AsyncSession], proxy: tuple[ProxyClient, FakeProviders]
) -> None:
    client, providers = proxy
    memory = memory_service(sessions, client, "embed-fake")
    await say(sessions, "call me Sam, I love olives", T0)

    assert await memory.embed_missing(AVATAR, FAN) == 2
    stored = await thread(sessions)
    assert {m.embedding_model for m in stored.values()} == {"embed-fake"}
    assert stored["name"].embedding == unit_vector_bytes(fake_embedding("Their name is Sam"))
    assert providers.requests[-1]["body"]["input"] == ["Their name is Sam", "They love olives"]
    assert await memory.embed_missing(AVATAR, FAN) == 0  # nothing missing: no call
    assert len(providers.requests) == 1

    await say(sessions, "I hate olives", T0 + timedelta(days=1))  # contradicted: the old text's vector goes
    assert (await thread(sessions))["preference:olives"].embedding is None
    assert await memory.embed_missing(AVATAR, FAN) == 1
    assert (await thread(sessions))["preference:olives"].embedding == unit_vector_bytes(
        fake_embedding("They hate olives")
    )


async def test_recall_embeds_the_message_through_the_node(
    sessions: async_sessionmaker[AsyncSession], proxy: tuple[ProxyClient, FakeProviders]
) -> None:
    client, providers = proxy
    memory = memory_service(sessions, client, "embed-fake")
    await say(sessions, "I love sushi", T0)
    await memory.embed_missing(AVATAR, FAN)

    found = await memory.recall(AVATAR, FAN, "sushi tonight?")

    assert [m.text for m in found.memories] == ["They love sushi"]
    assert providers.requests[-1]["body"]["input"] == ["sushi tonight?"]


async def test_a_model_the_node_cannot_embed_loses_nothing(
    sessions: async_sessionmaker[AsyncSession], proxy: tuple[ProxyClient, FakeProviders]
) -> None:
    client, _ = proxy
    memory = memory_service(sessions, client, "twin-offline-demo")  # served, but no upstream of it embeds
    await say(sessions, "I love sushi", T0)

    assert await memory.embed_missing(AVATAR, FAN) == 0
    assert (await thread(sessions))["preference:sushi"].embedding is None
    assert [m.text for m in (await memory.recall(AVATAR, FAN, "sushi tonight?")).memories] == ["They love sushi"]

    # Once the model embeds, the next extraction makes the vector the failure left out.
    assert await memory_service(sessions, client, "embed-fake").embed_missing(AVATAR, FAN) == 1


async def test_no_node_at_all_or_a_slow_one_loses_nothing(sessions: async_sessionmaker[AsyncSession]) -> None:
    class Unreachable:
        async def embed(self, *, model: str, inputs: Sequence[str]) -> None:
            raise NoNodeAvailable("the NodeRegistry lists no enabled node with a recent heartbeat")

    class Slow:
        async def embed(self, *, model: str, inputs: Sequence[str]) -> None:
            await asyncio.sleep(60)

    await say(sessions, "I love sushi", T0)
    for proxy in (Unreachable(), Slow()):
        settings = Settings(
            memory_half_life_s=HALF_LIFE, memory_embedding_model="embed-fake", memory_embedding_timeout_s=0.2
        )
        memory = MemoryService(sessions, proxy, settings)  # type: ignore[arg-type]
        assert await memory.embed_missing(AVATAR, FAN) == 0
        assert [m.text for m in (await memory.recall(AVATAR, FAN, "sushi tonight?")).memories] == ["They love sushi"]
