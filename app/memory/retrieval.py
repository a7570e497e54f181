"""Retrieval before a reply: the thread's memories scored by relevance × strength, within a token budget.

Relevance comes from the database's own full-text search over the memories of this thread only: FTS5's
``bm25`` on SQLite (table ``memory_fts``, the thread a column of it), ``ts_rank`` over ``to_tsvector('english',
text)`` on PostgreSQL. A memory the message matches scores ``(BASE + 0.5 + 0.5 · rank / best rank) × strength``,
one it does not match ``BASE × strength``: strong facts about the fan (their name) come along with every reply,
weak ones only when the conversation touches them. A thread holds at most ``TWIN_MEMORY_MAX_PER_THREAD``
memories, so a retrieval reads a bounded number of rows however long the history.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.memory.forgetting import current_strength
from app.memory.models import Memory

BASE_RELEVANCE = 0.15
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_QUERY_TERMS = 16
MEMORY_HEADER = "What you remember about this fan from earlier conversations (use it naturally, never recite it):"

_WORD = re.compile(r"[a-z0-9]{3,}")
_STOPWORDS = frozenset({
    "and", "are", "but", "can", "did", "for", "from", "had", "has", "have", "her", "him", "his", "how", "its",
    "just", "not", "now", "our", "she", "that", "the", "their", "them", "then", "there", "they", "this", "was",
    "were", "what", "when", "who", "why", "will", "with", "you", "your", "about", "would", "could", "should",
})


def estimate_tokens(text_: str) -> int:
    return math.ceil(len(text_) / 4)


def query_terms(message: str) -> list[str]:
    """The message's searchable words: lower-case alphanumerics (so nothing in them is query syntax)."""
    terms: list[str] = []
    for word in _WORD.findall(message.lower()):
        if word not in _STOPWORDS and word not in terms:
            terms.append(word)
    return terms[:MAX_QUERY_TERMS]


def thread_token(avatar_id: str, fan: str) -> str:
    """The thread as one FTS5 token (the migration's triggers write the same)."""
    return f"t{avatar_id[2:].lower()}{fan[2:].lower()}"


async def text_ranks(session: AsyncSession, avatar_id: str, fan: str, terms: Sequence[str]) -> dict[int, float]:
    """Memory id → full-text rank (higher is more relevant) for the memories of this thread that match."""
    if not terms:
        return {}
    if session.bind.dialect.name == "postgresql":
        rows = await session.execute(text(
            "SELECT id, ts_rank(to_tsvector('english', text), query) FROM memory, to_tsquery('english', :query) query "
            "WHERE avatar_id = :avatar_id AND fan = :fan AND to_tsvector('english', text) @@ query"),
            {"query": " | ".join(terms), "avatar_id": avatar_id, "fan": fan})
    else:
        words = " OR ".join(f'"{term}"' for term in terms)
        rows = await session.execute(text(
            "SELECT rowid, -bm25(memory_fts, 1.0, 0.0) FROM memory_fts WHERE memory_fts MATCH :query"),
            {"query": f'thread:"{thread_token(avatar_id, fan)}" AND text:({words})'})
    return {memory_id: float(rank) for memory_id, rank in rows}


@dataclass(frozen=True)
class Recall:
    """The memories chosen for one reply: which ones, which matched the message, their tokens, and when the
    message was taken (what the fan said then never overrides what they had the avatar forget later)."""

    memories: list[Memory] = field(default_factory=list)
    matched_ids: frozenset[int] = frozenset()
    tokens: int = 0
    asked_at: datetime = EPOCH

    @property
    def block(self) -> str:
        return "\n".join([MEMORY_HEADER, *(f"- {memory.text}" for memory in self.memories)])


NOTHING_RECALLED = Recall()


def choose(memories: Sequence[Memory], ranks: dict[int, float], now: datetime, *, half_life_s: float,
           budget_tokens: int) -> Recall:
    """The best-scoring memories whose lines fit ``budget_tokens`` (header included)."""
    best = max(ranks.values(), default=0.0) or 1.0

    def score(memory: Memory) -> float:
        rank = ranks.get(memory.id) if memory.id is not None else None
        relevance = BASE_RELEVANCE + (0.5 + 0.5 * max(rank, 0.0) / best if rank is not None else 0.0)
        return relevance * current_strength(memory, now, half_life_s)

    chosen: list[Memory] = []
    used = estimate_tokens(MEMORY_HEADER)
    for memory in sorted(memories, key=score, reverse=True):
        cost = estimate_tokens(f"- {memory.text}\n")
        if used + cost > budget_tokens:
            continue
        chosen.append(memory)
        used += cost
    if not chosen:
        return Recall(asked_at=now)
    return Recall(chosen, frozenset(m.id for m in chosen if m.id in ranks), used, now)  # type: ignore[misc]


async def recall(session: AsyncSession, avatar_id: str, fan: str, message: str, now: datetime, *,
                 half_life_s: float, budget_tokens: int) -> Recall:
    """What to remind the avatar of before it answers ``message`` (nothing with a zero budget)."""
    if budget_tokens <= 0:
        return Recall(asked_at=now)
    memories = (await session.scalars(select(Memory).where(Memory.avatar_id == avatar_id, Memory.fan == fan))).all()
    if not memories:
        return Recall(asked_at=now)
    ranks = await text_ranks(session, avatar_id, fan, query_terms(message))
    return choose(memories, ranks, now, half_life_s=half_life_s, budget_tokens=budget_tokens)


def with_memories(messages: list[dict[str, str]], recalled: Recall) -> list[dict[str, str]]:
    """The context with the memory block as a system message right after the persona."""
    if not recalled.memories:
        return messages
    return [messages[0], {"role": "system", "content": recalled.block}, *messages[1:]]
