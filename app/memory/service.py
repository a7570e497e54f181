"""The memory service: recall before a reply, reinforce and queue an extraction with it, the fan's own edits.

Chat calls three things (see :mod:`app.chat.turn`)::

    recalled = await memory.recall(avatar_id, fan, content)      # before building the context
    messages = with_memories(context, recalled)                  # after the persona
    ...
    work = memory.remembered(recalled, content, reply)           # stored with the reply (TurnEnd.memory)
    memory.after_reply(avatar_id, fan, reply_id)                 # once the reply is stored complete

The reply's own transaction reinforces the memories it used and queues its extraction (``memory_extraction``,
:func:`record_reply`); the reply is journaled with them, so a worker killed right after the reply was stored, or a
database that was down, loses neither. ``after_reply`` returns at once. Extraction waits for the conversation to
pause: once a thread has been quiet for ``TWIN_MEMORY_EXTRACT_AFTER_S``, everything the fan said since the last
extraction is extracted in one paid call (:meth:`MemoryService.extract_thread`), so a conversation costs one
extraction per pause instead of one per message, and none runs beside the fan's next reply. (What was said
meanwhile is in the reply's recent history anyway.) One that fails or times out is tried again by
:meth:`MemoryService.retry_due` (a lifespan loop), and the chat message is never held up or lost. Fans come first:
an extraction is a paid call to the same nodes, so while fans wait for a stream (or every stream is taken) it stays
queued until the loop finds the nodes free.

Every write that changes a thread's memories holds the thread's lock (the SQLite writer, a PostgreSQL advisory
lock), and the fan's deletions leave a :class:`ForgottenKey`: an extraction
that was under way while the fan deleted never brings the memory back.

With ``TWIN_MEMORY_EMBEDDING_MODEL`` set, each extraction then embeds the thread's memories that lack a vector
(:meth:`MemoryService.embed_missing`) and each recall embeds the message, both through a trusted node; a failed
call loses nothing: the memory is kept without a vector (tried again at the next extraction) and retrieval uses
full-text search alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta

import msgspec
import structlog
from prometheus_client import Counter
from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from app.config import Settings
from app.db.engine import claim_writer
from app.db.models import utc_now
from app.errors import NotFound
from app.lib.time import aware
from app.memory import forgetting
from app.memory.extraction import Fact, MalformedExtraction, extract
from app.memory.models import MAX_FACT_CHARS, Extraction, ForgottenKey, Memory
from app.memory.retrieval import NOTHING_RECALLED, Recall, SemanticQuery, query_terms, recall, unit_vector_bytes
from app.memory.schemas import MemoryOut, MemoryPatch
from app.proxy.client.client import ProxyClient
from app.proxy.protocol import VerificationLevel

log = structlog.get_logger()

FORGET_EVERYTHING = "*"
RETRY_BATCH = 20  # threads per look of the retry loop
EXTRACTION_BATCH = 8  # messages per extraction call
THREAD_CLAIM = 8 * EXTRACTION_BATCH  # messages one run takes at once; the rest are taken by the next
QUIET_POLL_S = 0.01
ERROR_CHARS = 300
# Words every fact's sentence has: the reply saying them does not show it used that fact.
_SENTENCE_WORDS = frozenset(
    {"name", "training", "live", "love", "like", "hate", "enjoy", "dislike", "goal", "promised", "remind"}
)

EXTRACTIONS = Counter("twin_memory_extractions_total", "Memory extractions, by outcome", ["outcome"])
EMBEDDINGS = Counter("twin_memory_embeddings_total", "Embedding calls for memory, by outcome", ["outcome"])


class TurnMemory(msgspec.Struct, frozen=True):
    """What a complete reply leaves to memory, written in the transaction that stores the reply (and journaled with
    it): the recalled memories it used, to reinforce, and its extraction, to queue."""

    said_at: float  # when the fan's message was taken (seconds since the epoch): recall's asked_at
    model: str  # the avatar's, which the extraction is asked of (not the name the upstream answered under)
    verification_level: str
    half_life_s: float
    used: tuple[int, ...] = ()
    quiet_s: float = 0.0  # how long the thread stays quiet before its extraction runs


async def lock_thread(session: AsyncSession, avatar_id: str, fan: str) -> None:
    """Serialise the writers of one thread's memories until the transaction ends."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:thread, 16))"), {"thread": f"memory:{avatar_id}:{fan}"}
        )
    else:
        await claim_writer(session)


def used_by(recalled: Recall, said: str, reply: str) -> list[int]:
    """The recalled memories this turn used: the message is about them, or the reply speaks of what they say."""
    spoken = set(query_terms(f"{said} {reply}"))
    return [
        memory.id
        for memory in recalled.memories
        if memory.id is not None
        and (memory.id in recalled.about_ids or (set(query_terms(memory.text)) - _SENTENCE_WORDS) & spoken)
    ]


async def prune_thread(session: AsyncSession, avatar_id: str, fan: str, now: datetime, settings: Settings) -> int:
    """Delete the thread's memories that decayed below the threshold and those beyond its cap; how many."""
    memories = (
        await session.scalars(select(Memory).where(col(Memory.avatar_id) == avatar_id, col(Memory.fan) == fan))
    ).all()
    doomed = forgetting.to_forget(
        memories,
        now,
        half_life_s=settings.memory_half_life_s,
        threshold=settings.memory_forget_threshold,
        cap=settings.memory_max_per_thread,
    )
    if doomed:
        await session.execute(delete(Memory).where(col(Memory.id).in_(doomed)))
        forgetting.count_forgotten(doomed)
    return len(doomed)


async def reinforce_used(session: AsyncSession, memory_ids: Sequence[int], now: datetime, half_life_s: float) -> None:
    """Reinforce the memories still there (one the fan deleted meanwhile stays deleted)."""
    if memory_ids:
        for memory in await session.scalars(select(Memory).where(col(Memory.id).in_(memory_ids))):
            forgetting.reinforce(memory, now, half_life_s)


async def record_reply(
    session: AsyncSession,
    work: TurnMemory,
    *,
    avatar_id: str,
    fan: str,
    message_id: int,
    reply_id: int,
    said: str,
    now: datetime,
) -> None:
    """In the transaction that stores a complete reply: reinforce the memories it used, queue its extraction."""
    await lock_thread(session, avatar_id, fan)
    await reinforce_used(session, work.used, now, work.half_life_s)
    session.add(
        Extraction(
            reply_id=reply_id,
            source_message_id=message_id,
            avatar_id=avatar_id,
            fan=fan,
            model=work.model,
            verification_level=work.verification_level,
            said=said,
            said_at=datetime.fromtimestamp(work.said_at, UTC),
            next_attempt_at=now + timedelta(seconds=work.quiet_s),
        )
    )


async def merge_facts(
    session: AsyncSession,
    *,
    avatar_id: str,
    fan: str,
    facts: Iterable[Fact],
    message_id: int | None,
    said: str,
    said_at: datetime,
    now: datetime,
    half_life_s: float,
) -> list[Memory]:
    """Store what the fan said at ``said_at``: a fact already known is reinforced, one whose key holds another value
    is replaced (unless the value holds from later: an edit, a newer statement), and a key the fan had the avatar
    forget after ``said_at`` is left forgotten. The caller holds the thread's lock."""
    forgotten = {
        row.key: aware(row.forgotten_at)
        for row in await session.scalars(
            select(ForgottenKey).where(col(ForgottenKey.avatar_id) == avatar_id, col(ForgottenKey.fan) == fan)
        )
    }
    by_key: dict[str, Fact] = {}
    for fact in facts:
        if said_at > max(
            forgotten.get(fact.key, datetime.min.replace(tzinfo=UTC)),
            forgotten.get(FORGET_EVERYTHING, datetime.min.replace(tzinfo=UTC)),
        ):
            by_key[fact.key] = fact  # the same key twice in one message: the last one holds
    if not by_key:
        return []
    known = {
        memory.key: memory
        for memory in await session.scalars(
            select(Memory).where(
                col(Memory.avatar_id) == avatar_id, col(Memory.fan) == fan, col(Memory.key).in_(by_key)
            )
        )
    }
    stored: list[Memory] = []
    for key, fact in by_key.items():
        memory = known.get(key)
        if memory is None:
            memory = Memory(
                avatar_id=avatar_id,
                fan=fan,
                kind=fact.kind,
                key=key,
                text=fact.text,
                source_message_id=message_id,
                source_text=said,
                valid_from=said_at,
                created_at=now,
                last_used_at=now,
                strength=forgetting.NEW_STRENGTH,
            )
            session.add(memory)
        elif said_at > aware(memory.valid_from):
            if memory.text.casefold() != fact.text.casefold():  # contradicted: the new value replaces the old
                memory.text, memory.kind, memory.created_at = fact.text, fact.kind, now
                memory.embedding = memory.embedding_model = None  # the old text's vector: made again
            memory.source_message_id, memory.source_text, memory.valid_from = message_id, said, said_at
            forgetting.reinforce(memory, now, half_life_s)  # said again: it matters to the fan
        else:
            continue
        stored.append(memory)
    return stored


async def _never_busy() -> bool:
    return False


class MemoryService:
    """One per process: recall, the after-reply work in background tasks, the retry loop, the fan's edits.

    ``nodes_busy`` says whether fans are waiting for a stream (the chat gate's :meth:`~app.chat.gate.ChatGate.busy`):
    extractions wait while it does."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        proxy: ProxyClient,
        settings: Settings,
        nodes_busy: Callable[[], Awaitable[bool]] = _never_busy,
    ) -> None:
        self._sessions = sessions
        self._proxy = proxy
        self._settings = settings
        self._nodes_busy = nodes_busy
        self._tasks: set[asyncio.Task[None]] = set()
        self._quiet_timers: dict[tuple[str, str], asyncio.TimerHandle] = {}  # threads waiting for a pause

    @property
    def enabled(self) -> bool:
        return self._settings.memory_token_budget > 0

    # -- around a reply -------------------------------------------------------------------------------

    async def recall(self, avatar_id: str, fan: str, message: str) -> Recall:
        """The memories to put in the context for ``message``; nothing (and a log line) if they cannot be read.
        With an embedding model, the message is embedded while the candidates are read."""
        if not self.enabled:
            return NOTHING_RECALLED
        asked_at = utc_now()
        embedding = asyncio.create_task(self._embed_message(message)) if self._embedding_model else None
        try:
            async with self._sessions() as session:
                return await recall(
                    session,
                    avatar_id,
                    fan,
                    message,
                    asked_at,
                    half_life_s=self._settings.memory_half_life_s,
                    budget_tokens=self._settings.memory_token_budget,
                    semantic=SemanticQuery(
                        self._embedding_model, self._settings.memory_embedding_min_similarity, embedding
                    )
                    if embedding
                    else None,
                )
        except Exception as error:  # noqa: BLE001 - a reply without memories beats no reply
            log.warning("memory_recall_failed", avatar_id=avatar_id, error=repr(error))
            return Recall(asked_at=asked_at)
        finally:
            if embedding is not None:
                embedding.cancel()  # done already, unless reading the candidates failed

    @property
    def _embedding_model(self) -> str:
        return self._settings.memory_embedding_model

    async def _embed(self, texts: list[str]) -> list[list[float]] | None:
        """Vectors for ``texts`` through a trusted node (paid and verified as a reply is), or None (and a log line)
        on any failure or past the deadline: then memory goes on with full-text search alone."""
        try:
            async with asyncio.timeout(self._settings.memory_embedding_timeout_s):
                result = await self._proxy.embed(model=self._embedding_model, inputs=texts)
        except Exception as error:  # noqa: BLE001 - no node, no embedding upstream, a timeout…: FTS still works
            log.warning("memory_embedding_failed", model=self._embedding_model, texts=len(texts), error=repr(error))
            EMBEDDINGS.labels(outcome="failed").inc()
            return None
        EMBEDDINGS.labels(outcome="ok").inc()
        return result.vectors

    async def _embed_message(self, message: str) -> list[float] | None:
        vectors = await self._embed([message])
        return vectors[0] if vectors else None

    async def embed_missing(self, avatar_id: str, fan: str) -> int:
        """Make the vectors the thread's memories lack (new, changed, an earlier failure, another model): at most
        the thread's cap per call; how many were stored. A text that changed meanwhile keeps no stale vector."""
        if not self._embedding_model:
            return 0
        async with self._sessions() as session:
            missing = (
                await session.execute(
                    select(col(Memory.id), col(Memory.text)).where(
                        col(Memory.avatar_id) == avatar_id,
                        col(Memory.fan) == fan,
                        or_(col(Memory.embedding).is_(None), col(Memory.embedding_model) != self._embedding_model),
                    )
                )
            ).all()
        if not missing or (vectors := await self._embed([text_ for _, text_ in missing])) is None:
            return 0
        async with self._sessions() as session:
            await claim_writer(session)
            for (memory_id, text_), vector in zip(missing, vectors, strict=True):
                await session.execute(
                    update(Memory)
                    .where(col(Memory.id) == memory_id, col(Memory.text) == text_)
                    .values(embedding=unit_vector_bytes(vector), embedding_model=self._embedding_model)
                )
            await session.commit()
        return len(missing)

    def remembered(
        self, recalled: Recall, said: str, reply: str, model: str, verification_level: str
    ) -> TurnMemory | None:
        """What the complete reply to ``said`` leaves to memory, to store with it; None with memory off."""
        if not self.enabled:
            return None
        return TurnMemory(
            recalled.asked_at.timestamp(),
            model,
            verification_level,
            self._settings.memory_half_life_s,
            tuple(used_by(recalled, said, reply)),
            self._settings.memory_extract_after_s,
        )

    def after_reply(self, avatar_id: str, fan: str, reply_id: int) -> None:
        """Extract the thread once it has been quiet for ``TWIN_MEMORY_EXTRACT_AFTER_S`` since this reply, in the
        background: one timer per thread, which a later reply starts again; returns at once."""
        if not self.enabled:
            return
        thread = (avatar_id, fan)
        if (waiting := self._quiet_timers.pop(thread, None)) is not None:
            waiting.cancel()
        self._quiet_timers[thread] = asyncio.get_running_loop().call_later(
            self._settings.memory_extract_after_s, self._quiet, thread, reply_id
        )

    def _quiet(self, thread: tuple[str, str], reply_id: int) -> None:
        del self._quiet_timers[thread]
        self._spawn(self._when_quiet(thread), f"memory-{reply_id}")

    async def _when_quiet(self, thread: tuple[str, str]) -> None:
        if await self._nodes_busy():
            EXTRACTIONS.labels(outcome="deferred").inc()  # the retry loop runs it once the fans are served
            return
        await self.extract_thread(*thread)

    def _spawn(self, work: object, name: str) -> None:
        async def guarded() -> None:
            try:
                await work  # type: ignore[misc]
            except Exception as error:  # noqa: BLE001 - a background failure is a log line; the job stays queued
                log.warning("memory_task_failed", task=name, error=repr(error))

        task = asyncio.create_task(guarded(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settled(self) -> None:
        """Wait for the background work under way, threads waiting for their pause included (tests)."""
        while self._tasks or self._quiet_timers:
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            else:
                await asyncio.sleep(QUIET_POLL_S)

    async def aclose(self) -> None:
        """Stop the background work (what it did not finish stays queued in the database)."""
        for timer in self._quiet_timers.values():
            timer.cancel()
        self._quiet_timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await self.settled()

    # -- extraction and its retries ---------------------------------------------------------------------

    async def retry_due(self) -> int:
        """Extract the threads whose time has come (quiet long enough, after a failure, deferred while fans waited,
        or queued by a worker that stopped), until fans wait again; how many messages were extracted."""
        async with self._sessions() as session:
            due = (
                await session.execute(
                    select(col(Extraction.avatar_id), col(Extraction.fan))
                    .where(col(Extraction.attempts) < self._settings.memory_extraction_attempts)
                    .group_by(col(Extraction.avatar_id), col(Extraction.fan))
                    .having(func.max(Extraction.next_attempt_at) <= utc_now())
                    .order_by(func.min(Extraction.next_attempt_at))
                    .limit(RETRY_BATCH)
                )
            ).all()
        ran = 0
        for avatar_id, fan in due:
            if await self._nodes_busy():
                break
            ran += await self.extract_thread(avatar_id, fan)
        return ran

    async def run_retries(self) -> None:
        """The lifespan loop: :meth:`retry_due` every ``TWIN_MEMORY_RETRY_S``."""
        while True:
            await asyncio.sleep(self._settings.memory_retry_s)
            try:
                await self.retry_due()
            except Exception as error:  # noqa: BLE001 - the loop outlives a database that is down a while
                log.warning("memory_retry_failed", error=repr(error))

    async def extract_thread(self, avatar_id: str, fan: str) -> int:
        """Extract what the fan said in this thread since its last extraction, if the thread is due (quiet long
        enough, none of its messages waiting out a failure or taken by another worker): oldest first, in calls of
        up to :data:`EXTRACTION_BATCH` messages; how many messages were extracted."""
        extracted = 0
        while jobs := await self._claim_thread(avatar_id, fan):
            for start in range(0, len(jobs), EXTRACTION_BATCH):
                if not await self._run(jobs[start : start + EXTRACTION_BATCH]):
                    await self._postpone(jobs[start + EXTRACTION_BATCH :], "an earlier message's extraction failed")
                    return extracted
                extracted += len(jobs[start : start + EXTRACTION_BATCH])
        return extracted

    async def _claim_thread(self, avatar_id: str, fan: str) -> list[Extraction]:
        """Take the thread's queued messages (up to :data:`THREAD_CLAIM`, oldest first) for one attempt, if all of
        them are due: their next attempt goes past this run's deadline, so that no other worker runs them meanwhile.
        Nothing when a message is still waiting (the thread is not quiet yet, a failure's backoff, another run)."""
        now = utc_now()
        live = (
            col(Extraction.avatar_id) == avatar_id,
            col(Extraction.fan) == fan,
            col(Extraction.attempts) < self._settings.memory_extraction_attempts,
        )
        async with self._sessions() as session:
            await lock_thread(session, avatar_id, fan)
            waiting = await session.scalar(select(func.count()).where(*live, col(Extraction.next_attempt_at) > now))
            jobs = list(
                await session.scalars(
                    select(Extraction)
                    .where(*live)
                    .order_by(col(Extraction.said_at), col(Extraction.reply_id))
                    .limit(THREAD_CLAIM)
                )
            )
            if waiting or not jobs:
                await session.rollback()
                return []
            calls = -(-len(jobs) // EXTRACTION_BATCH)
            lease = timedelta(
                seconds=calls * 2 * self._settings.memory_extraction_timeout_s + self._settings.memory_retry_s
            )
            for job in jobs:
                job.attempts += 1
                job.next_attempt_at = now + lease
            await session.commit()
            return jobs

    async def _run(self, jobs: list[Extraction]) -> bool:
        """One extraction call about ``jobs`` (one thread's, oldest first), stored or postponed; False if it
        failed (postponed)."""
        latest = jobs[-1]  # the avatar's model and level as of the newest message
        thread = {"avatar_id": latest.avatar_id, "messages": len(jobs), "reply_id": latest.reply_id}
        try:
            async with asyncio.timeout(self._settings.memory_extraction_timeout_s):
                facts, paid_wei = await extract(
                    self._proxy,
                    model=latest.model,
                    said=[job.said for job in jobs],
                    verification=VerificationLevel(latest.verification_level),
                )
        except MalformedExtraction as error:
            log.warning("memory_extraction_malformed", **thread, error=str(error))
            EXTRACTIONS.labels(outcome="malformed").inc()
            await self._finish(jobs, [])
        except Exception as error:  # noqa: BLE001 - timeout, no node, a refused payment…: tried again later
            log.warning("memory_extraction_failed", **thread, attempt=latest.attempts, error=repr(error))
            EXTRACTIONS.labels(outcome="failed").inc()
            await self._postpone(jobs, repr(error))
            return False
        else:
            log.info("memory_extracted", **thread, facts=len(facts), paid_wei=str(paid_wei))
            EXTRACTIONS.labels(outcome="ok").inc()
            await self._finish(jobs, facts)
        return True

    async def _postpone(self, jobs: list[Extraction], error: str) -> None:
        if not jobs:
            return
        backoff = self._settings.memory_retry_s * 2 ** (max(job.attempts for job in jobs) - 1)
        async with self._sessions() as session:
            await claim_writer(session)
            await session.execute(
                update(Extraction)
                .where(col(Extraction.reply_id).in_([job.reply_id for job in jobs]))
                .values(next_attempt_at=utc_now() + timedelta(seconds=backoff), last_error=error[:ERROR_CHARS])
            )
            await session.commit()

    async def _finish(self, jobs: list[Extraction], facts: list[Fact]) -> None:
        """Merge each message's facts in the order they were said (a later one overrides), then prune the thread."""
        now = utc_now()
        avatar_id, fan = jobs[0].avatar_id, jobs[0].fan
        async with self._sessions() as session:
            await lock_thread(session, avatar_id, fan)
            for index, job in enumerate(jobs):
                await merge_facts(
                    session,
                    avatar_id=avatar_id,
                    fan=fan,
                    facts=[fact for fact in facts if fact.message == index],
                    message_id=job.source_message_id,
                    said=job.said,
                    said_at=aware(job.said_at),
                    now=now,
                    half_life_s=self._settings.memory_half_life_s,
                )
                await session.flush()
            await prune_thread(session, avatar_id, fan, now, self._settings)
            done = [job.reply_id for job in jobs]
            await session.execute(delete(Extraction).where(col(Extraction.reply_id).in_(done)))
            await session.commit()
        await self.embed_missing(avatar_id, fan)

    # -- the fan's own view ------------------------------------------------------------------------------

    def _out(self, memory: Memory, now: datetime) -> MemoryOut:
        assert memory.id is not None
        return MemoryOut(
            id=memory.id,
            kind=memory.kind,
            key=memory.key,
            text=memory.text,
            pinned=memory.pinned,
            strength=round(forgetting.current_strength(memory, now, self._settings.memory_half_life_s), 4),
            use_count=memory.use_count,
            created_at=aware(memory.created_at),
            last_used_at=aware(memory.last_used_at),
            source_message_id=memory.source_message_id,
            source_text=memory.source_text,
        )

    async def list_memories(self, session: AsyncSession, avatar_id: str, fan: str) -> list[MemoryOut]:
        """The fan's memories with the avatar, pinned first, then strongest."""
        now = utc_now()
        memories = (
            await session.scalars(select(Memory).where(col(Memory.avatar_id) == avatar_id, col(Memory.fan) == fan))
        ).all()
        outs = [self._out(memory, now) for memory in memories]
        return sorted(outs, key=lambda out: (not out.pinned, -out.strength, -out.id))

    async def _owned(self, session: AsyncSession, avatar_id: str, fan: str, memory_id: int) -> Memory:
        memory = await session.get(Memory, memory_id)
        if memory is None or memory.avatar_id != avatar_id or memory.fan != fan:  # nobody else's, the creator's neither
            raise NotFound(f"no memory {memory_id} in your thread with this avatar")
        return memory

    async def edit(
        self, session: AsyncSession, avatar_id: str, fan: str, memory_id: int, patch: MemoryPatch
    ) -> MemoryOut:
        now = utc_now()
        await lock_thread(session, avatar_id, fan)
        memory = await self._owned(session, avatar_id, fan, memory_id)
        if patch.text is not None:
            # The fan's word holds from now on: what they said before never overwrites it.
            memory.text, memory.valid_from = " ".join(patch.text.split())[:MAX_FACT_CHARS], now
            memory.embedding = memory.embedding_model = None  # made again for the new text
        if patch.pinned is not None and patch.pinned != memory.pinned:
            # Pinned: frozen at its worth now. Unpinned: decays from now on.
            memory.strength = forgetting.current_strength(memory, now, self._settings.memory_half_life_s)
            memory.pinned, memory.last_used_at = patch.pinned, now
        await session.commit()
        return self._out(memory, now)

    async def _tombstone(self, session: AsyncSession, avatar_id: str, fan: str, key: str) -> None:
        await session.merge(ForgottenKey(avatar_id=avatar_id, fan=fan, key=key, forgotten_at=utc_now()))

    async def forget(self, session: AsyncSession, avatar_id: str, fan: str, memory_id: int) -> None:
        await lock_thread(session, avatar_id, fan)
        memory = await self._owned(session, avatar_id, fan, memory_id)
        await self._tombstone(session, avatar_id, fan, memory.key)
        await session.delete(memory)
        await session.commit()
        forgetting.FORGOTTEN.labels(reason="fan").inc()

    async def forget_everything(self, session: AsyncSession, avatar_id: str, fan: str) -> int:
        await lock_thread(session, avatar_id, fan)
        thread = (col(Memory.avatar_id) == avatar_id, col(Memory.fan) == fan)
        count = await session.scalar(select(func.count()).select_from(Memory).where(*thread)) or 0
        await session.execute(
            delete(ForgottenKey).where(col(ForgottenKey.avatar_id) == avatar_id, col(ForgottenKey.fan) == fan)
        )
        await self._tombstone(session, avatar_id, fan, FORGET_EVERYTHING)
        await session.execute(delete(Memory).where(*thread))
        await session.execute(
            delete(Extraction).where(col(Extraction.avatar_id) == avatar_id, col(Extraction.fan) == fan)
        )
        await session.commit()
        forgetting.FORGOTTEN.labels(reason="fan").inc(count)
        return count


@contextlib.asynccontextmanager
async def running_memory(
    sessions: async_sessionmaker[AsyncSession],
    proxy: ProxyClient,
    settings: Settings,
    nodes_busy: Callable[[], Awaitable[bool]] = _never_busy,
) -> AsyncIterator[MemoryService]:
    """The process's memory service, with its retry loop when ``TWIN_MEMORY_RETRY_S`` > 0."""
    memory = MemoryService(sessions, proxy, settings, nodes_busy)
    loop = (
        asyncio.create_task(memory.run_retries(), name="memory-retries")
        if settings.memory_retry_s and memory.enabled
        else None
    )
    try:
        yield memory
    finally:
        if loop is not None:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        await memory.aclose()
