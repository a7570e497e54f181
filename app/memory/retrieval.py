"""Retrieval before a reply: the thread's memories scored by relevance × strength, within a token budget.

Relevance comes from the database's own full-text search over this thread's memories (FTS5 on SQLite, table
``memory_fts`` with the thread as a column; a GIN-indexed ``to_tsvector('english', text)`` on PostgreSQL): it finds
which of the message's words each memory matches, stemmed. A memory's rank is the sum, over the words it matches,
of ``log(1 + memories / memories matching the word)``: a rare word ("marathon") weighs more than a common one
("love"), the same on both databases. The score is ``(BASE + rank / best rank) × strength`` (``BASE × strength``
without a match), and only scores of at least ``RECALL_FLOOR`` are recalled: facts in use (their name, a goal
they talk about, a fact just said) come with every reply, weak ones only when the conversation touches them, so
the context stays the same size however much is remembered. A thread holds at most
``TWIN_MEMORY_MAX_PER_THREAD`` memories, so a retrieval reads a bounded number of rows however long the history.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.memory.forgetting import current_strength
from app.memory.models import Memory

BASE_RELEVANCE = 0.15
RECALL_FLOOR = 0.25  # unmatched: a strength of 1.67 (a new memory's 2 for a week, or one in use)
ABOUT_SHARE = 0.5  # a memory the message is about: a distinctive word, and at least half the best match
DISTINCTIVE_MATCHES, DISTINCTIVE_SHARE = 2, 0.1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_QUERY_TERMS = 16
MEMORY_HEADER = "What you remember about this fan from earlier conversations (use it naturally, never recite it):"

_WORD = re.compile(r"[a-z0-9]{3,}")
_STOPWORDS = frozenset(
    {
        "and",
        "are",
        "but",
        "can",
        "did",
        "for",
        "from",
        "had",
        "has",
        "have",
        "her",
        "him",
        "his",
        "how",
        "its",
        "just",
        "not",
        "now",
        "our",
        "she",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "they",
        "this",
        "was",
        "were",
        "what",
        "when",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "about",
        "would",
        "could",
        "should",
    }
)


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


async def matching_terms(
    session: AsyncSession, avatar_id: str, fan: str, terms: Sequence[str]
) -> list[tuple[int, int]]:
    """(memory id, term index) for each term a memory of this thread matches, by the database's full-text search
    (stemmed: "training" finds "train")."""
    if session.get_bind().dialect.name == "postgresql":
        rows = await session.execute(
            text(
                "SELECT memory.id, term.index - 1 FROM memory, unnest(CAST(:terms AS text[])) WITH ORDINALITY "
                "AS term(word, index) WHERE memory.avatar_id = :avatar_id AND memory.fan = :fan "
                "AND to_tsvector('english', memory.text) @@ plainto_tsquery('english', term.word)"
            ),
            {"terms": list(terms), "avatar_id": avatar_id, "fan": fan},
        )
    else:
        thread = f'thread:"{thread_token(avatar_id, fan)}"'
        union = " UNION ALL ".join(
            f"SELECT rowid, {index} FROM memory_fts WHERE memory_fts MATCH :q{index}"  # noqa: S608 - only numbers
            for index in range(len(terms))
        )
        rows = await session.execute(
            text(union), {f"q{index}": f'{thread} AND text:"{term}"' for index, term in enumerate(terms)}
        )
    return [(memory_id, index) for memory_id, index in rows]


async def text_ranks(
    session: AsyncSession, avatar_id: str, fan: str, terms: Sequence[str], thread_size: int
) -> tuple[dict[int, float], set[int]]:
    """Memory id → relevance to the terms: the sum over the terms it matches of log(1 + memories / memories matching
    that term), so a rare word ("marathon") counts for more than one every memory has ("love"); and the memories
    that match a distinctive term (one that at most a tenth of the thread, or two memories, match)."""
    if not terms:
        return {}, set()
    matches = await matching_terms(session, avatar_id, fan, terms)
    document_frequency = Counter(index for _, index in matches)
    ranks: dict[int, float] = defaultdict(float)
    distinctive: set[int] = set()
    for memory_id, index in matches:
        ranks[memory_id] += math.log(1 + thread_size / document_frequency[index])
        if document_frequency[index] <= max(DISTINCTIVE_MATCHES, DISTINCTIVE_SHARE * thread_size):
            distinctive.add(memory_id)
    return dict(ranks), distinctive


@dataclass(frozen=True)
class Recall:
    """The memories chosen for one reply: which ones, those the message is about, their tokens, and when the
    message was taken (what the fan said then never overrides what they had the avatar forget later)."""

    memories: list[Memory] = field(default_factory=list)
    about_ids: frozenset[int] = frozenset()
    tokens: int = 0
    asked_at: datetime = EPOCH

    @property
    def block(self) -> str:
        return "\n".join([MEMORY_HEADER, *(f"- {memory.text}" for memory in self.memories)])


NOTHING_RECALLED = Recall()


def choose(
    memories: Sequence[Memory],
    ranks: dict[int, float],
    distinctive: set[int],
    now: datetime,
    *,
    half_life_s: float,
    budget_tokens: int,
) -> Recall:
    """The best-scoring memories whose lines fit ``budget_tokens`` (header included)."""
    best = max(ranks.values(), default=0.0) or 1.0

    def score(memory: Memory) -> float:
        relevance = BASE_RELEVANCE + ranks.get(memory.id, 0.0) / best  # type: ignore[arg-type]
        return relevance * current_strength(memory, now, half_life_s)

    chosen: list[Memory] = []
    used = estimate_tokens(MEMORY_HEADER)
    scored = sorted(((score(memory), memory) for memory in memories), key=lambda pair: pair[0], reverse=True)
    for worth, memory in scored:
        if worth < RECALL_FLOOR:
            break
        cost = estimate_tokens(f"- {memory.text}\n")
        if used + cost > budget_tokens:
            continue
        chosen.append(memory)
        used += cost
    if not chosen:
        return Recall(asked_at=now)
    about = frozenset(m.id for m in chosen if m.id in distinctive and ranks[m.id] >= ABOUT_SHARE * best)
    return Recall(chosen, about, used, now)


async def recall(
    session: AsyncSession,
    avatar_id: str,
    fan: str,
    message: str,
    now: datetime,
    *,
    half_life_s: float,
    budget_tokens: int,
) -> Recall:
    """What to remind the avatar of before it answers ``message`` (nothing with a zero budget)."""
    if budget_tokens <= 0:
        return Recall(asked_at=now)
    memories = (
        await session.scalars(select(Memory).where(col(Memory.avatar_id) == avatar_id, col(Memory.fan) == fan))
    ).all()
    if not memories:
        return Recall(asked_at=now)
    ranks, distinctive = await text_ranks(session, avatar_id, fan, query_terms(message), len(memories))
    return choose(memories, ranks, distinctive, now, half_life_s=half_life_s, budget_tokens=budget_tokens)


def with_memories(messages: list[dict[str, str]], recalled: Recall) -> list[dict[str, str]]:
    """The context with the memory block as a system message right after the persona."""
    if not recalled.memories:
        return messages
    return [messages[0], {"role": "system", "content": recalled.block}, *messages[1:]]
