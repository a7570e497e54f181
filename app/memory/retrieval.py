"""Retrieval before a reply: the thread's memories scored by relevance × strength, within a token budget.

Relevance comes from the database's own full-text search over this thread's memories (FTS5 on SQLite, table
``memory_fts`` with the thread as a column; the stored ``to_tsvector('english', text)`` on PostgreSQL): it finds
which of the message's words each memory matches, stemmed. A memory's rank is the sum, over the words it matches,
of ``log(1 + memories / memories matching the word)``: a rare word ("marathon") weighs more than a common one
("love"), the same on both databases. The score is ``(BASE + rank / best rank) × strength`` (``BASE × strength``
without a match), and only scores of at least ``RECALL_FLOOR`` are recalled: facts in use (their name, a goal
they talk about, a fact just said) come with every reply, weak ones only when the conversation touches them, so
the context stays the same size however much is remembered. A retrieval reads only the rows that can be
recalled, so its cost does not follow the thread's size: the memories matching a word of the message (found by the
full-text index) and those still strong enough to be recalled unasked, found through an index on ``recall_until``,
the time a memory's decaying strength falls below that floor (:func:`recall_until`: decay is a fixed function
of time, so the ordering is stored once per use, never rewritten while time passes). One statement returns them
with the terms each matches and the thread's size; scoring is Python over those rows.

With ``TWIN_MEMORY_EMBEDDING_MODEL`` set, the message is embedded through the node while that statement runs (which
then reads every memory of the thread, at most its cap: any of them may be related without a shared word), and each
memory whose vector comes from that model adds its cosine similarity with the message (above
``TWIN_MEMORY_EMBEDDING_MIN_SIMILARITY``, rescaled to 0–1) to its relevance: "what should I eat tonight?" finds
"They love sushi" without a shared word. Without a vector (not made yet, a failed call) relevance is full-text alone.
"""

from __future__ import annotations

import math
import operator
import re
import struct
from collections import Counter, defaultdict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import TextClause, TextualSelect, column, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.lib.time import aware
from app.memory.forgetting import current_strength
from app.memory.models import Memory

BASE_RELEVANCE = 0.15
RECALL_FLOOR = 0.25  # unmatched: a strength of 1.67 (a new memory's 2 for a week, or one in use)
UNASKED_STRENGTH = RECALL_FLOOR / BASE_RELEVANCE  # the least strength a memory no word of the message matches needs
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


@dataclass(frozen=True)
class Candidate:
    """A memory of the thread as retrieval reads it: what scoring needs and the indexes of the query terms its text
    matches (plain rows, no ORM objects: a thread holds up to the cap of them and each reply reads them all)."""

    id: int
    text: str
    strength: float
    last_used_at: datetime
    pinned: bool
    terms: frozenset[int] = frozenset()
    embedding: bytes | None = None  # its vector from the model the query is embedded with, if it has one


@dataclass(frozen=True)
class SemanticQuery:
    """Embeddings at retrieval: the model, the cosine below which a memory is unrelated, and the message's
    vector, being made while the candidates are read (None if that failed: full-text search alone)."""

    model: str
    min_similarity: float
    vector: Awaitable[Sequence[float] | None]


def unit_vector_bytes(vector: Sequence[float]) -> bytes:
    """A vector scaled to length 1 as little-endian float32: how a memory's embedding is stored."""
    norm = math.sqrt(sum(value * value for value in vector)) or 1.0
    return struct.pack(f"<{len(vector)}f", *(value / norm for value in vector))


def similarities(found: Sequence[Candidate], vector: Sequence[float], min_similarity: float) -> dict[int, float]:
    """Memory id → semantic relevance, 0 to 1: its cosine with the message above ``min_similarity``, rescaled.
    Pure Python over at most the thread's cap of stored unit vectors (no vector index needed)."""
    query = struct.unpack(f"<{len(vector)}f", unit_vector_bytes(vector))
    related: dict[int, float] = {}
    for candidate in found:
        if candidate.embedding is None or len(candidate.embedding) != 4 * len(query):
            continue  # not embedded yet, or by a model of another size
        cosine = sum(map(operator.mul, struct.unpack(f"<{len(query)}f", candidate.embedding), query))
        if cosine > min_similarity:
            related[candidate.id] = (cosine - min_similarity) / (1 - min_similarity)
    return related


# The memories retrieval reads: those matching a term of the message, and those strong enough to be recalled
# unasked (``_RECALLABLE``: worth at least UNASKED_STRENGTH now, by the decay of app.memory.forgetting, computed by
# the database from the stored strength and last use); with embeddings, every memory of the thread. Each row comes
# with the thread's size, which weighs the terms (text_ranks).
_THREAD_SIZE = "(SELECT count(*) FROM memory AS thread WHERE thread.avatar_id = :avatar_id AND thread.fan = :fan)"
_POSTGRES_RECALLABLE = (
    "memory.strength >= :floor AND (memory.pinned OR extract(epoch FROM CAST(:now AS timestamptz) - "
    "memory.last_used_at) <= :half_life_s * ln(memory.strength / :floor) / ln(2))"
)
_SQLITE_RECALLABLE = (
    "memory.strength >= :floor AND (memory.pinned OR (julianday(:now) - julianday(memory.last_used_at)) * 86400.0 "
    "<= :half_life_s * log2(memory.strength / :floor))"
)
# PostgreSQL: each term's tsquery once, then which terms each memory's stored tsvector (``document``, generated by
# the migration) matches; a memory's vector only when it comes from the model the message is embedded with.
_POSTGRES_CANDIDATES = (
    "WITH query AS MATERIALIZED (SELECT term.index - 1 AS index, plainto_tsquery('english', term.word) AS tsquery "  # noqa: S608 - constants
    "FROM unnest(CAST(:terms AS text[])) WITH ORDINALITY AS term(word, index)) "
    "SELECT memory.id, memory.text, memory.strength, memory.last_used_at, memory.pinned, "
    "ARRAY(SELECT query.index FROM query WHERE memory.document @@ query.tsquery) AS terms, "
    f"CASE WHEN memory.embedding_model = :embedding_model THEN memory.embedding END AS embedding, {_THREAD_SIZE} "
    "FROM memory WHERE memory.avatar_id = :avatar_id AND memory.fan = :fan"
)
_POSTGRES_MATCHING = (
    f" AND (EXISTS (SELECT FROM query WHERE memory.document @@ query.tsquery) OR {_POSTGRES_RECALLABLE})"
)
# SQLite: FTS5 finds the thread's memories matching each term ({hits}: one SELECT per term, UNION ALL).
_SQLITE_CANDIDATES = (
    "SELECT memory.id, memory.text, memory.strength, memory.last_used_at, memory.pinned, hit.terms, "  # noqa: S608 - constants
    f"CASE WHEN memory.embedding_model = :embedding_model THEN memory.embedding END AS embedding, {_THREAD_SIZE} "
    "FROM memory LEFT JOIN (SELECT rowid AS id, group_concat(term) AS terms FROM ({hits}) GROUP BY rowid) AS hit "
    "ON hit.id = memory.id WHERE memory.avatar_id = :avatar_id AND memory.fan = :fan"
)
_SQLITE_MATCHING = f" AND (hit.id IS NOT NULL OR {_SQLITE_RECALLABLE})"
_SQLITE_NO_TERMS = (
    "SELECT memory.id, memory.text, memory.strength, memory.last_used_at, memory.pinned, NULL AS terms, "  # noqa: S608 - constants
    f"CASE WHEN memory.embedding_model = :embedding_model THEN memory.embedding END AS embedding, {_THREAD_SIZE} "
    "FROM memory WHERE memory.avatar_id = :avatar_id AND memory.fan = :fan"
)


def _candidates_statement(
    dialect: str,
    terms: Sequence[str],
    avatar_id: str,
    fan: str,
    embedding_model: str | None,
    unasked: tuple[datetime, float] | None,
) -> TextualSelect:
    """One statement for the thread's memories that can be recalled, the terms each matches (stemmed: "training"
    finds "train") by the database's full-text search, and their vectors from ``embedding_model``; the thread's
    rows come from the (avatar_id, fan, key) index. ``unasked``: (now, half-life) to read only the memories that
    match or are strong enough to be recalled unasked; None to read every memory of the thread."""
    statement: TextClause
    if dialect == "postgresql":
        statement = text(_POSTGRES_CANDIDATES + (_POSTGRES_MATCHING if unasked else "")).bindparams(terms=list(terms))
    elif not terms:
        statement = text(_SQLITE_NO_TERMS + (f" AND {_SQLITE_RECALLABLE}" if unasked else ""))
    else:
        thread = f'thread:"{thread_token(avatar_id, fan)}"'
        hits = " UNION ALL ".join(
            f"SELECT rowid, {index} AS term FROM memory_fts WHERE memory_fts MATCH :q{index}"  # noqa: S608 - numbers
            for index in range(len(terms))
        )
        statement = text(_SQLITE_CANDIDATES.format(hits=hits) + (_SQLITE_MATCHING if unasked else "")).bindparams(
            **{f"q{index}": f'{thread} AND text:"{term}"' for index, term in enumerate(terms)}
        )
    if unasked:
        now, half_life_s = unasked
        # A hair below the exact floor: the database's float and clock arithmetic never drops one Python keeps.
        statement = statement.bindparams(now=now, half_life_s=half_life_s, floor=UNASKED_STRENGTH * 0.99)
    table = Memory.__table__.c  # type: ignore[attr-defined]
    return statement.bindparams(avatar_id=avatar_id, fan=fan, embedding_model=embedding_model).columns(
        table.id,
        table.text,
        table.strength,
        table.last_used_at,
        table.pinned,
        column("terms"),
        table.embedding,
        column("thread_size"),
    )


def _term_indexes(matched: str | list[int] | None) -> frozenset[int]:
    """SQLite's comma-separated group_concat, PostgreSQL's array."""
    if not matched:
        return frozenset()
    return frozenset(int(index) for index in (matched.split(",") if isinstance(matched, str) else matched))


@dataclass(frozen=True)
class Candidates:
    """What one retrieval read: the memories that can be recalled, and how many the thread holds."""

    memories: list[Candidate]
    thread_size: int


async def candidates(
    session: AsyncSession,
    avatar_id: str,
    fan: str,
    terms: Sequence[str],
    embedding_model: str | None = None,
    unasked: tuple[datetime, float] | None = None,
) -> Candidates:
    """The thread's memories that can be recalled (all of them without ``unasked``) with the query terms each
    matches: one round trip."""
    statement = _candidates_statement(session.get_bind().dialect.name, terms, avatar_id, fan, embedding_model, unasked)
    memories: list[Candidate] = []
    thread_size = 0
    for memory_id, text_, strength, last_used_at, pinned, matched, embedding, size in await session.execute(statement):
        memories.append(
            Candidate(memory_id, text_, strength, aware(last_used_at), pinned, _term_indexes(matched), embedding)
        )
        thread_size = size
    return Candidates(memories, thread_size)


def text_ranks(found: Sequence[Candidate], thread_size: int) -> tuple[dict[int, float], set[int]]:
    """Memory id → relevance to the query: the sum over the terms it matches of log(1 + memories / memories matching
    that term), so a rare word ("marathon") counts for more than one every memory has ("love"); and the memories
    that match a distinctive term (one that at most a tenth of the thread, or two memories, match). ``found`` holds
    every memory that matches a term; ``thread_size`` counts them all."""
    document_frequency = Counter(index for candidate in found for index in candidate.terms)
    ranks: dict[int, float] = defaultdict(float)
    distinctive: set[int] = set()
    for candidate in found:
        for index in candidate.terms:
            ranks[candidate.id] += math.log(1 + thread_size / document_frequency[index])
            if document_frequency[index] <= max(DISTINCTIVE_MATCHES, DISTINCTIVE_SHARE * thread_size):
                distinctive.add(candidate.id)
    return dict(ranks), distinctive


@dataclass(frozen=True)
class Recall:
    """The memories chosen for one reply: which ones, those the message is about, their tokens, and when the
    message was taken (what the fan said then never overrides what they had the avatar forget later)."""

    memories: list[Candidate] = field(default_factory=list)
    about_ids: frozenset[int] = frozenset()
    tokens: int = 0
    asked_at: datetime = EPOCH

    @property
    def block(self) -> str:
        return "\n".join([MEMORY_HEADER, *(f"- {memory.text}" for memory in self.memories)])


NOTHING_RECALLED = Recall()


def choose(
    memories: Sequence[Candidate],
    ranks: dict[int, float],
    distinctive: set[int],
    now: datetime,
    *,
    half_life_s: float,
    budget_tokens: int,
    related: dict[int, float] | None = None,
) -> Recall:
    """The best-scoring memories whose lines fit ``budget_tokens`` (header included); ``related``: semantic
    relevance (:func:`similarities`), added to the full-text one."""
    best = max(ranks.values(), default=0.0) or 1.0
    related = related or {}

    def score(memory: Candidate) -> float:
        relevance = BASE_RELEVANCE + ranks.get(memory.id, 0.0) / best + related.get(memory.id, 0.0)
        return relevance * current_strength(memory, now, half_life_s)

    chosen: list[Candidate] = []
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
    about = frozenset(
        m.id
        for m in chosen
        if (m.id in distinctive and ranks[m.id] >= ABOUT_SHARE * best) or related.get(m.id, 0.0) >= ABOUT_SHARE
    )
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
    semantic: SemanticQuery | None = None,
) -> Recall:
    """What to remind the avatar of before it answers ``message`` (nothing with a zero budget): one query for the
    memories that can be recalled, then scoring in Python over them (with ``semantic``, cosine similarity too, over
    every memory of the thread)."""
    if budget_tokens <= 0:
        return Recall(asked_at=now)
    read = await candidates(
        session,
        avatar_id,
        fan,
        query_terms(message),
        semantic.model if semantic else None,
        unasked=None if semantic else (now, half_life_s),
    )
    vector = await semantic.vector if semantic else None
    found = read.memories
    if not found:
        return Recall(asked_at=now)
    ranks, distinctive = text_ranks(found, read.thread_size)
    related = similarities(found, vector, semantic.min_similarity) if semantic and vector else None
    return choose(found, ranks, distinctive, now, half_life_s=half_life_s, budget_tokens=budget_tokens, related=related)


def with_memories(messages: list[dict[str, str]], recalled: Recall) -> list[dict[str, str]]:
    """The context with the memory block as a system message right after the persona."""
    if not recalled.memories:
        return messages
    return [messages[0], {"role": "system", "content": recalled.block}, *messages[1:]]
