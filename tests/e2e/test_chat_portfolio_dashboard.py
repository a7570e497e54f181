"""The fan's and the creator's pages in a real browser against `twin serve`: a fan with a key chats (a streamed,
verified reply and its attestation), finds the key in the portfolio; the creator sees the avatar's figures and
withdraws the fees; the operations page shows the nodes and the autoscale signal. The chat's queue, error and
reconnect handling run against a scripted websocket. Each page is saved under test-artifacts/e2e/."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from playwright.async_api import Page, Route, WebSocket, WebSocketRoute, expect

from app.proxy.verify import output_hash
from app.web.formatting import format_eth
from tests.e2e.conftest import People
from tests.e2e.flows import RpcChain, Server, launch_avatar, remembered_dev_wallet, use_dev_wallet

Screenshot = Callable[[Page, str], Awaitable[Path]]
CHAT_SOCKET = re.compile(r"/ws/avatars/0x[0-9a-f]{32}/chat$")


async def signed_in(page: Page, address: str) -> None:
    await expect(page.locator("#wallet")).to_have_attribute("data-address", address)
    await expect(page.locator("#wallet")).to_have_attribute("data-state", "connected")


async def send_chat_message(page: Page, text: str) -> None:
    await expect(page.get_by_role("button", name="Send")).to_be_enabled()  # connected, and free to send
    await page.get_by_label("Message", exact=True).fill(text)
    await page.get_by_label("Message", exact=True).press("Enter")


async def api_json(page: Page, path: str) -> Any:
    """GET from the API in the page's browser context, with its session cookie."""
    response = await page.request.get(path)
    assert response.ok, await response.text()
    return await response.json()


def frames_of(socket: WebSocket, into: list[dict[str, Any]]) -> None:
    socket.on("framereceived", lambda payload: into.append(json.loads(payload)))


async def test_a_fan_with_a_key_chats_sees_a_streamed_verified_reply_and_opens_its_attestation(
    people: People, server: Server, screenshot: Screenshot
) -> None:
    chain = RpcChain(server)
    creator = await people.open("/create")
    creator_address = await use_dev_wallet(creator, fund=True)
    avatar_id = await launch_avatar(creator, "turing")
    fan_account = chain.new_holder(avatar_id)
    fan = await people.open("/", init_script=remembered_dev_wallet(fan_account))
    await signed_in(fan, fan_account.address)
    received: list[dict[str, Any]] = []
    fan.on("websocket", lambda socket: frames_of(socket, received))

    await fan.goto(f"/avatars/{avatar_id}/chat")
    await expect(fan.locator("#chat")).to_have_attribute("data-access", "holder")
    await send_chat_message(fan, "What is a machine that thinks?")

    reply = fan.locator(".message.assistant").last
    await expect(reply).to_have_attribute("data-state", "verified")
    badge = reply.get_by_role("button", name="✓ Verified")
    await expect(badge).to_be_visible()
    reply_text = await reply.locator(".message-text").text_content()
    assert reply_text
    tokens = [frame for frame in received if frame["type"] == "token"]
    assert len(tokens) > 1  # streamed, token by token
    assert "".join(frame["text"] for frame in tokens) == reply_text
    assert received[-1]["type"] == "done"
    await expect(fan.locator(".message.user").last).to_have_text("What is a machine that thinks?")
    await expect(fan.get_by_role("button", name="Load older messages")).to_be_hidden()  # one page holds it all
    await screenshot(fan, "chat")

    await badge.click()
    dialog = fan.get_by_role("dialog", name="Reply attestation")
    await expect(dialog).to_be_visible()
    (node,) = await api_json(fan, "/api/nodes")
    await expect(dialog.locator("[data-field='TEE id']")).to_have_text(node["tee_id"])
    await expect(dialog.locator("[data-field='Node']")).to_have_text(node["endpoint"])
    await expect(dialog.locator("[data-field='Verification level']")).to_have_text("signature")
    await expect(dialog.locator("[data-field='Output hash']")).to_have_text(
        re.compile(f"^(0x)?{output_hash(reply_text)}$")
    )
    await expect(dialog.locator("[data-field='Signature']")).to_have_text(re.compile(r"^\S{64,}$"))
    await screenshot(fan, "chat-attestation")
    await fan.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(badge).to_be_focused()

    # The thread comes back from the history API, badge and all.
    await fan.reload()
    await expect(fan.locator(".message.assistant[data-state=verified] .message-text")).to_have_text(reply_text)
    await expect(fan.locator(".message.user .message-text")).to_have_text("What is a machine that thinks?")

    # The portfolio shows the key, what it would sell for and the profit and loss.
    await fan.get_by_role("link", name="Portfolio").click()
    holding = next(
        row
        for row in await api_json(fan, f"/api/wallets/{fan_account.address}/holdings")
        if row["avatar_id"] == avatar_id
    )
    row = fan.locator(f"#holdings tr[data-avatar-id='{avatar_id}']")
    await expect(row.get_by_role("link", name="Turing")).to_be_visible()
    await expect(row.locator("[data-field=balance]")).to_have_text("1")
    await expect(row.locator("[data-field=sell_value]")).to_have_text(format_eth(holding["sell_value"]))
    # The P&L counts the network fee the fan's buy paid, which the index read from its receipt.
    (buy,) = (await api_json(fan, f"/api/wallets/{fan_account.address}/trades"))["items"]
    gas = int(buy["gas_paid"])
    assert gas == RpcChain(people.server).gas_paid(buy["tx_hash"]) > 0
    assert int(holding["gas_paid"]) == gas
    pnl = int(holding["sell_value"]) - int(holding["cost_basis"]) - gas
    assert pnl < 0  # fees both ways
    await expect(row.locator("[data-field=gas_paid]")).to_have_text(format_eth(gas))
    await expect(row.locator("[data-field=pnl]")).to_have_text(format_eth(pnl))
    await expect(fan.locator("#trades tbody tr")).to_have_count(1)
    await expect(fan.locator("[data-total=gas]")).to_have_attribute("data-wei", str(gas))
    await expect(fan.locator("[data-total=pnl]")).to_have_attribute("data-wei", str(pnl))
    await screenshot(fan, "portfolio")

    # The creator's dashboard counts the holder, the message and what the reply cost; the fees are withdrawn.
    await creator.goto("/dashboard")
    await signed_in(creator, creator_address)
    await expect(creator.locator(f"#creator-avatars tr[data-avatar-id='{avatar_id}']")).to_contain_text("Turing")
    await expect(creator.locator("[data-stat=holders]")).to_have_text("2")
    figures = json.loads(await creator.locator("#chart-data").text_content() or "")
    today = datetime.now(UTC).date().isoformat()
    assert figures["chat_messages_by_day"] == {today: 1}
    assert figures["inference_spend_by_day"] == {today: received[-1]["cost_wei"]}
    for chart in ("holders_by_day", "volume_by_day", "fees_by_day", "chat_messages_by_day", "inference_spend_by_day"):
        await expect(creator.locator(f"[data-chart={chart}] canvas").first).to_be_visible()
    claimable = int(await creator.locator("[data-stat=fees_claimable]").get_attribute("data-wei") or "")
    assert claimable > 0
    await screenshot(creator, "dashboard")
    balance_before = chain.eth_balance(creator_address)

    await creator.get_by_role("button", name=f"Withdraw {format_eth(claimable)} to your wallet").click()
    status = creator.locator("#withdraw-status")
    # One key's creator fee is less than the gas to withdraw it: the page says so before sending.
    await expect(status).to_have_attribute("data-reason", "gas_exceeds")
    await expect(status).to_contain_text("withdrawing now lowers your balance")
    assert chain.eth_balance(creator_address) == balance_before
    await creator.get_by_role("button", name="Withdraw anyway").click()
    await expect(status).to_have_attribute("data-state", "confirmed")
    await expect(status).to_contain_text(f"{format_eth(claimable)} sent to your wallet.")
    await expect(creator.locator("[data-stat=fees_claimable]")).to_have_text("0 ETH")
    await expect(creator.locator("[data-stat=fees_claimed]")).to_have_text(format_eth(claimable))
    await expect(creator.get_by_role("button", name="Nothing to withdraw yet")).to_be_disabled()
    tx_hash = await status.get_attribute("data-tx-hash")
    assert tx_hash
    assert chain.eth_balance(creator_address) - balance_before == claimable - chain.gas_paid(tx_hash)
    await screenshot(creator, "dashboard-after-withdrawal")


async def test_a_creator_edits_the_persona_and_the_next_reply_is_attested_with_it(
    people: People, server: Server
) -> None:
    creator = await people.open("/create")
    await use_dev_wallet(creator, fund=True)
    avatar_id = await launch_avatar(creator, "hopper")

    await creator.goto(f"/dashboard?avatar={avatar_id}")
    await creator.get_by_label("Persona", exact=True).fill("You are Grace Hopper. Answer in one sentence.")
    await creator.get_by_role("button", name="Save").click()
    await expect(creator.locator("#edit-status")).to_have_text("Saved: the next replies answer with this persona.")

    await creator.goto(f"/avatars/{avatar_id}/chat")
    await expect(creator.locator("#chat")).to_have_attribute("data-access", "creator")
    await send_chat_message(creator, "Who found the first bug?")
    await creator.locator(".message.assistant").last.get_by_role("button", name="✓ Verified").click()
    message_id = await creator.locator(".message.assistant").last.get_attribute("data-message-id")
    attestation = await api_json(creator, f"/api/messages/{message_id}/attestation")  # with the creator's session
    assert attestation["request_body"]["messages"][0] == {
        "role": "system",
        "content": "You are Grace Hopper. Answer in one sentence.",
    }
    await expect(
        creator.get_by_role("dialog", name="Reply attestation").locator("[data-field='Request hash']")
    ).to_have_text(attestation["request_hash"])


async def until(check: Callable[[], bool]) -> None:
    """Wait for the scripted websocket to have seen what ``check`` looks for (the test's timeout bounds it)."""
    while not check():  # noqa: ASYNC110 - state filled by Playwright's callbacks; no event to await
        await asyncio.sleep(0.05)


def thread_message(message_id: int, role: str, content: str, status: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": message_id,
        "role": role,
        "content": content,
        "status": status,
        "created_at": "2026-01-01T00:00:00Z",
        "cost_wei": "0",
        "attested": False,
        **fields,
    }


# Two pages of a thread, newest first, as GET /api/avatars/{id}/messages answers them.
THREAD_PAGES = {
    None: {
        "items": [
            thread_message(4, "assistant", "Four.", "complete", attested=True),
            thread_message(3, "user", "And two and two?", "answered"),
        ],
        "next_cursor": "older",
    },
    "older": {
        "items": [
            thread_message(2, "assistant", "", "failed", error_code="verification_failed"),
            thread_message(1, "user", "One and one?", "failed", error_code="verification_failed"),
        ],
        "next_cursor": None,
    },
}


async def answer_from_thread_pages(route: Route) -> None:
    cursor = parse_qs(urlparse(route.request.url).query).get("cursor", [None])[0]
    await route.fulfill(json=THREAD_PAGES[cursor])


async def test_the_chat_pages_its_history_and_says_which_replies_failed_verification(people: People) -> None:
    creator = await people.open("/create")
    await use_dev_wallet(creator, fund=True)
    avatar_id = await launch_avatar(creator, "noether")
    await creator.route(re.compile(r"/api/avatars/0x[0-9a-f]{32}/messages\?"), answer_from_thread_pages)
    await creator.goto(f"/avatars/{avatar_id}/chat")
    texts = creator.locator("#thread .message:not(.greeting) .message-text")
    await expect(texts).to_have_text(["And two and two?", "Four."])

    await creator.get_by_role("button", name="Load older messages").click()

    await expect(texts).to_have_text(
        ["One and one?", "(The text was discarded: it could not be verified.)", "And two and two?", "Four."]
    )
    await expect(creator.locator(".message[data-message-id='2'] .badge")).to_have_text("✗ Failed verification")
    await expect(creator.locator(".message[data-message-id='4'] .badge")).to_have_text("✓ Verified")
    await expect(creator.get_by_role("button", name="Load older messages")).to_be_hidden()


async def test_the_chat_shows_the_queue_resends_after_a_reconnect_and_explains_refusals(
    people: People, screenshot: Screenshot
) -> None:
    creator = await people.open("/create")
    await use_dev_wallet(creator, fund=True)
    avatar_id = await launch_avatar(creator, "lovelace")
    sockets: list[WebSocketRoute] = []
    sent: list[dict[str, Any]] = []

    def script(socket: WebSocketRoute) -> None:  # stands in for the server: the test answers by hand
        sockets.append(socket)
        socket.on_message(lambda message: sent.append(json.loads(message)))

    await creator.route_web_socket(CHAT_SOCKET, script)
    await creator.goto(f"/avatars/{avatar_id}/chat")
    status = creator.locator("#chat-status")
    send = creator.get_by_role("button", name="Send")

    await send_chat_message(creator, "Shall we compute Bernoulli numbers?")
    await until(lambda: len(sent) == 1)
    first = sent[0]
    sockets[0].send(json.dumps({"type": "queued", "client_msg_id": first["client_msg_id"], "position": 3, "eta_s": 12}))
    await expect(status).to_have_text("Every node is busy: you are number 3 in the queue, about 12 s from a reply.")
    await expect(creator.get_by_role("button", name="Replying…")).to_be_disabled()
    await screenshot(creator, "chat-queued")

    # The connection drops while the fan waits: the page reconnects and asks again, with the same client_msg_id.
    await sockets[0].close(code=1011, reason="restarting")
    await until(lambda: len(sent) == 2)
    assert sent[1] == first
    assert len(sockets) == 2
    for text in ("Gladly, ", "let us begin."):
        sockets[1].send(
            json.dumps({"type": "token", "client_msg_id": first["client_msg_id"], "message_id": 8, "text": text})
        )
    sockets[1].send(
        json.dumps(
            {
                "type": "done",
                "client_msg_id": first["client_msg_id"],
                "message_id": 8,
                "reply_to": 7,
                "usage": None,
                "cost_wei": "1000000000000000",
                "verified": False,
                "attestation": None,
            }
        )
    )
    reply = creator.locator(".message.assistant").last
    await expect(reply.locator(".message-text")).to_have_text("Gladly, let us begin.")
    await expect(reply).to_have_attribute("data-state", "unverified")
    await expect(reply.locator(".message-meta")).to_contain_text("The platform paid 0.001 OPG to the node.")

    # A reply whose attestation does not verify: its text is dropped, and the thread says why.
    await send_chat_message(creator, "Is this true?")
    await until(lambda: len(sent) == 3)
    sockets[1].send(
        json.dumps(
            {"type": "token", "client_msg_id": sent[2]["client_msg_id"], "message_id": 10, "text": "Forged words"}
        )
    )
    sockets[1].send(
        json.dumps(
            {
                "type": "error",
                "code": "verification_failed",
                "detail": "bad attestation",
                "client_msg_id": sent[2]["client_msg_id"],
                "message_id": 10,
            }
        )
    )
    failed = creator.locator(".message[data-message-id='10']")
    await expect(failed).to_have_attribute("data-state", "verification_failed")
    await expect(failed.locator(".message-text")).to_have_text("(The text was discarded: it could not be verified.)")
    await expect(failed.locator(".badge")).to_have_text("✗ Failed verification")
    await expect(status).to_have_text("The reply's attestation did not verify, so its text was thrown away.")

    # Too many messages: the text goes back into the input, and sending waits out the countdown.
    await send_chat_message(creator, "And the next one?")
    await until(lambda: len(sent) == 4)
    sockets[1].send(
        json.dumps(
            {
                "type": "error",
                "code": "rate_limited",
                "detail": "slow down",
                "retry_after_s": 2,
                "client_msg_id": sent[3]["client_msg_id"],
            }
        )
    )
    await expect(status).to_have_text(
        re.compile(r"^You are sending messages faster than this chat allows\. Try again in [12] s\.$")
    )
    await expect(status).to_have_attribute("data-reason", "retry_after")
    await expect(creator.get_by_label("Message", exact=True)).to_have_value("And the next one?")
    await expect(send).to_be_disabled()
    await expect(creator.locator(".message.user")).to_have_count(2)  # the refused message was not kept
    await screenshot(creator, "chat-rate-limited")
    await expect(status).to_contain_text("You can send again now.")
    await expect(send).to_be_enabled()

    # The key was sold elsewhere: the chat says so and links to buying one.
    await send_chat_message(creator, "Still there?")
    await until(lambda: len(sent) == 5)
    sockets[1].send(
        json.dumps(
            {
                "type": "error",
                "code": "no_key",
                "detail": "hold at least one key of @lovelace to chat with it",
                "client_msg_id": sent[4]["client_msg_id"],
            }
        )
    )
    await expect(status).to_have_attribute("data-reason", "no_key")
    await expect(status.get_by_role("link", name="Buy a key")).to_have_attribute("href", f"/avatars/{avatar_id}")
    await expect(creator.get_by_label("Message", exact=True)).to_be_disabled()


async def test_the_operations_page_shows_the_nodes_and_charts_the_autoscale_signal(
    people: People, screenshot: Screenshot
) -> None:
    page = await people.open("/operations")
    (node,) = await api_json(page, "/api/nodes")
    signal = await api_json(page, "/api/autoscale/signal")

    row = page.locator(f"#nodes tr[data-tee-id='{node['tee_id']}']")
    await expect(row.locator("[data-field=state]")).to_have_text("serving")
    await expect(page.locator("#nodes-summary")).to_contain_text("1 registered, 1 serving")
    await expect(page.locator("[data-signal=streams_per_node]")).to_have_text(str(signal["streams_per_node"]))
    await expect(page.locator("[data-signal=desired_nodes]")).to_have_text(re.compile(r"^\d+$"))
    await expect(page.locator("#signal-reason")).to_contain_text("Decided")
    await expect(page.locator("#signal-chart canvas").first).to_be_visible()
    await screenshot(page, "operations")


async def test_the_fan_and_creator_pages_say_what_they_need_with_javascript_off(
    people: People, server: Server, screenshot: Screenshot
) -> None:
    creator = await people.open("/create")
    await use_dev_wallet(creator, fund=True)
    avatar_id = await launch_avatar(creator, "babbage")
    cookies = await creator.context.cookies()

    reader = await people.open("/", javascript=False)
    await reader.context.add_cookies(cookies)  # signed in before, in a browser that has JavaScript off now
    await reader.goto("/dashboard")
    await expect(reader.locator(f"#creator-avatars tr[data-avatar-id='{avatar_id}']")).to_contain_text("Babbage")
    await expect(reader.get_by_text("Withdrawing, editing and the charts need JavaScript.")).to_be_visible()
    await expect(reader.get_by_label("Persona", exact=True)).to_be_disabled()
    await screenshot(reader, "dashboard-without-javascript")
    await reader.goto(f"/avatars/{avatar_id}/chat")
    await expect(reader.get_by_text("The chat needs JavaScript.")).to_be_visible()
    await expect(reader.get_by_label("Message", exact=True)).to_be_disabled()
    await reader.goto("/portfolio")
    await expect(reader.locator("#holdings")).to_contain_text("Babbage")
    await reader.goto("/operations")
    await expect(reader.get_by_text("The signal and its chart need JavaScript")).to_be_visible()
    await expect(reader.locator("#nodes tbody tr")).to_have_count(1)
