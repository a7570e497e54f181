"""The chat page's Memory panel in a real browser against `twin serve`: after a reply the fan sees what the avatar
remembered, with the message it came from, and pins, edits, deletes one and forgets everything."""

from __future__ import annotations

from playwright.async_api import expect

from tests.e2e.conftest import People
from tests.e2e.flows import RpcChain, Server, launch_avatar, remembered_dev_wallet, use_dev_wallet
from tests.e2e.test_chat_portfolio_dashboard import Screenshot, send_chat_message, signed_in


async def test_the_memory_panel_shows_pins_edits_and_forgets(
    people: People, server: Server, screenshot: Screenshot
) -> None:
    chain = RpcChain(server)
    creator = await people.open("/create")
    await use_dev_wallet(creator, fund=True)
    avatar_id = await launch_avatar(creator, "coach")
    fan_account = chain.new_holder(avatar_id)
    fan = await people.open("/", init_script=remembered_dev_wallet(fan_account))
    await signed_in(fan, fan_account.address)
    await fan.goto(f"/avatars/{avatar_id}/chat")
    panel = fan.get_by_role("region", name="Memory")
    await expect(panel.get_by_text("Nothing yet.")).to_be_visible()

    await send_chat_message(fan, "call me Sam, I'm training for a marathon")
    await expect(fan.locator(".message.assistant").last).to_have_attribute("data-state", "verified")
    name = panel.locator("li[data-key='name']")
    goal = panel.locator("li[data-key='goal:marathon']")
    await expect(name).to_contain_text("Their name is Sam from your message")  # nothing between them
    await expect(goal.locator(".memory-source")).to_contain_text("call me Sam, I'm training for a marathon")
    await screenshot(fan, "chat-memory")

    await name.get_by_role("button", name="Pin").click()
    await expect(name.get_by_text("pinned")).to_be_visible()
    await name.get_by_role("button", name="Edit").click()
    await name.get_by_label("Memory text").fill("Their name is Samantha")
    await name.get_by_role("button", name="Save").click()
    await expect(panel.locator("li[data-key='name'] .memory-text")).to_have_text("Their name is Samantha")
    await goal.get_by_role("button", name="Delete").click()
    await expect(goal).to_be_hidden()

    fan.once("dialog", lambda dialog: dialog.accept())
    await panel.get_by_role("button", name="Forget everything").click()
    await expect(panel.get_by_text("Nothing yet.")).to_be_visible()
    await expect(panel.get_by_role("status")).to_have_text("Everything forgotten.")
