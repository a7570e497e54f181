"""The key-gated chat over a real websocket: gate, streaming, payment, idempotent resends, bad
frames, a node that signs with the wrong key, disconnects and node failures mid-reply, history
and the attestation a third party re-verifies."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from websockets.exceptions import ConnectionClosed

from app.chain.client import Chain, chain_from_embedded
from app.config import Settings
from app.proxy.node.attestation import EnclaveIdentity
from app.proxy.node.upstreams.base import TextDelta, UpstreamError
from app.proxy.node.upstreams.offline import OfflineDemoUpstream
from app.proxy.registry import list_nodes
from app.proxy.verify import Attestation, AttestationError, verify_reply
from tests.chat.conftest import Served, eventually, holding_fan, receive, reply_frames, send_message, serving
from tests.conftest import close_quietly
from tests.helpers import buy, launch, sell

POLICY_VIOLATION = 1008


@pytest.fixture
async def avatar_id(served: Served, creator: LocalAccount) -> str:
    http = await served.signed_in(creator)
    avatar_id = await launch(http, served.chain, creator, "ada")  # type: ignore[arg-type]
    await served.index()
    return avatar_id


async def closed_with(served: Served, avatar_id: str, http: Any = None, **headers: str) -> tuple[int, str]:
    async with served.chat(avatar_id, http, **headers) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def thread(http: Any, avatar_id: str, **params: Any) -> dict[str, Any]:
    response = await http.get(f"/api/avatars/{avatar_id}/messages", params=params)
    assert response.status_code == 200, response.text
    return response.json()


# ---------------------------------------------------------------- the gate


async def test_no_session_is_refused_with_policy_violation(served: Served, avatar_id: str) -> None:
    code, reason = await closed_with(served, avatar_id)

    assert code == POLICY_VIOLATION
    assert "sign in" in reason


async def test_fan_without_a_key_is_refused_with_policy_violation(
    served: Served, avatar_id: str, fan: LocalAccount
) -> None:
    code, reason = await closed_with(served, avatar_id, await served.signed_in(fan))

    assert code == POLICY_VIOLATION
    assert "hold at least one key of @ada" in reason


async def test_unknown_avatar_is_refused_with_policy_violation(served: Served, fan: LocalAccount) -> None:
    code, reason = await closed_with(served, "0x" + "ab" * 16, await served.signed_in(fan))

    assert code == POLICY_VIOLATION
    assert "no avatar" in reason


async def test_origin_not_allowed_is_refused(settings: Settings, chain: Chain, creator: LocalAccount) -> None:
    strict = settings.model_copy(update={"cors_origins": ["https://twin.example"]})
    async with serving(strict, chain) as served:
        http = await served.signed_in(creator)
        avatar_id = await launch(http, chain, creator, "ada")  # type: ignore[arg-type]
        await served.index()

        code, reason = await closed_with(served, avatar_id, http, Origin="https://evil.example")
        async with served.chat(avatar_id, http, Origin="https://twin.example") as ws:
            await send_message(ws, "m1", "Hello")
            frames = await reply_frames(ws)

    assert (code, reason) == (POLICY_VIOLATION, "origin not allowed")
    assert frames[-1]["type"] == "done"


async def test_fan_who_sold_the_last_key_is_refused_the_next_message(
    served: Served, avatar_id: str, fan: LocalAccount
) -> None:
    buy(served.chain, fan, avatar_id, 1)  # supply 2: the fan's key can be sold back
    await served.index()
    http = await served.signed_in(fan)
    async with served.chat(avatar_id, http) as ws:
        await send_message(ws, "m1", "Hello")
        assert (await reply_frames(ws))[-1]["type"] == "done"

        sell(served.chain, fan, avatar_id, 1)
        await served.index()
        await send_message(ws, "m2", "Still there?")
        refused = await receive(ws)

        buy(served.chain, fan, avatar_id, 1)  # the connection stays usable: a key again, a reply again
        await served.index()
        await send_message(ws, "m3", "Back again")
        again = await reply_frames(ws)

    assert refused["type"] == "error"
    assert refused["code"] == "no_key"
    assert refused["client_msg_id"] == "m2"
    assert again[-1]["type"] == "done"
    assert [m["client_msg_id"] for m in (await thread(http, avatar_id))["items"] if m["role"] == "user"] == ["m3", "m1"]


# ---------------------------------------------------------------- a reply


async def test_creator_gets_tokens_then_a_verified_paid_reply(
    served: Served, avatar_id: str, creator: LocalAccount
) -> None:
    http = await served.signed_in(creator)  # the creator holds the free first key, and may chat regardless
    before = await served.node_opg_balance()
    async with served.chat(avatar_id, http) as ws:
        await send_message(ws, "c-1", "What is a prime number?")
        frames = await reply_frames(ws)

    tokens, done = frames[:-1], frames[-1]
    assert tokens
    assert {frame["type"] for frame in tokens} == {"token"}
    assert done["type"] == "done"
    assert done["verified"] is True
    assert {frame["message_id"] for frame in tokens} == {done["message_id"]}
    assert done["attestation"]["tee_id"].startswith("0x")
    assert done["attestation"]["url"] == f"/api/messages/{done['message_id']}/attestation"
    assert done["usage"]["completion_tokens"] == len(tokens)
    assert done["cost_wei"] == str(served.price_wei)
    assert await served.node_opg_balance() == before + served.price_wei

    reply, prompt = (await thread(http, avatar_id))["items"]
    assert reply["id"] == done["message_id"]
    assert reply["content"] == "".join(frame["text"] for frame in tokens)
    assert (reply["role"], reply["status"], reply["attested"]) == ("assistant", "complete", True)
    assert reply["cost_wei"] == str(served.price_wei)
    assert (prompt["role"], prompt["status"], prompt["content"]) == ("user", "answered", "What is a prime number?")
    assert reply["reply_to"] == prompt["id"] == done["reply_to"]


async def test_an_avatar_at_level_none_gets_paid_unattested_replies_marked_unverified(
    served: Served, avatar_id: str, creator: LocalAccount
) -> None:
    http = await served.signed_in(creator)
    patched = await http.patch(f"/api/avatars/{avatar_id}", json={"verification_level": "none"})
    assert patched.status_code == 200, patched.text
    async with served.chat(avatar_id, http) as ws:
        await send_message(ws, "plain", "Hello")
        done = (await reply_frames(ws))[-1]

    assert (done["type"], done["verified"], done["attestation"]) == ("done", False, None)
    assert done["cost_wei"] == str(served.price_wei)
    assert (await http.get(f"/api/messages/{done['message_id']}/attestation")).status_code == 404


async def test_a_resent_client_msg_id_gets_the_stored_reply_and_is_paid_once(
    served: Served, avatar_id: str, fan: LocalAccount
) -> None:
    http = await holding_fan(served, fan, avatar_id)
    before = await served.node_opg_balance()
    async with served.chat(avatar_id, http) as ws:
        await send_message(ws, "same-id", "Tell me about Babbage")
        first = await reply_frames(ws)
    async with served.chat(avatar_id, http) as ws:  # reconnected, resent
        await send_message(ws, "same-id", "Tell me about Babbage")
        second = await reply_frames(ws)

    assert await served.node_opg_balance() == before + served.price_wei
    assert [frame["type"] for frame in second] == ["token", "done"]
    assert second[0]["text"] == "".join(frame["text"] for frame in first[:-1])
    assert second[-1] == first[-1]
    assert len((await thread(http, avatar_id))["items"]) == 2


async def test_the_thread_goes_with_each_message_as_context(
    served: Served, avatar_id: str, creator: LocalAccount
) -> None:
    http = await served.signed_in(creator)
    async with served.chat(avatar_id, http) as ws:
        await send_message(ws, "a", "First question")
        first = await reply_frames(ws)
        await send_message(ws, "b", "Second question")
        second = await reply_frames(ws)

    sent = (await http.get(second[-1]["attestation"]["url"])).json()["request_body"]["messages"]
    first_reply = "".join(frame["text"] for frame in first[:-1])
    assert sent == [
        {"role": "system", "content": "You are ada, terse and kind."},
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": first_reply},
        {"role": "user", "content": "Second question"},
    ]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("frame", "code", "field"),
    [
        ("not json", "bad_frame", None),
        ("[1, 2]", "bad_frame", None),
        (b"\x00\x01", "bad_frame", None),
        (json.dumps({"type": "message", "client_msg_id": "x", "content": "a" * 17_000}), "frame_too_large", None),
        (json.dumps({"type": "typing"}), "unknown_type", "type"),
        (json.dumps({"content": "hi", "client_msg_id": "x"}), "unknown_type", "type"),
        (json.dumps({"type": "message", "client_msg_id": "x", "content": "   "}), "invalid_message", "content"),
        (json.dumps({"type": "message", "client_msg_id": "x", "content": "a" * 4_001}), "invalid_message", "content"),
        (json.dumps({"type": "message", "client_msg_id": "x", "content": 7}), "invalid_message", "content"),
        (json.dumps({"type": "message", "client_msg_id": "", "content": "hi"}), "invalid_message", "client_msg_id"),
        (
            json.dumps({"type": "message", "client_msg_id": "x" * 65, "content": "hi"}),
            "invalid_message",
            "client_msg_id",
        ),
        (json.dumps({"type": "message", "content": "hi"}), "invalid_message", "client_msg_id"),
    ],
)
async def test_a_bad_frame_gets_an_error_and_the_connection_stays_usable(
    served: Served, avatar_id: str, creator: LocalAccount, frame: str | bytes, code: str, field: str | None
) -> None:
    http = await served.signed_in(creator)
    async with served.chat(avatar_id, http) as ws:
        await ws.send(frame)
        error = await receive(ws)
        await send_message(ws, "after", "Are you still there?")
        after = await reply_frames(ws)

    assert error["type"] == "error"
    assert (error["code"], error["field"]) == (code, field)
    assert error["detail"]
    assert after[-1]["type"] == "done"
    assert len((await thread(http, avatar_id))["items"]) == 2  # the bad frame stored nothing


async def test_a_second_message_while_a_reply_streams_is_told_to_wait(
    settings: Settings, chain: Chain, creator: LocalAccount
) -> None:
    async with serving(settings, chain, tokens_per_second=50) as served:
        http = await served.signed_in(creator)
        avatar_id = await launch(http, chain, creator, "ada")  # type: ignore[arg-type]
        await served.index()
        async with served.chat(avatar_id, http) as ws:
            await send_message(ws, "one", "Tell me a long story")
            assert (await receive(ws))["type"] == "token"
            await send_message(ws, "two", "And another")
            frames = await reply_frames(ws)
            while frames[-1]["type"] == "error":  # the busy error arrives among the tokens
                frames += await reply_frames(ws)

    busy = [frame for frame in frames if frame["type"] == "error"]
    assert [(frame["code"], frame["client_msg_id"]) for frame in busy] == [("busy", "two")]
    assert frames[-1]["type"] == "done"
    assert frames[-1]["client_msg_id"] == "one"


# ---------------------------------------------------------------- faults


async def test_a_reply_signed_by_another_key_is_rejected_and_not_kept(
    served: Served, avatar_id: str, creator: LocalAccount
) -> None:
    http = await served.signed_in(creator)
    node = served.node_completions()
    genuine, node._identity = node._identity, EnclaveIdentity.generate()
    try:
        async with served.chat(avatar_id, http) as ws:
            await send_message(ws, "forged", "Who are you?")
            frames = await reply_frames(ws)
    finally:
        node._identity = genuine

    assert frames[-1]["type"] == "error"
    assert frames[-1]["code"] == "verification_failed"
    assert [frame["type"] for frame in frames[:-1]] == ["token"] * (len(frames) - 1)  # shown, then to be dropped
    reply, prompt = (await thread(http, avatar_id))["items"]
    assert (reply["status"], reply["content"], reply["error_code"]) == ("failed", "", "verification_failed")
    assert (prompt["status"], prompt["error_code"]) == ("failed", "verification_failed")
    assert reply["attested"] is False
    assert reply["cost_wei"] == str(served.price_wei)  # the node was paid all the same: it counts as spend
    assert (await http.get(f"/api/messages/{reply['id']}/attestation")).status_code == 404

    async with served.chat(avatar_id, http) as ws:  # resending the same id gets no second attempt
        await send_message(ws, "forged", "Who are you?")
        resent = await receive(ws)
    assert (resent["type"], resent["code"]) == ("error", "previously_failed")


async def test_a_disconnect_mid_reply_keeps_the_partial_text_as_incomplete_and_pays_nothing(
    settings: Settings, chain: Chain, creator: LocalAccount
) -> None:
    async with serving(settings, chain, tokens_per_second=20) as served:
        http = await served.signed_in(creator)
        avatar_id = await launch(http, chain, creator, "ada")  # type: ignore[arg-type]
        await served.index()
        before = await served.node_opg_balance()
        async with served.chat(avatar_id, http) as ws:
            await send_message(ws, "cut", "Tell me everything")
            frames = [await receive(ws) for _ in range(3)]
            received = [frame.get("text", frame) for frame in frames]
            assert all(frame["type"] == "token" for frame in frames), frames

        async def settled() -> bool:
            return (await thread(http, avatar_id))["items"][0]["status"] != "pending"

        await eventually(settled)
        reply, prompt = (await thread(http, avatar_id))["items"]
        await asyncio.sleep(3)  # longer than the whole reply would have taken
        after = await served.node_opg_balance()

    assert (reply["status"], reply["error_code"]) == ("incomplete", "disconnected")
    assert reply["content"].startswith("".join(received))
    assert reply["cost_wei"] == "0"
    assert prompt["status"] == "incomplete"
    assert after == before  # the node was stopped before it could settle: nothing paid


async def test_a_node_failing_mid_reply_ends_with_an_error_and_no_charge(
    served: Served, avatar_id: str, creator: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def breaking(self: OfflineDemoUpstream, request: Any, model: str) -> AsyncIterator[Any]:
        for word in ("Half ", "a ", "thought"):
            yield TextDelta(word)
        raise UpstreamError(self.name, "connection reset")

    monkeypatch.setattr(OfflineDemoUpstream, "stream", breaking)
    http = await served.signed_in(creator)
    before = await served.node_opg_balance()
    async with served.chat(avatar_id, http) as ws:
        await send_message(ws, "broken", "Hello?")
        frames = await reply_frames(ws)

    assert "".join(frame["text"] for frame in frames[:-1]) == "Half a thought", frames
    assert (frames[-1]["type"], frames[-1]["code"]) == ("error", "upstream_failed")
    assert frames[-1]["retry_after_s"] > 0
    reply = (await thread(http, avatar_id))["items"][0]
    assert (reply["status"], reply["content"], reply["cost_wei"]) == ("incomplete", "Half a thought", "0")
    assert await served.node_opg_balance() == before


# ---------------------------------------------------------------- history and attestations


async def test_history_pages_newest_first_and_is_the_fans_own(
    served: Served, avatar_id: str, creator: LocalAccount, fan: LocalAccount
) -> None:
    http = await served.signed_in(creator)
    async with served.chat(avatar_id, http) as ws:
        for number in range(3):
            await send_message(ws, f"m{number}", f"Question {number}")
            await reply_frames(ws)

    first = await thread(http, avatar_id, limit=4)
    second = await thread(http, avatar_id, limit=4, cursor=first["next_cursor"])
    everything = first["items"] + second["items"]
    other = await thread(await holding_fan(served, fan, avatar_id), avatar_id)
    async with httpx.AsyncClient(base_url=served.base_url) as nobody:
        anonymous = await nobody.get(f"/api/avatars/{avatar_id}/messages")

    assert len(first["items"]) == 4
    assert len(second["items"]) == 2
    assert second["next_cursor"] is None
    ids = [message["id"] for message in everything]
    assert ids == sorted(ids, reverse=True)
    assert [m["content"] for m in everything if m["role"] == "user"] == ["Question 2", "Question 1", "Question 0"]
    assert other["items"] == []
    assert anonymous.status_code == 401
    bad = await http.get(f"/api/avatars/{avatar_id}/messages", params={"cursor": "WyJ4Il0"})
    assert (bad.status_code, bad.json()["field"]) == (400, "cursor")


async def test_an_attestation_from_the_api_verifies_independently(
    served: Served, avatar_id: str, creator: LocalAccount, fan: LocalAccount
) -> None:
    http = await holding_fan(served, fan, avatar_id)
    async with served.chat(avatar_id, http) as ws:
        await send_message(ws, "v1", "Can I check your work?")
        done = (await reply_frames(ws))[-1]

    response = await http.get(f"/api/messages/{done['message_id']}/attestation")
    assert response.status_code == 200, response.text
    document = response.json()
    attestation = Attestation(
        document["signature"],
        document["request_hash"],
        document["output_hash"],
        document["timestamp"],
        document["tee_id"],
    )
    verified = verify_reply(
        body=document["request_body"],
        output=document["output"],
        attestation=attestation,
        public_key=document["node_public_key_pem"],
        expected_tee_id=document["tee_id"],
    )
    assert verified.tee_id == done["attestation"]["tee_id"]
    (record,) = [node for node in await list_nodes(served.chain.node_registry) if node.tee_id == document["tee_id"]]
    assert base64.b64decode(document["node_public_key_der_base64"]) == record.signing_public_key
    assert document["canonical_request"]["messages"][0] == {"role": "system", "content": "You are ada, terse and kind."}
    with pytest.raises(AttestationError, match="output hash mismatch"):
        verify_reply(
            body=document["request_body"],
            output=document["output"] + " (edited)",
            attestation=attestation,
            public_key=record.signing_public_key,
        )

    creator_view = await (await served.signed_in(creator)).get(f"/api/messages/{done['message_id']}/attestation")
    stranger_view = await (await served.signed_in(served.chain.dev_accounts[3])).get(
        f"/api/messages/{done['message_id']}/attestation"
    )
    assert creator_view.status_code == 200
    assert stranger_view.status_code == 404


async def test_a_store_failure_before_the_reply_is_an_error_frame_not_a_dead_socket(
    served: Served, avatar_id: str, creator: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.chat import turn

    async def broken(*_: Any, **__: Any) -> list[dict[str, str]]:
        raise OSError("database went away")

    http = await served.signed_in(creator)
    async with served.chat(avatar_id, http) as ws:
        with monkeypatch.context() as patch:
            patch.setattr(turn, "recent_history", broken)
            await send_message(ws, "lost", "Hello")
            error = await receive(ws)
        await send_message(ws, "kept", "Hello again")
        after = await reply_frames(ws)

    assert (error["type"], error["code"], error["client_msg_id"]) == ("error", "internal_error", "lost")
    assert after[-1]["type"] == "done"
    assert [m["client_msg_id"] for m in (await thread(http, avatar_id))["items"]] == [None, "kept"]


def busy_database(failures: int | None) -> Any:
    """A stand-in for storing a turn's end that finds the database locked ``failures`` times
    (None: always)."""
    from sqlalchemy.exc import OperationalError

    from app.chat import journal

    calls = {"count": 0}
    real = journal.store_turn_end

    async def store(*args: Any) -> Any:
        calls["count"] += 1
        if failures is None or calls["count"] <= failures:
            raise OperationalError("UPDATE chat_message …", {}, Exception("database is locked"))
        return await real(*args)

    return store


async def test_a_busy_database_when_the_reply_ends_is_waited_out_and_the_paid_reply_kept(
    served: Served, avatar_id: str, creator: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.chat import journal

    http = await served.signed_in(creator)
    monkeypatch.setattr(journal, "store_turn_end", busy_database(failures=2))
    async with served.chat(avatar_id, http) as ws:
        await send_message(ws, "busy", "Hello")
        frames = await reply_frames(ws)

    assert frames[-1]["type"] == "done"
    assert frames[-1]["cost_wei"] == str(served.price_wei)
    reply = (await thread(http, avatar_id))["items"][0]
    assert (reply["status"], reply["cost_wei"]) == ("complete", str(served.price_wei))


async def test_a_paid_reply_the_database_refuses_is_done_from_the_journal_and_stored_once_it_accepts(
    served: Served, avatar_id: str, creator: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.chat import journal as journal_module

    http = await served.signed_in(creator)
    journal = served.app.state.services.reply_journal
    async with served.chat(avatar_id, http) as ws:
        with monkeypatch.context() as patch:
            patch.setattr(journal_module, "store_turn_end", busy_database(failures=None))
            await send_message(ws, "unstored", "Hello")
            frames = await reply_frames(ws)
            assert [end.status for end in await journal.entries()] == ["complete"]  # kept, not lost
        await send_message(ws, "stored", "Hello again")
        after = await reply_frames(ws)

    assert {frame["type"] for frame in frames[:-1]} == {"token"}
    assert frames[-1]["type"] == "done"  # the node was paid and the reply is safe in the journal
    assert frames[-1]["cost_wei"] == str(served.price_wei)
    assert after[-1]["type"] == "done"

    async def replayed() -> bool:
        messages = (await thread(http, avatar_id))["items"]
        return {m["client_msg_id"]: m["status"] for m in messages if m["role"] == "user"} == {
            "unstored": "answered",
            "stored": "answered",
        }

    await eventually(replayed)
    assert await journal.entries() == []
    replies = [m for m in (await thread(http, avatar_id))["items"] if m["role"] == "assistant"]
    assert [(m["status"], m["cost_wei"], m["attested"]) for m in replies] == [
        ("complete", str(served.price_wei), True)
    ] * 2


async def test_a_stalled_chain_refuses_a_turn_promptly_and_chat_resumes_after(
    settings: Settings, chain: Chain, creator: LocalAccount
) -> None:
    assert chain.embedded is not None
    impatient = chain_from_embedded(chain.embedded, timeout_s=0.5)
    async with serving(settings, impatient) as served:
        http = await served.signed_in(creator)
        avatar_id = await launch(http, chain, creator, "stall")  # type: ignore[arg-type]
        await served.index()
        before = await served.node_opg_balance()
        os.kill(chain.embedded.node.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            async with served.chat(avatar_id, http) as ws:
                await send_message(ws, "frozen", "Are you there?")
                frames = await reply_frames(ws)
            waited = time.monotonic() - started
        finally:
            os.kill(chain.embedded.node.pid, signal.SIGCONT)
        assert frames[-1]["type"] == "error", frames
        assert frames[-1]["code"] == "unavailable", frames
        assert waited < 10  # a deadline, not a hang

        async with served.chat(avatar_id, http) as ws:
            await send_message(ws, "thawed", "And now?")
            frames = await reply_frames(ws)
        assert frames[-1]["type"] == "done", frames
        assert await served.node_opg_balance() == before + served.price_wei  # the refused turn cost nothing
    await close_quietly(impatient)
