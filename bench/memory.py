"""Avatar memory at 100 to 100,000 messages: the memory (app/memory) beside "keep the whole thread and search it".

    ./dev.sh bench memory [--sizes 100 1000 10000 100000] [--probes 200]

A synthetic fan talks to an avatar, one message an hour, for each size. The history is written straight into
the database in bulk (each message and a short reply, as chat stores them; no node is driven 100,000 times), and
the memory is driven through its own functions at every message that carries a fact or asks about one, at that
message's time: the offline demo model's extraction (the same patterns as the embedded default), merge
(dedup, contradiction), recall, reinforcement of what was used, and pruning of the thread. Planted facts:

* **often**: name, home, goal and five tastes, said at the start and asked about in turn every 20 messages;
* **once**: a new taste every 120 messages, asked about once, 200 messages later, never again;
* **never**: a new taste every 120 messages, never mentioned again;
* **contradicted**: a new "I love X" every 120 messages, 300 messages later "I hate X", asked about 20 later.

Figures per size (SQLite on a fresh file; PostgreSQL too with TWIN_BENCH_DATABASE_URL, a scratch database
created on that server and dropped afterwards), measured after the whole history of every size over ``--probes``
questions about the often-asked facts — the same questions at every size, asked of each size in turn, so that the
machine's load weighs on every size alike:

* context tokens per reply: the memory block (estimated as characters / 4) vs every message of the thread the
  question matches (what searching a kept thread puts in the context);
* retrieval p50/p99 (ms): ``app.memory.retrieval.recall`` vs a full-text search of the whole thread (FTS5 /
  a GIN-indexed tsvector, the same engines), each in a fresh session;
* database size: the memory's tables and index vs the thread's messages and their full-text index;
* recall of still-used facts: at every question about an often, once or contradicted fact (at its time), the
  share whose current text was in the context (the baseline's at the end: the thread keeps everything);
* stale facts forgotten: facts not mentioned for 180 days at the end that are gone (the baseline forgets none);
* contradicted facts wrongly recalled: questions about a contradicted fact whose context still had the old value.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.chat.models import ChatMessage, MessageStatus, Role
from app.config import Settings
from app.db import migrate
from app.db.engine import create_engine, session_factory
from app.memory.extraction import parse_facts
from app.memory.retrieval import Recall, estimate_tokens, query_terms, recall, thread_token
from app.memory.service import lock_thread, merge_facts, prune_thread, reinforce_used, used_by
from app.proxy.node.upstreams.offline_facts import extract_facts

AVATAR = "0x" + "5e" * 16
FAN = "0x" + "Fa" * 20
START = datetime(2020, 1, 1, tzinfo=UTC)
STEP = timedelta(hours=1)
STALE_AFTER = timedelta(days=180)
ASK_EVERY = 20
PLANT_EVERY = 40  # once, never and contradicted facts take turns: each kind every 120 messages
ONCE_ASKED_AFTER, CONTRADICTED_AFTER, CONTRADICTION_ASKED_AFTER = 200, 300, 20
BULK_ROWS = 5_000
SETTINGS = Settings()
CORE = [
    ("call me Sam", "what is my name again?", "Their name is Sam"),
    ("I live in Lyon", "where do I live again?", "They live in Lyon"),
    (
        "I'm training for a marathon",
        "how should I train for the marathon this week?",
        "They are training for a marathon",
    ),
]
FILLER_WORDS = (
    "weather",
    "coffee",
    "music",
    "weekend",
    "work",
    "movie",
    "garden",
    "book",
    "city",
    "dinner",
    "friends",
    "morning",
    "travel",
    "idea",
    "project",
    "walk",
    "rain",
    "sunday",
    "news",
    "game",
)


def word(rng: random.Random) -> str:
    return "".join(rng.choice("bcdfghjklmnpqrstvwxz") + rng.choice("aeiou") for _ in range(4))


@dataclass
class Fact:
    subject: str
    kind: str
    text: str
    question: str
    last_mentioned: datetime
    old_text: str | None = None  # a contradiction's: what it replaces, as remembered and as said
    old_subject: str | None = None


@dataclass
class Script:
    """The fan's messages in order; at some, a fact is planted (``say``) or asked about (``ask``)."""

    size: int
    messages: list[str] = field(default_factory=list)
    says: dict[int, Fact] = field(default_factory=dict)
    asks: dict[int, Fact] = field(default_factory=dict)
    facts: list[Fact] = field(default_factory=list)


def script(size: int, seed: int = 16) -> Script:
    rng = random.Random(seed)
    plan = Script(size)
    core = [Fact(said, "often", fact, question, START) for said, question, fact in CORE]
    for _ in range(5):
        taste = word(rng)
        core.append(Fact(f"I love {taste}", "often", f"They love {taste}", f"any news about {taste}?", START))
    messages: dict[int, str] = {}
    for index, fact in enumerate(core):
        messages[index], plan.says[index] = fact.subject, fact
    for index in range(ASK_EVERY, size, ASK_EVERY):  # 0 mod 20; plants are 5 mod 10, once-questions 6, contradictions 8
        fact = core[(index // ASK_EVERY) % len(core)]
        messages.setdefault(index, fact.question)
        plan.asks.setdefault(index, fact)
    for turn, index in enumerate(range(25, size, PLANT_EVERY)):  # 5 mod 10: never on a question's turn
        taste = word(rng)
        kind = ("once", "never", "contradicted")[turn % 3]
        fact = Fact(f"I love {taste}", kind, f"They love {taste}", f"how do I feel about {taste}?", START)
        messages[index], plan.says[index] = fact.subject, fact
        if kind == "once" and index + ONCE_ASKED_AFTER < size:
            messages[index + ONCE_ASKED_AFTER + 1] = fact.question
            plan.asks[index + ONCE_ASKED_AFTER + 1] = fact
        if kind == "contradicted" and index + CONTRADICTED_AFTER < size:
            said = index + CONTRADICTED_AFTER + 3
            messages[said] = f"I hate {taste}"
            plan.says[said] = Fact(
                f"I hate {taste}",
                "contradiction",
                f"They hate {taste}",
                fact.question,
                START,
                old_text=fact.text,
                old_subject=fact.subject,
            )
            if said + CONTRADICTION_ASKED_AFTER < size:
                messages[said + CONTRADICTION_ASKED_AFTER] = fact.question
                plan.asks[said + CONTRADICTION_ASKED_AFTER] = plan.says[said]
        plan.facts.append(fact)
    plan.facts[:0] = core
    plan.messages = [messages.get(index) or " ".join(rng.sample(FILLER_WORDS, 6)) for index in range(size)]
    return plan


@dataclass
class Outcome:
    asked: int = 0
    recalled: int = 0
    contradicted_asked: int = 0
    contradicted_wrong: int = 0


async def write_history(sessions: async_sessionmaker[AsyncSession], plan: Script) -> None:
    """Every message and a short reply, in bulk, as chat stores them."""
    rows = []
    for index, content in enumerate(plan.messages):
        at = START + index * STEP
        common = {"avatar_id": AVATAR, "fan": FAN, "created_at": at, "completed_at": at, "cost_wei": 0}
        rows.append(
            {
                **common,
                "id": 2 * index + 1,
                "role": Role.user,
                "content": content,
                "client_msg_id": f"m{index}",
                "status": MessageStatus.answered,
            }
        )
        rows.append(
            {
                **common,
                "id": 2 * index + 2,
                "role": Role.assistant,
                "content": "Noted, thank you.",
                "reply_to": 2 * index + 1,
                "status": MessageStatus.complete,
            }
        )
    async with sessions() as session:
        for start in range(0, len(rows), BULK_ROWS):
            await session.execute(insert(ChatMessage), rows[start : start + BULK_ROWS])
        await session.commit()


async def drive_memory(sessions: async_sessionmaker[AsyncSession], plan: Script) -> Outcome:
    """The memory's work at every message that says or asks something, at that message's time."""
    outcome = Outcome()
    half_life = SETTINGS.memory_half_life_s
    for index in sorted(plan.says.keys() | plan.asks.keys()):
        at = START + index * STEP
        content = plan.messages[index]
        async with sessions() as session:  # one transaction where chat takes two: the bench's only shortcut
            await lock_thread(session, AVATAR, FAN)
            found = await recall(
                session, AVATAR, FAN, content, at, half_life_s=half_life, budget_tokens=SETTINGS.memory_token_budget
            )
            if (fact := plan.asks.get(index)) is not None:
                texts = {memory.text for memory in found.memories}
                outcome.asked += 1
                outcome.recalled += fact.text in texts
                if fact.old_text is not None:
                    outcome.contradicted_asked += 1
                    outcome.contradicted_wrong += fact.old_text in texts
                fact.last_mentioned = at
            await reinforce_used(session, used_by(found, content, ""), at, half_life)
            if (said := plan.says.get(index)) is not None:
                said.last_mentioned = at
                await merge_facts(
                    session,
                    avatar_id=AVATAR,
                    fan=FAN,
                    facts=parse_facts(extract_facts(content)),
                    message_id=2 * index + 1,
                    said=content,
                    said_at=at,
                    now=at,
                    half_life_s=half_life,
                )
                await session.flush()
            await prune_thread(session, AVATAR, FAN, at, SETTINGS)
            await session.commit()
    return outcome


async def baseline_search(session: AsyncSession, question: str) -> list[str]:
    """Every message of the thread the question matches, best first: what a kept thread puts in the context."""
    terms = query_terms(question)
    if session.bind.dialect.name == "postgresql":
        rows = await session.execute(
            text(
                "SELECT content FROM chat_message, to_tsquery('english', :query) query WHERE avatar_id = :avatar "
                "AND fan = :fan AND to_tsvector('english', content) @@ query "
                "ORDER BY ts_rank(to_tsvector('english', content), query) DESC"
            ),
            {"query": " | ".join(terms), "avatar": AVATAR, "fan": FAN},
        )
    else:
        words = " OR ".join(f'"{term}"' for term in terms)
        rows = await session.execute(
            text(
                "SELECT content FROM bench_thread_fts WHERE bench_thread_fts MATCH :query"
                " ORDER BY bm25(bench_thread_fts)"
            ),
            {"query": f'thread:"{thread_token(AVATAR, FAN)}" AND content:({words})'},
        )
    return [content for (content,) in rows]


async def index_thread(sessions: async_sessionmaker[AsyncSession]) -> None:
    """The baseline's full-text index over the whole thread (same engines as the memory's)."""
    async with sessions() as session:
        if session.bind.dialect.name == "postgresql":
            await session.execute(
                text("CREATE INDEX bench_thread_tsvector ON chat_message USING gin (to_tsvector('english', content))")
            )
        else:
            await session.execute(
                text("CREATE VIRTUAL TABLE bench_thread_fts USING fts5(content, thread, tokenize = 'porter unicode61')")
            )
            await session.execute(
                text(
                    "INSERT INTO bench_thread_fts(rowid, content, thread) SELECT id, content, 't' || "
                    "lower(substr(avatar_id, 3)) || lower(substr(fan, 3)) FROM chat_message"
                )
            )
        await session.commit()


async def sizes_in_bytes(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    """(the memory's tables and index, the thread's messages and their full-text index)."""
    async with sessions() as session:
        if session.bind.dialect.name == "postgresql":
            memory = await session.scalar(text("SELECT pg_total_relation_size('memory')"))
            thread = await session.scalar(text("SELECT pg_total_relation_size('chat_message')"))
        else:
            await session.execute(text("ANALYZE"))
            pages = "SELECT sum(pgsize) FROM dbstat JOIN sqlite_master USING (name) WHERE "
            memory = await session.scalar(text(pages + "tbl_name LIKE 'memory%'"))
            thread = await session.scalar(text(pages + "tbl_name = 'chat_message' OR tbl_name LIKE 'bench_thread%'"))
    return int(memory or 0), int(thread or 0)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


@dataclass
class Row:
    size: int
    tokens: tuple[float, float]
    p50: tuple[float, float]
    p99: tuple[float, float]
    bytes_: tuple[int, int]
    recall: tuple[float, float]
    forgotten: tuple[float, float]
    wrong: tuple[float, float]
    drive_s: float


@dataclass
class Built:
    """One size's database after the whole history, and what the probes gathered so far."""

    size: int
    engine: AsyncEngine
    plan: Script
    outcome: Outcome
    drive_s: float
    questions: list[tuple[str, str, str | None]]  # (question, what was said, what it replaced)
    memory_times: list[float] = field(default_factory=list)
    baseline_times: list[float] = field(default_factory=list)
    memory_tokens: list[int] = field(default_factory=list)
    baseline_tokens: list[int] = field(default_factory=list)
    baseline_hits: int = 0
    baseline_wrong: int = 0
    baseline_contradicted: int = 0

    @property
    def end(self) -> datetime:
        return START + self.size * STEP


async def build(database_url: str, size: int) -> Built:
    """The history written, the memory driven through it, the baseline's index made."""
    engine = create_engine(database_url, pool_size=2)
    sessions = session_factory(engine)
    plan = script(size)
    await write_history(sessions, plan)
    started = time.perf_counter()
    outcome = await drive_memory(sessions, plan)
    drive_s = time.perf_counter() - started
    await index_thread(sessions)
    asked = [fact for fact in plan.facts if fact.kind == "often"]
    contradicted = [said for said in plan.says.values() if said.old_text is not None]
    questions = [(fact.question, fact.subject, fact.old_subject) for fact in asked + contradicted]
    return Built(size, engine, plan, outcome, drive_s, questions)


async def probe(built: Built, index: int) -> None:
    """One question about an often-asked fact (the same at every size), timed through the memory and through the
    baseline, each in a fresh session."""
    sessions = session_factory(built.engine)
    often = [question for question, _, old in built.questions if old is None]
    question = often[index % len(often)]
    async with sessions() as session:
        started = time.perf_counter()
        found: Recall = await recall(
            session,
            AVATAR,
            FAN,
            question,
            built.end,
            half_life_s=SETTINGS.memory_half_life_s,
            budget_tokens=SETTINGS.memory_token_budget,
        )
        built.memory_times.append((time.perf_counter() - started) * 1000)
    async with sessions() as session:
        started = time.perf_counter()
        kept = await baseline_search(session, question)
        built.baseline_times.append((time.perf_counter() - started) * 1000)
    built.memory_tokens.append(found.tokens)
    built.baseline_tokens.append(sum(estimate_tokens(message) for message in kept))


async def check_baseline(built: Built) -> None:
    """What the baseline's context holds at the end for every question: the fact said (it keeps everything), and
    for a contradicted one the old value beside the new."""
    async with session_factory(built.engine)() as session:
        for question, said, old_said in built.questions:
            kept = await baseline_search(session, question)
            built.baseline_hits += said in kept
            if old_said is not None:
                built.baseline_contradicted += 1
                built.baseline_wrong += old_said in kept


async def finish(built: Built) -> Row:
    """The size's figures, once every probe ran; the engine is closed."""
    try:
        sessions = session_factory(built.engine)
        plan, end = built.plan, built.end
        stale = [
            fact
            for fact in plan.facts + [s for s in plan.says.values() if s.kind == "contradiction"]
            if end - fact.last_mentioned >= STALE_AFTER
        ]
        async with sessions() as session:
            remembered = set(await session.scalars(text("SELECT text FROM memory")))
        forgotten = sum(fact.text not in remembered for fact in stale)
        memory_bytes, thread_bytes = await sizes_in_bytes(sessions)

        def share(part: int, whole: int) -> float:
            return part / whole if whole else float("nan")

        outcome = built.outcome
        return Row(
            built.size,
            (statistics.mean(built.memory_tokens), statistics.mean(built.baseline_tokens)),
            (statistics.median(built.memory_times), statistics.median(built.baseline_times)),
            (percentile(built.memory_times, 0.99), percentile(built.baseline_times, 0.99)),
            (memory_bytes, thread_bytes),
            (share(outcome.recalled, outcome.asked), share(built.baseline_hits, len(built.questions))),
            (share(forgotten, len(stale)), 0.0 if stale else float("nan")),
            (
                share(outcome.contradicted_wrong, outcome.contradicted_asked),
                share(built.baseline_wrong, built.baseline_contradicted),
            ),
            built.drive_s,
        )
    finally:
        await built.engine.dispose()


@asynccontextmanager
async def fresh_database(server_url: str | None, workdir: Path, size: int) -> AsyncIterator[str]:
    if server_url is None:
        url = f"sqlite+aiosqlite:///{workdir / f'memory-{size}.db'}"
        await asyncio.to_thread(migrate.upgrade, url)
        yield url
        return
    from market import scratch_postgres  # bench/market.py: a scratch database on that server, dropped after

    async with scratch_postgres(server_url) as url:
        await asyncio.to_thread(migrate.upgrade, url)
        yield url


def pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f} %"


def header(engine_name: str) -> None:
    print(f"\n{engine_name}: memory | whole thread searched")
    print(
        f"{'messages':>9} {'ctx tokens':>17} {'p50 ms':>15} {'p99 ms':>15} {'size KiB':>17} "
        f"{'recall used':>17} {'stale forgot':>15} {'contra. wrong':>15} {'drive s':>8}"
    )


def report_row(row: Row) -> None:
    """One size's line, printed as soon as it is measured."""
    print(
        f"{row.size:>9,} {row.tokens[0]:>7.0f} | {row.tokens[1]:<7.0f} {row.p50[0]:>6.2f} | {row.p50[1]:<6.2f} "
        f"{row.p99[0]:>6.2f} | {row.p99[1]:<6.2f} {row.bytes_[0] / 1024:>7.0f} | {row.bytes_[1] / 1024:<7.0f} "
        f"{pct(row.recall[0]):>7} | {pct(row.recall[1]):<7} {pct(row.forgotten[0]):>7} | "
        f"{pct(row.forgotten[1]):<5} {pct(row.wrong[0]):>6} | {pct(row.wrong[1]):<6} {row.drive_s:>8.1f}",
        flush=True,
    )


def summary(rows: list[Row]) -> None:
    if len(rows) >= 2 and rows[0].size < 1000 <= rows[-1].size:
        base = next(row for row in rows if row.size >= 1000)
        last = rows[-1]
        print(
            f"  {base.size:,} → {last.size:,} messages: context tokens ×{last.tokens[0] / base.tokens[0]:.2f} "
            f"(baseline ×{last.tokens[1] / max(base.tokens[1], 1):.1f}), retrieval p50 "
            f"×{last.p50[0] / base.p50[0]:.2f} (baseline ×{last.p50[1] / base.p50[1]:.1f})"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1_000, 10_000, 100_000])
    parser.add_argument("--probes", type=int, default=200)
    args = parser.parse_args()
    servers = [("SQLite", None)]
    if os.environ.get("TWIN_BENCH_DATABASE_URL"):
        servers.append(("PostgreSQL", os.environ["TWIN_BENCH_DATABASE_URL"]))
    print(
        f"memory settings: budget {SETTINGS.memory_token_budget} tokens, half-life "
        f"{SETTINGS.memory_half_life_s / 86_400:g} days, threshold {SETTINGS.memory_forget_threshold}, cap "
        f"{SETTINGS.memory_max_per_thread}; one message an hour; load average {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory(prefix="twin-bench-memory-") as workdir:
        for name, server in servers:
            async with contextlib.AsyncExitStack() as stack:
                built = []
                for size in args.sizes:
                    url = await stack.enter_async_context(fresh_database(server, Path(workdir), size))
                    built.append(await build(url, size))
                # Every size answers the same question in turn, so the machine's load weighs on them alike.
                for index in range(args.probes):
                    for each in built:
                        await probe(each, index)
                for each in built:
                    await check_baseline(each)
                header(name)
                rows = [await finish(each) for each in built]
                for row in rows:
                    report_row(row)
                summary(rows)


if __name__ == "__main__":
    asyncio.run(main())
