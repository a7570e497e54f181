"""The avatar profile, the rankings and the creator dashboard: the market's figures joined with the chat's."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

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
from app.network import recent as network
from app.reviews import service as reviews
from app.reviews.service import Prior


def market_stats(market_row: MarketAvatar | None, divisor: int, activity: network.Recent) -> MarketStats:
    """An avatar's market figures with its volume, fans' messages and distinct chatters of the last 24 h (hourly:
    see ``app.network.recent``)."""
    figures = market.market_figures(market_row, divisor, activity.volume)
    return MarketStats(**dataclasses.asdict(figures), chats_24h=activity.chats, chatters_24h=activity.chatters)


async def avatar_profile(
    session: AsyncSession, reader: market.TwinKeysReader, avatar: Avatar, viewer: str | None
) -> AvatarProfile:
    """The public profile; the persona only for its creator."""
    activity = await network.recent_of(session, [avatar.id])
    market_row = await market.market_of(session, avatar.id)
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
        market=market_stats(market_row, await reader.divisor(), activity[avatar.id]),
        persona=avatar.persona if viewer == avatar.creator else None,
    )


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
        rows, next_cursor = await reviews.by_rating(session, prior, q=q, cursor=cursor, limit=limit)
        activity = await network.recent_of(session, [avatar.id for avatar, _ in rows])
        page = Page(
            items=[_ranked(avatar, market_stats(row, divisor, activity[avatar.id])) for avatar, row in rows],
            next_cursor=next_cursor,
        )
    else:
        page = await _ranked_by_key(session, divisor, sort=sort, q=q, cursor=cursor, limit=limit)
    return await ratings.with_ratings(session, page, prior)


async def _ranked_by_key(
    session: AsyncSession, divisor: int, *, sort: RankingSort, q: str | None, cursor: str | None, limit: int
) -> Page[RankedAvatar]:
    """A ranking by a stored column (a rollup's for the last 24 h), in SQL: reads the page's avatars, not every
    listed one."""
    keyed = KEYED[sort]
    decoded = pagination.decode_cursor(cursor, lambda value: keyed.cursor_key(value) is not None, pagination.cursor_str)
    after = None if decoded is None else (keyed.cursor_key(decoded[0]), decoded[1])
    if sort in RECENT:
        rows = await _by_recent(session, keyed.key, after=after, q=q, limit=limit + 1)
    else:
        rows = await market.listed_markets_by(session, key=keyed.key, after=after, q=q, limit=limit + 1)
    page = rows[:limit]
    activity = await network.recent_of(session, [avatar.id for avatar, _, _ in page])
    items = [_ranked(avatar, market_stats(row, divisor, activity[avatar.id])) for avatar, row, _ in page]
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


class Keyed(NamedTuple):
    key: Any  # the column ranked on
    cursor_key: Callable[[Any], Any]  # reads the key back from a cursor: None when the value could not have come
    # from this ranking, as a crafted one (out of the column's range or not a moment)


# Rankings by a column the market, the avatar or the network's recent totals (RECENT) store.
KEYED: dict[RankingSort, Keyed] = {
    RankingSort.market_cap: Keyed(col(MarketAvatar.market_cap), _wei_key),
    RankingSort.volume_24h: Keyed(network.VOLUME, _wei_key),
    RankingSort.holders: Keyed(col(MarketAvatar.holders), _count_key),
    RankingSort.chats_24h: Keyed(network.CHATS, _count_key),
    RankingSort.newest: Keyed(col(Avatar.created_at), _moment_key),
}
RECENT = {RankingSort.volume_24h, RankingSort.chats_24h}


async def _by_recent(
    session: AsyncSession, key: Any, *, after: tuple[Any, str] | None, q: str | None, limit: int
) -> list[tuple[Avatar, MarketAvatar, Any]]:
    """A 24 h ranking in two steps, each reading no more than the page: the avatars with some (a few thousand
    a day, through the index on ``key``), greatest first, then those with none, whose key is zero, by id."""
    rows = []
    if after is None or after[0] > 0:
        join, some = network.having(key, col(Avatar.id))
        rows = await market.listed_markets_by(session, key=key, join=join, where=some, after=after, q=q, limit=limit)
    if len(rows) < limit:  # ranked on the id alone (key and tie-break both), read back as zeros
        none_after = None if after is None or after[0] > 0 else (after[1], after[1])
        rest = await market.listed_markets_by(
            session,
            key=col(Avatar.id),
            where=network.lacking(key, col(Avatar.id)),
            after=none_after,
            q=q,
            limit=limit - len(rows),
        )
        rows += [(avatar, row, 0) for avatar, row, _ in rest]
    return rows


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
