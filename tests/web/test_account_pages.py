"""The pages rendered for the signed-in wallet (chat, portfolio, creator dashboard) and the operations page,
read as a browser without JavaScript reads them."""

from __future__ import annotations

import html
import json
import re

from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.chain.client import Chain
from app.market import curve
from app.web.controllers import TRADES_PAGE_SIZE
from app.web.formatting import format_eth
from tests.helpers import buy, index, launch, sell, sign_in, view


def access_of(page: str) -> str:
    return re.search(r'data-access="([a-z_]+)"', page)[1]


def cell(page: str, field: str) -> str:
    return html.unescape(re.search(rf'data-field="{field}"[^>]*>(.*?)</td>', page, flags=re.DOTALL)[1])


async def test_the_chat_page_says_who_may_chat(client: AsyncTestClient[Litestar], app: Litestar, chain: Chain) -> None:
    creator, fan, stranger = chain.dev_accounts[1:4]
    avatar_id = await launch(client, chain, creator, "talker")
    buy(chain, fan, avatar_id, 1)
    await index(app)
    as_creator = (await client.get(f"/avatars/{avatar_id}/chat")).text
    client.cookies.clear()
    signed_out = (await client.get(f"/avatars/{avatar_id}/chat")).text
    await sign_in(client, stranger)
    without_key = (await client.get(f"/avatars/{avatar_id}/chat")).text
    await sign_in(client, fan)
    as_holder = (await client.get(f"/avatars/{avatar_id}/chat")).text

    assert access_of(as_creator) == "creator"
    assert access_of(signed_out) == "signed_out"
    assert "Connect a wallet to chat" in signed_out
    assert access_of(without_key) == "no_key"
    assert f'<a href="/avatars/{avatar_id}">Buy a key</a>' in without_key
    assert 'id="chat-form"' not in without_key
    assert access_of(as_holder) == "holder"
    assert "Your thread (1 key)" in as_holder
    assert "The chat needs JavaScript." in as_holder
    assert f'data-rendered-for="{fan.address}"' in as_holder


async def test_the_portfolio_shows_keys_value_profit_and_loss_and_pages_trades(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain
) -> None:
    creator, fan = chain.dev_accounts[1:3]
    avatar_id = await launch(client, chain, creator, "valued")
    for _ in range(TRADES_PAGE_SIZE):
        buy(chain, fan, avatar_id, 1)
    sell(chain, fan, avatar_id, 1)  # 26 trades, 24 keys
    await index(app)
    holding = next(
        row
        for row in (await client.get(f"/api/wallets/{fan.address}/holdings")).json()
        if row["avatar_id"] == avatar_id
    )
    await sign_in(client, fan)

    first = (await client.get("/portfolio")).text
    cursor = html.unescape(re.search(r'<a href="/portfolio\?cursor=([^"]+)" rel="next">Older trades</a>', first)[1])
    older = (await client.get("/portfolio", params={"cursor": cursor})).text

    value, spent, gas = int(holding["sell_value"]), int(holding["cost_basis"]), int(holding["gas_paid"])
    assert spent > value > 0  # fees both ways, and the price falls as the keys are sold
    assert holding["gas_paid_known"]
    assert gas > 0
    assert cell(first, "balance") == "24"
    assert cell(first, "sell_value") == format_eth(value)
    assert cell(first, "cost_basis") == format_eth(spent)
    assert cell(first, "gas_paid") == format_eth(gas)
    pnl = value - spent - gas  # the P&L counts the network fees the trades paid
    assert f'data-total="pnl" data-wei="{pnl}"><span class="loss">{format_eth(pnl)}</span>' in first
    bought, sold = '<td data-label="Side">buy</td>', '<td data-label="Side">sell</td>'
    assert first.count(bought) + first.count(sold) == TRADES_PAGE_SIZE
    assert first.index(sold) < first.index(bought)  # newest first
    assert older.count(bought) == 1
    assert "Older trades" not in older
    client.cookies.clear()
    assert "Connect a wallet to see its keys" in (await client.get("/portfolio")).text


async def test_the_dashboard_shows_the_creator_s_avatars_figures_charts_and_persona(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain
) -> None:
    creator, fan, stranger = chain.dev_accounts[1:4]
    first = await launch(client, chain, creator, "first_born")
    second = await launch(client, chain, creator, "second_born")
    buy(chain, fan, second, 3)
    await index(app)
    await sign_in(client, creator)

    default = (await client.get("/dashboard")).text
    picked = (await client.get("/dashboard", params={"avatar": second})).text
    await sign_in(client, stranger)
    not_a_creator = (await client.get("/dashboard")).text

    assert re.findall(r'<tr data-avatar-id="(0x[0-9a-f]{32})">', default) == [first, second]
    assert f'<section class="panel" id="creator-avatar" data-avatar-id="{first}"' in default
    assert f'<section class="panel" id="creator-avatar" data-avatar-id="{second}"' in picked
    assert "You are second_born, terse and kind.</textarea>" in picked
    earned = view(chain, "creatorFees", bytes.fromhex(second[2:]))
    assert earned > 0
    assert f'data-stat="fees_claimable" data-wei="{earned}">{format_eth(earned)}</dd>' in picked
    charts = json.loads(re.search(r'<script type="application/json" id="chart-data"[^>]*>(.*?)</script>', picked)[1])
    assert list(charts["holders_by_day"].values())[-1] == 2
    divisor = await app.state.services.reader.divisor()
    assert list(charts["volume_by_day"].values()) == [str(curve.price(1, 3, divisor))]
    assert "You have not launched an avatar yet." in not_a_creator


async def test_the_operations_page_lists_the_registry_s_nodes(client: AsyncTestClient[Litestar]) -> None:
    nodes = (await client.get("/api/nodes")).json()

    page = (await client.get("/operations")).text

    assert '<p id="nodes-summary">1 registered, 1 serving' in page
    assert f'<tr data-tee-id="{nodes[0]["tee_id"]}">' in page
    assert '<span class="badge verified" title="trusted: embedded">serving</span>' in page
    assert "The signal and its chart need JavaScript" in page
