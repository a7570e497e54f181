"""The Bayesian rating: a few extreme votes do not top the ranking; sort=rating pages in SQL."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.chain.client import Chain
from app.reviews.models import AvatarRating
from app.reviews.service import Prior
from tests.helpers import index, launch


def test_the_bayesian_average_starts_at_the_prior_and_tends_to_the_mean() -> None:
    prior = Prior(mean=3.0, weight=5)

    assert prior.score(0, 0) is None
    assert prior.score(1, 5) == pytest.approx(20 / 6)  # one five-star review barely moves it
    assert prior.score(2, 10) < prior.score(100, 480)  # two 5s rank below a hundred averaging 4.8
    assert prior.score(10_000, 50_000) == pytest.approx(5.0, abs=0.01)
    assert Prior(mean=3.0, weight=0).score(2, 9) == 4.5  # weight 0: the plain mean


async def set_ratings(app: Litestar, ratings: dict[str, list[int]]) -> None:
    """Each avatar's stars, written to its rating totals (the rollup sort=rating reads)."""
    async with app.state.services.sessions() as session:
        for avatar_id, stars in ratings.items():
            session.add(rating_row(avatar_id, stars))
        await session.commit()


def rating_row(avatar_id: str, stars: list[int]) -> AvatarRating:
    row = AvatarRating(avatar_id=avatar_id, count=len(stars), total=sum(stars))
    for star in stars:
        setattr(row, f"stars_{star}", getattr(row, f"stars_{star}") + 1)
    return row


async def test_sort_by_rating_puts_many_good_reviews_above_a_few_perfect_ones_and_unrated_last(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain
) -> None:
    creator = chain.dev_accounts[1]
    ids = {
        handle: await launch(client, chain, creator, handle)
        for handle in ("perfect", "loved", "poor", "unrated", "average", "unseen")
    }
    await index(app)
    await set_ratings(
        app, {ids["perfect"]: [5, 5], ids["loved"]: [5] * 80 + [4] * 20, ids["poor"]: [1] * 10, ids["average"]: [3] * 4}
    )

    ranked = (await client.get("/api/avatars", params={"sort": "rating"})).json()["items"]
    for limit in (1, 2):  # a cursor among the rated, at their end, and among the unrated
        paged, cursor = [], None
        while True:
            params = {"sort": "rating", "limit": limit, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/api/avatars", params=params)).json()
            paged += page["items"]
            if not (cursor := page["next_cursor"]):
                break
        assert [row["handle"] for row in paged] == [row["handle"] for row in ranked]
    searched = (await client.get("/api/avatars", params={"sort": "rating", "q": "E"})).json()["items"]
    by_cap = (await client.get("/api/avatars")).json()["items"]

    unrated = sorted(("unrated", "unseen"), key=lambda handle: ids[handle], reverse=True)  # ties by id
    assert [row["handle"] for row in ranked] == ["loved", "perfect", "average", "poor", *unrated]
    assert [row["handle"] for row in searched] == [row["handle"] for row in ranked if "e" in row["handle"]]
    assert ranked[0]["rating"]["count"] == 100
    assert ranked[0]["rating"]["mean"] == 4.8
    assert ranked[-1]["rating"] == {
        "score": None,
        "mean": None,
        "count": 0,
        "distribution": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0},
    }
    assert {row["handle"]: row["rating"]["count"] for row in by_cap}["poor"] == 10  # every sort shows ratings


async def test_sorts_and_windows_outside_the_list_are_400_naming_the_field(client: AsyncTestClient[Litestar]) -> None:
    sort = await client.get("/api/avatars", params={"sort": "best"})
    window = await client.get("/api/network/usage", params={"window": "1y"})
    fmt = await client.get("/api/network/usage", params={"format": "xml"})
    section = await client.get("/api/network/usage", params={"format": "csv", "section": "all"})
    rating_cursor = await client.get("/api/avatars", params={"sort": "rating", "cursor": "bm90IGEgY3Vyc29y"})

    assert (sort.status_code, "sort" in sort.json()["detail"]) == (400, True)
    assert (window.status_code, window.json()["field"]) == (400, "window")
    assert (fmt.status_code, fmt.json()["field"]) == (400, "format")
    assert (section.status_code, section.json()["field"]) == (400, "section")
    assert (rating_cursor.status_code, rating_cursor.json()["field"]) == (400, "cursor")
