"""The avatar profile, the rankings and the creator dashboard: the market's figures joined with the chat's."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.avatars.models import Avatar
from app.catalog import ratings
from app.catalog.schemas import AvatarProfile, CreatorAvatarStats, MarketStats, RankedAvatar, RankingSort
from app.chat import analytics as chat
from app.lib import pagination
from app.lib.pagination import Page
from app.lib.time import aware
from app.market import service as market
from app.market.models import MarketAvatar
from app.reviews.service import Prior

NO_CHATS = (0, 0)


def market_stats(figures: market.MarketFigures, chats: tuple[int, int]) -> MarketStats:
    """An avatar's market figures with its fans' messages and distinct chatters of the last 24 h."""
    return MarketStats(**dataclasses.asdict(figures), chats_24h=chats[0], chatters_24h=chats[1])


async def avatar_profile(
    session: AsyncSession, reader: market.TwinKeysReader, avatar: Avatar, viewer: str | None
) -> AvatarProfile:
    """The public profile; the persona only for its creator."""
    since = datetime.now(UTC) - market.DAY
    figures = await market.figures_of(session, await reader.divisor(), avatar.id, since)
    chats = (await chat.chat_activity_since(session, since, [avatar.id])).get(avatar.id, NO_CHATS)
    return AvatarProfile(
        id=avatar.id,
        handle=avatar.handle,
        name=avatar.name,
        bio=avatar.bio,
        image_url=avatar.image_url,
        model=avatar.model,
        verification_level=avatar.verification_level,
        creator=avatar.creator,
        metadata_uri=avatar.metadata_uri,
        listed=avatar.listed_at is not None,
        created_at=avatar.created_at,
        market=market_stats(figures, chats),
        persona=avatar.persona if viewer == avatar.creator else None,
    )


def _ranking_value(sort: RankingSort, stats: MarketStats) -> int:
    """The figures of the last 24 h, the rankings that are counted for every listed avatar on each request."""
    match sort:
        case RankingSort.volume_24h:
            return int(stats.volume_24h)
        case RankingSort.chats_24h:
            return stats.chats_24h
    raise AssertionError(f"sort={sort} is ranked in SQL")  # rating by the reviews domain, the others by KEYED


async def ranked_page(
    session: AsyncSession,
    reader: market.TwinKeysReader,
    prior: Prior,
    *,
    sort: RankingSort,
    q: str | None,
    cursor: str | None,
    limit: int,
) -> Page[RankedAvatar]:
    """Listed avatars, best first by ``sort`` (ties by id), with keyset pagination, each with its rating: one page
    of the rankings, as the API and the marketplace page show them."""
    limit = pagination.check_limit(limit)
    divisor = await reader.divisor()
    if sort is RankingSort.rating:  # ranked in SQL by the reviews domain
        rows, next_cursor = await ratings.by_rating(session, prior, divisor=divisor, q=q, cursor=cursor, limit=limit)
        page = Page(
            items=[_ranked(avatar, market_stats(figures, chats)) for avatar, figures, chats in rows],
            next_cursor=next_cursor,
        )
    elif sort in KEYED:
        page = await _ranked_by_key(session, divisor, sort=sort, q=q, cursor=cursor, limit=limit)
    else:
        page = await _ranked_by_market(session, divisor, sort=sort, q=q, cursor=cursor, limit=limit)
    return await ratings.with_ratings(session, page, prior)


async def _ranked_by_key(
    session: AsyncSession, divisor: int, *, sort: RankingSort, q: str | None, cursor: str | None, limit: int
) -> Page[RankedAvatar]:
    """A ranking by a stored column, in SQL: reads the page's avatars, not every listed one."""
    key, cursor_key = KEYED[sort]
    after = pagination.decode_cursor(cursor, lambda value: cursor_key(value) is not None, pagination.cursor_str)
    since = datetime.now(UTC) - market.DAY
    rows = await market.listed_markets_by(
        session,
        divisor,
        since,
        key=key,
        after=None if after is None else (cursor_key(after[0]), after[1]),
        q=q,
        limit=limit + 1,
    )
    page = rows[:limit]
    activity = await chat.chat_activity_since(session, since, [avatar.id for avatar, _, _ in page]) if page else {}
    items = [_ranked(avatar, market_stats(figures, activity.get(avatar.id, NO_CHATS))) for avatar, figures, _ in page]
    last_avatar, _, last_key = page[-1] if page else (None, None, None)
    next_cursor = (
        pagination.encode_cursor(last_key.isoformat() if isinstance(last_key, datetime) else last_key, last_avatar.id)
        if len(rows) > limit and last_avatar is not None
        else None
    )
    return Page(items=items, next_cursor=next_cursor)


def _wei_key(value: Any) -> int | None:
    return value if pagination.cursor_int(value) and 0 <= value < 2**256 else None


def _count_key(value: Any) -> int | None:
    return value if pagination.cursor_int(value) and 0 <= value <= pagination.MAX_ROW_ID else None


def _moment_key(value: Any) -> datetime | None:
    """A cursor's moment (as the ranking wrote it, ISO 8601), or None when it is not one."""
    if not pagination.cursor_str(value):
        return None
    try:
        return aware(datetime.fromisoformat(value))
    except ValueError:
        return None


# Rankings by a column the market or the avatar stores: each with what reads its key back from a cursor (None when
# the value could not have come from this ranking, as a crafted one: out of the column's range or not a moment).
KEYED: dict[RankingSort, tuple[Any, Callable[[Any], Any]]] = {
    RankingSort.market_cap: (col(MarketAvatar.market_cap), _wei_key),
    RankingSort.holders: (col(MarketAvatar.holders), _count_key),
    RankingSort.newest: (col(Avatar.created_at), _moment_key),
}


def _ranked(avatar: Avatar, stats: MarketStats) -> RankedAvatar:
    return RankedAvatar(
        id=avatar.id,
        handle=avatar.handle,
        name=avatar.name,
        image_url=avatar.image_url,
        model=avatar.model,
        verification_level=avatar.verification_level,
        creator=avatar.creator,
        created_at=avatar.created_at,
        market=stats,
    )


async def _ranked_by_market(
    session: AsyncSession, divisor: int, *, sort: RankingSort, q: str | None, cursor: str | None, limit: int
) -> Page[RankedAvatar]:
    since = datetime.now(UTC) - market.DAY
    listed = await market.listed_markets(session, divisor, since, q=q)
    activity = await chat.chat_activity_since(session, since, [avatar.id for avatar, _ in listed])
    ranked = []
    for avatar, figures in listed:
        stats = market_stats(figures, activity.get(avatar.id, NO_CHATS))
        ranked.append((_ranking_value(sort, stats), avatar.id, avatar, stats))
    ranked.sort(key=lambda row: (row[0], row[1]), reverse=True)
    after = pagination.decode_cursor(cursor, pagination.cursor_int, pagination.cursor_str)
    if after is not None:
        ranked = [row for row in ranked if (row[0], row[1]) < (after[0], after[1])]
    page = ranked[:limit]
    items = [_ranked(avatar, stats) for _, _, avatar, stats in page]
    next_cursor = pagination.encode_cursor(page[-1][0], page[-1][1]) if len(ranked) > limit else None
    return Page(items=items, next_cursor=next_cursor)


async def creator_dashboard(
    session: AsyncSession, reader: market.TwinKeysReader, creator: str
) -> list[CreatorAvatarStats]:
    """Per avatar of ``creator``: the market's totals and daily figures with the chat's daily messages and
    inference spend (the API and the dashboard page show them)."""
    markets = await market.creator_markets(session, reader, creator)
    avatar_ids = [row.avatar_id for row in markets]
    messages = await chat.messages_by_day(session, avatar_ids)
    spend = await chat.inference_spend_by_day(session, avatar_ids)
    return [
        CreatorAvatarStats(
            **dataclasses.asdict(row),
            chat_messages_by_day=messages.get(row.avatar_id, {}),
            inference_spend_by_day=spend.get(row.avatar_id, {}),
        )
        for row in markets
    ]
