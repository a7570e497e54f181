"""Memory in the chat, end to end over a real websocket on the embedded default (offline demo model, in-process
node, anvil): facts extracted after replies through the paid, attested node, recalled a hundred messages later,
the fan's own API (404 for anyone else, the creator included), bad edits, a failed extraction retried."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.chain.client import Chain
from app.config import Settings
from app.memory.models import Extraction
from app.proxy.node.upstreams.base import UpstreamError
from app.services import services_of
from tests.chat.conftest import Served, holding_fan, reply_frames, send_message, serving
from tests.helpers import launch

FILLERS = (
    "What should I cook tonight?",
    "Tell me about the weather on the coast.",
    "Which book are you reading?",
    "How do volcanoes form?",
    "Any thoughts on modern architecture?",
)


@pytest.fixture
def settings(database_url: str) -> Settings:
    # As the suite's, with a rate limit that lets a hundred messages through and no retry loop (tests retry).
    return Settings(
        database_url=database_url,
        auto_migrate=False,
        indexer_poll_s=0,
        database_pool_size=0,
        autoscale_tick_s=0,
        chat_messages_per_minute=10_000,
        memory_retry_s=0,
        memory_extract_after_s=0,  # each reply's thread is extracted at once (a test pauses it on purpose)
    )


@pytest.fixture
async def served(settings: Settings, chain: Chain) -> AsyncIterator[Served]:
    async with serving(settings, chain) as running:
        yield running


@pytest.fixture
async def avatar_id(served: Served, creator: LocalAccount) -> str:
    http = await served.signed_in(creator)
    avatar_id = await launch(http, served.chain, creator, "coach")  # type: ignore[arg-type]
    await served.index()
    return avatar_id


async def chat(
    served: Served, avatar_id: str, http: httpx.AsyncClient, messages: list[str], *, settle: bool = True
) -> list[dict[str, Any]]:
    """Send each message and wait for its reply and (``settle``) its memory work; the ``done`` frames."""
    done = []
    async with served.chat(avatar_id, http) as ws:
        for index, content in enumerate(messages):
            await send_message(ws, f"m-{index}-{hash(content) & 0xFFFF}", content)
            frames = await reply_frames(ws)
            assert frames[-1]["type"] == "done", frames[-1]
            done.append(frames[-1])
            if settle:
                await services_of(served.app).memory.settled()
    return done


async def memories(http: httpx.AsyncClient, avatar_id: str) -> list[dict[str, Any]]:
    response = await http.get(f"/api/avatars/{avatar_id}/memories")
    assert response.status_code == 200, response.text
    return response.json()


async def test_called_sam_and_asked_about_training_a_hundred_messages_later(
    served: Served, avatar_id: str, fan: LocalAccount
) -> None:
    http = await holding_fan(served, fan, avatar_id)
    first = await chat(served, avatar_id, http, ["call me Sam, I'm training for a marathon"])
    assert first[0]["memories_used"] == 0
    remembered = {m["key"]: m for m in await memories(http, avatar_id)}
    assert remembered["name"]["text"] == "Their name is Sam"
    assert remembered["goal:marathon"]["source_text"] == "call me Sam, I'm training for a marathon"
    assert remembered["name"]["source_message_id"] == first[0]["reply_to"]

    done = await chat(served, avatar_id, http, [FILLERS[i % len(FILLERS)] + f" ({i})" for i in range(99)])
    last = done[-1]
    assert last["memories_used"] >= 2
    assert last["memory_tokens"] > 0
    attestation = (await http.get(f"/api/messages/{last['message_id']}/attestation")).json()
    context = attestation["request_body"]["messages"]
    assert "call me Sam" not in json.dumps(context)  # long out of the history budget: memory alone carries it
    assert context[1]["role"] == "system"
    assert "Their name is Sam" in context[1]["content"]
    assert "They are training for a marathon" in context[1]["content"]
    assert "Sam" in attestation["output"]
    assert "How is the training for a marathon going?" in attestation["output"]
    assert {m["key"]: m for m in await memories(http, avatar_id)}["name"]["use_count"] >= 99


async def test_the_panel_api_is_the_fans_alone(
    served: Served, avatar_id: str, fan: LocalAccount, creator: LocalAccount
) -> None:
    http = await holding_fan(served, fan, avatar_id)
    await chat(served, avatar_id, http, ["my name is Robin and I love jazz"])
    (jazz,) = [m for m in await memories(http, avatar_id) if m["key"] == "preference:jazz"]
    url = f"/api/avatars/{avatar_id}/memories/{jazz['id']}"

    creator_http = await served.signed_in(creator)
    other = await holding_fan(served, served.chain.dev_accounts[3], avatar_id)
    for stranger in (creator_http, other):
        assert await memories(stranger, avatar_id) == []
        assert (await stranger.patch(url, json={"pinned": True})).status_code == 404
        assert (await stranger.delete(url)).status_code == 404
    anonymous = httpx.AsyncClient(base_url=served.base_url)
    served.clients.append(anonymous)
    assert (await anonymous.get(f"/api/avatars/{avatar_id}/memories")).status_code == 401

    pinned = await http.patch(url, json={"pinned": True, "text": "They love cool jazz"})
    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["pinned"]
    assert pinned.json()["text"] == "They love cool jazz"
    assert (await http.delete(url)).status_code == 204
    assert [m["key"] for m in await memories(http, avatar_id)] == ["name"]
    everything = await http.delete(f"/api/avatars/{avatar_id}/memories")
    assert everything.json() == {"forgotten": 1}
    assert await memories(http, avatar_id) == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"text": ""},
        {"text": "   "},
        {"text": "x" * 201},
        {"text": 5},
        {"pinned": "yes"},
        {"strength": 9},
        [1, 2],
        {"text": None, "pinned": None},
    ],
)
async def test_bad_edits_are_refused_with_400(served: Served, avatar_id: str, fan: LocalAccount, body: Any) -> None:
    http = await holding_fan(served, fan, avatar_id)
    await chat(served, avatar_id, http, ["call me Sam"])
    (name,) = await memories(http, avatar_id)
    response = await http.patch(f"/api/avatars/{avatar_id}/memories/{name['id']}", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert (await memories(http, avatar_id))[0]["text"] == "Their name is Sam"


@pytest.mark.parametrize("path", ["/memories/0", "/memories/abc", "/memories/99999999999"])
async def test_bad_ids_are_4xx(served: Served, avatar_id: str, fan: LocalAccount, path: str) -> None:
    http = await holding_fan(served, fan, avatar_id)
    response = await http.delete(f"/api/avatars/{avatar_id}{path}")
    assert 400 <= response.status_code < 500
    assert (await http.get("/api/avatars/0x12/memories")).status_code == 400


async def test_a_failed_extraction_loses_no_message_and_is_retried(
    served: Served, avatar_id: str, fan: LocalAccount
) -> None:
    http = await holding_fan(served, fan, avatar_id)
    (upstream,) = [u for u in served.node_completions()._router._upstreams.values() if u.kind == "offline"]
    real_stream = upstream.stream

    async def failing_extraction(request: Any, model: str) -> AsyncIterator[Any]:
        if "extract durable facts" in request.system_prompt:
            raise UpstreamError("offline", "the model is down")
        async for event in real_stream(request, model):
            yield event

    upstream.stream = failing_extraction
    done = await chat(served, avatar_id, http, ["call me Sam"])
    assert done[0]["type"] == "done"
    thread = (await http.get(f"/api/avatars/{avatar_id}/messages")).json()["items"]
    assert [m["status"] for m in thread] == ["complete", "answered"]
    assert await memories(http, avatar_id) == []
    async with services_of(served.app).sessions() as session:
        (job,) = (await session.scalars(select(Extraction))).all()
        assert job.attempts == 1
        assert "no node could answer" in (job.last_error or "")
        job.next_attempt_at = job.next_attempt_at.replace(year=2000)  # its time has come
        await session.commit()

    upstream.stream = real_stream
    assert await services_of(served.app).memory.retry_due() == 1
    assert [m["text"] for m in await memories(http, avatar_id)] == ["Their name is Sam"]
    async with services_of(served.app).sessions() as session:
        assert (await session.scalars(select(Extraction))).all() == []


async def test_extraction_waits_while_fans_wait_for_the_nodes(
    served: Served, avatar_id: str, fan: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    http = await holding_fan(served, fan, avatar_id)
    memory = services_of(served.app).memory
    fans_waiting = True

    async def nodes_busy() -> bool:
        return fans_waiting

    monkeypatch.setattr(memory, "_nodes_busy", nodes_busy)  # as the chat gate says when fans queue
    done = await chat(served, avatar_id, http, ["call me Sam"])
    assert done[0]["type"] == "done"
    await memory.settled()
    assert await memories(http, avatar_id) == []
    assert await memory.retry_due() == 0  # still busy: the job waits, no attempt spent
    async with services_of(served.app).sessions() as session:
        (job,) = (await session.scalars(select(Extraction))).all()
        assert job.attempts == 0

    fans_waiting = False
    assert await memory.retry_due() == 1
    assert [m["text"] for m in await memories(http, avatar_id)] == ["Their name is Sam"]


async def test_the_reply_is_stored_with_its_reinforcement_and_its_queued_extraction(
    served: Served, avatar_id: str, fan: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    http = await holding_fan(served, fan, avatar_id)
    memory = services_of(served.app).memory
    await chat(served, avatar_id, http, ["call me Sam"])
    (before,) = await memories(http, avatar_id)

    monkeypatch.setattr(memory, "after_reply", lambda *_: None)  # the worker dies as the reply is stored
    done = await chat(served, avatar_id, http, ["what is my name again?"])
    assert done[0]["memories_used"] == 1
    (after,) = await memories(http, avatar_id)
    assert after["use_count"] == before["use_count"] + 1  # reinforced by the reply's own transaction
    async with services_of(served.app).sessions() as session:
        (job,) = (await session.scalars(select(Extraction))).all()
    assert (job.said, job.attempts) == ("what is my name again?", 0)
    assert await memory.retry_due() == 1  # any worker's retry loop runs it
    async with services_of(served.app).sessions() as session:
        assert (await session.scalars(select(Extraction))).all() == []


async def test_a_reply_stored_late_from_the_journal_still_queues_its_extraction(
    served: Served, avatar_id: str, fan: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.chat import journal as journal_module

    http = await holding_fan(served, fan, avatar_id)
    journal = services_of(served.app).reply_journal

    async def refused(*_: Any) -> Any:
        raise OperationalError("UPDATE chat_message …", {}, Exception("database is locked"))

    with monkeypatch.context() as patch:
        patch.setattr(journal_module, "store_turn_end", refused)
        done = await chat(served, avatar_id, http, ["call me Sam"])
    assert done[0]["type"] == "done"
    (kept,) = await journal.entries()
    assert kept.memory is not None  # what the reply leaves to memory waits in the journal with it
    assert await memories(http, avatar_id) == []

    await journal.replay(services_of(served.app).sessions)  # or the lifespan's replay loop did, a moment before
    assert await journal.entries() == []
    assert await services_of(served.app).memory.retry_due() == 1
    assert [m["text"] for m in await memories(http, avatar_id)] == ["Their name is Sam"]


async def test_a_conversation_is_extracted_once_it_pauses_in_one_call(
    served: Served, settings: Settings, avatar_id: str, fan: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    http = await holding_fan(served, fan, avatar_id)
    memory = services_of(served.app).memory
    monkeypatch.setattr(memory, "_settings", settings.model_copy(update={"memory_extract_after_s": 3600}))
    (upstream,) = [u for u in served.node_completions()._router._upstreams.values() if u.kind == "offline"]
    real_stream = upstream.stream
    asked: list[list[str]] = []

    async def counted(request: Any, model: str) -> AsyncIterator[Any]:
        if "extract durable facts" in request.system_prompt:
            asked.append([m["content"] for m in request.messages if m["role"] == "user"])
        async for event in real_stream(request, model):
            yield event

    upstream.stream = counted
    said = ["call me Sam", "I love sushi", "What should I cook tonight?", "actually I hate sushi"]
    done = await chat(served, avatar_id, http, said, settle=False)
    assert asked == []  # the conversation has not paused: nothing extracted, nothing paid for it yet
    assert await memories(http, avatar_id) == []
    assert await memory.retry_due() == 0

    async with services_of(served.app).sessions() as session:
        jobs = sorted((await session.scalars(select(Extraction))).all(), key=lambda job: job.reply_id)
        assert [job.said for job in jobs] == said
        for job in jobs[:-1]:  # all but the newest are past their time: the thread is still not quiet
            job.next_attempt_at = job.next_attempt_at.replace(year=2000)
        await session.commit()
    assert await memory.retry_due() == 0
    assert asked == []

    async with services_of(served.app).sessions() as session:
        (newest,) = [job for job in (await session.scalars(select(Extraction))).all() if job.said == said[-1]]
        newest.next_attempt_at = newest.next_attempt_at.replace(year=2000)  # the pause has come
        await session.commit()
    assert await memory.retry_due() == len(said)
    assert asked == [said]  # one paid call for the whole conversation, in the order it was said
    remembered = {m["key"]: m for m in await memories(http, avatar_id)}
    assert remembered["name"]["text"] == "Their name is Sam"
    assert remembered["name"]["source_message_id"] == done[0]["reply_to"]
    assert remembered["preference:sushi"]["text"] == "They hate sushi"  # the later message holds
    assert remembered["preference:sushi"]["source_message_id"] == done[-1]["reply_to"]
    assert remembered["preference:sushi"]["source_text"] == said[-1]
    async with services_of(served.app).sessions() as session:
        assert (await session.scalars(select(Extraction))).all() == []
