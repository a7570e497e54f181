"""Pages rendered on the server: readable without JavaScript, ranked and searched like the API,
a page for a browser's 404 and the JSON error shape for API clients, and none of it in the OpenAPI
document."""

from __future__ import annotations

import json
import re

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.chain.artifacts import load_artifact
from app.chain.client import Chain
from app.market import curve
from app.web.formatting import format_eth
from tests.helpers import buy, index, launch

BROWSER = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def listed_ids(html: str) -> list[str]:
    """The ranked cards' avatar ids, in order (not the trending row's)."""
    rankings = re.search(r'<ol class="cards rankings".*?</ol>', html, flags=re.DOTALL)
    return re.findall(r'<li class="card" data-avatar-id="(0x[0-9a-f]{32})">', rankings[0]) if rankings else []


@pytest.mark.parametrize(
    ("wei", "text"),
    [
        (0, "0 ETH"),
        (1, "0.000000000000000001 ETH"),
        (625_000_000_000, "0.000000625 ETH"),
        (999_999_999_999_999_999, "0.9999 ETH"),
        (1_234_500_000_000_000_000, "1.2345 ETH"),
        (12_345 * 10**18 + 1, "12,345 ETH"),
        (-5 * 10**15, "-0.005 ETH"),
    ],
)
def test_eth_amounts_read_as_people_expect(wei: int, text: str) -> None:
    assert format_eth(wei) == text
    assert format_eth(str(wei)) == text


async def test_the_marketplace_ranks_searches_and_links_like_the_api(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain
) -> None:
    creator, fan = chain.dev_accounts[1:3]
    small = await launch(client, chain, creator, "small_one")
    big = await launch(client, chain, creator, "big_one", first_keys=4)
    buy(chain, fan, small, 1)  # small: 2 keys, 2 holders; big: 4 keys, 1 holder
    await index(app)

    by_market_cap = await client.get("/")
    by_holders = (await client.get("/", params={"sort": "holders"})).text
    searched = (await client.get("/", params={"q": "SMALL"})).text

    assert by_market_cap.headers["content-type"].startswith("text/html")
    assert listed_ids(by_market_cap.text) == [big, small]
    assert f'<a href="/avatars/{big}">Big_One</a>' in by_market_cap.text
    assert f'src="/avatars/{big}/portrait.svg"' in by_market_cap.text
    assert listed_ids(by_holders) == [small, big]
    assert '<a href="/?sort=holders" aria-current="true">' in by_holders
    assert listed_ids(searched) == [small]
    # Both traded today: their 24 h change and the trending row (buys and chats in 24 h) show it.
    assert re.search(r'<span class="change up">\+\d+\.\d %', by_market_cap.text)
    assert '<ol class="cards trending">' in by_market_cap.text
    activity = re.search(r'<ol id="activity".*?</ol>', by_market_cap.text, flags=re.DOTALL)[0]
    assert activity.count('data-kind="launch"') == 2
    assert activity.count('data-kind="buy"') == 1


async def test_an_avatar_has_a_drawn_portrait_and_a_share_link_by_handle(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain
) -> None:
    avatar_id = await launch(client, chain, chain.dev_accounts[1], "pictured")
    await index(app)

    portrait = await client.get(f"/avatars/{avatar_id}/portrait.svg")
    again = await client.get(f"/avatars/{avatar_id}/portrait.svg")
    shared = await client.get("/avatars/@pictured", follow_redirects=False)
    unknown = await client.get("/avatars/@nobody_here", headers=BROWSER)

    assert portrait.status_code == 200
    assert portrait.headers["content-type"].startswith("image/svg+xml")
    assert portrait.text.startswith("<svg")
    assert "Portrait of Pictured" in portrait.text
    assert again.text == portrait.text  # the same id, the same face
    assert shared.status_code in (302, 303, 307)
    assert shared.headers["location"] == f"/avatars/{avatar_id}"
    assert unknown.status_code == 404


async def test_the_avatar_page_shows_its_market_and_marks_the_supply_on_the_curve(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain
) -> None:
    creator, fan = chain.dev_accounts[1:3]
    avatar_id = await launch(client, chain, creator, "curvy", first_keys=3)
    buy(chain, fan, avatar_id, 1)
    await index(app)
    divisor = await app.state.services.reader.divisor()

    html = (await client.get(f"/avatars/{avatar_id}")).text

    assert '<dd data-stat="supply">4</dd>' in html
    assert '<dd data-stat="holders">2</dd>' in html
    assert f">{format_eth(curve.price(4, 1, divisor))}</dd>" in html
    trades = re.search(r'<tbody id="trades">(.*?)</tbody>', html, flags=re.DOTALL)[1]
    assert trades.count("<tr>") == 2
    assert trades.index('>buy</td><td class="num" data-label="Keys">1</td>') < trades.index(
        '>buy</td><td class="num" data-label="Keys">3</td>'
    )
    # The price column is per key: the buy of key 3 (supply 3 → 4) cost exactly that key's price.
    per_key = format_eth(curve.price(3, 1, divisor))
    assert f'<td class="num" data-label="Keys">1</td><td class="num" data-label="Per key">{per_key}</td>' in trades
    curve_data = json.loads(re.search(r'<script type="application/json" id="curve-data">(.*?)</script>', html)[1])
    assert curve_data["supply"] == 4
    assert int(curve_data["next_key_price"]) == curve.price(4, 1, divisor)
    keys = [key for key, _ in curve_data["points"]]
    assert keys == sorted(keys)
    assert keys[0] == 0
    assert keys[-1] >= 8  # past the supply
    assert all(int(price) == curve.price(key, 1, divisor) for key, price in curve_data["points"])
    assert "Trading needs JavaScript and a wallet." in html
    # A shared link previews the avatar (Open Graph).
    assert '<meta property="og:title" content="Curvy (@curvy) on Twin market">' in html
    assert re.search(rf'<meta property="og:image" content="http://[^"]+/avatars/{avatar_id}/portrait.svg">', html)


async def test_a_browser_gets_a_page_for_what_does_not_exist_and_api_clients_get_json(
    client: AsyncTestClient[Litestar],
) -> None:
    unknown_page = await client.get("/no/such/page", headers=BROWSER)
    unknown_avatar = await client.get(f"/avatars/0x{'ab' * 16}", headers=BROWSER)
    malformed_avatar = await client.get("/avatars/ada", headers=BROWSER)
    unknown_route_for_a_client = await client.get("/no/such/page")
    api_route_in_a_browser = await client.get("/api/no/such/route", headers=BROWSER)

    assert unknown_page.status_code == 404
    assert "There is no page at /no/such/page." in unknown_page.text
    assert unknown_avatar.status_code == 404
    assert f"no avatar with id 0x{'ab' * 16}" in unknown_avatar.text
    assert malformed_avatar.status_code == 400
    assert "expected a bytes16 id" in malformed_avatar.text
    assert unknown_route_for_a_client.status_code == 404
    assert unknown_route_for_a_client.json()["error"] == "not_found"
    assert api_route_in_a_browser.status_code == 404
    assert api_route_in_a_browser.json()["error"] == "not_found"


async def test_pages_stay_out_of_the_openapi_document_and_the_abi_is_served(client: AsyncTestClient[Litestar]) -> None:
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    abi = await client.get("/abi/TwinKeys.json")

    assert "/api/avatars" in paths
    assert not {"/", "/create", "/portfolio", "/operations", "/abi/TwinKeys.json"} & set(paths)
    assert not [path for path in paths if path.startswith(("/avatars/", "/static", "/vendor"))]
    assert abi.json() == load_artifact("TwinKeys").abi


@pytest.mark.parametrize("path", ["/static/js/wallet.js", "/vendor/ethers/ethers.min.js", "/vendor/uplot/uPlot.esm.js"])
async def test_scripts_are_served_locally(client: AsyncTestClient[Litestar], path: str) -> None:
    response = await client.get(path, headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    assert response.headers["content-encoding"] == "gzip"
    assert "max-age=" in response.headers["cache-control"]
