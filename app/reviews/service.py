"""Reviews: who may write one, signing and replay checks, edits, answers, hiding, and ratings.

The rating is a Bayesian average: with prior mean ``m`` and weight ``C`` (settings), an avatar whose
``n`` visible reviews give ``S`` stars in all rates ``(m·C + S) / (C + n)``. With no reviews it has no
rating; with a few it stays near ``m``, so two five-star reviews do not outrank a hundred at 4.8; with
many it tends to the plain mean. Ranking compares it in thousandths of a star, in integers, so the
database orders and pages it the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, case, cast, func, literal, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from app.avatars.models import Avatar
from app.config import Settings
from app.db.models import utc_now
from app.errors import Conflict, Forbidden, NotFound
from app.lib import pagination
from app.market import service as market
from app.market.models import MarketAvatar
from app.network import usage as network
from app.reviews.models import AvatarRating, Review
from app.reviews.schemas import RatingOut, ReviewerHolding, ReviewIn, ReviewOut, ReviewsPage
from app.reviews.signing import recover_signer, review_typed_data
from app.validation import BadInput

MAX_TEXT_CHARS = 2_000
MAX_HIDE_REASON_CHARS = 500
STARS = range(1, 6)


@dataclass(frozen=True)
class Signing:
    """Where reviews are signed for: the chain and TwinKeys (the EIP-712 domain)."""

    chain_id: int
    twin_keys: str

    def typed_data(self, avatar_id: str, rating: int, text: str, time: int) -> dict[str, Any]:
        return review_typed_data(
            chain_id=self.chain_id, twin_keys=self.twin_keys, avatar_id=avatar_id, rating=rating, text=text, time=time
        )


# ---------------------------------------------------------------- ratings


@dataclass(frozen=True)
class Prior:
    mean: float
    weight: int

    @classmethod
    def of(cls, settings: Settings) -> Prior:
        return cls(settings.review_prior_mean, settings.review_prior_weight)

    def score(self, count: int, total: int) -> float | None:
        return None if count == 0 else (self.mean * self.weight + total) / (self.weight + count)

    def milli_score(self) -> ColumnElement[int]:
        """The Bayesian average in thousandths of a star, as an integer SQL expression (-1 without reviews)."""
        prior = literal(round(self.mean * 1000) * self.weight)
        count = func.coalesce(col(AvatarRating.count), 0)
        return case(
            (count > 0, cast((prior + col(AvatarRating.total) * 1000) / (self.weight + count), Integer)), else_=-1
        )


def rating_out(row: AvatarRating | None, prior: Prior) -> RatingOut:
    count, total = (row.count, row.total) if row else (0, 0)
    score = prior.score(count, total)
    return RatingOut(
        score=None if score is None else round(score, 3),
        mean=round(total / count, 3) if count else None,
        count=count,
        distribution={str(stars): getattr(row, f"stars_{stars}") if row else 0 for stars in STARS},
    )


async def ratings_of(session: AsyncSession, avatar_ids: list[str], prior: Prior) -> dict[str, RatingOut]:
    rows = (
        {
            row.avatar_id: row
            for row in await session.scalars(select(AvatarRating).where(col(AvatarRating.avatar_id).in_(avatar_ids)))
        }
        if avatar_ids
        else {}
    )
    return {avatar_id: rating_out(rows.get(avatar_id), prior) for avatar_id in avatar_ids}


async def _count(session: AsyncSession, avatar_id: str, rating: int, direction: int) -> None:
    """One visible review's stars into (+1) or out of (-1) its avatar's rating."""
    row = await session.get(AvatarRating, avatar_id, with_for_update=True)
    if row is None:
        row = AvatarRating(avatar_id=avatar_id)
        session.add(row)
    row.count += direction
    row.total += direction * rating
    setattr(row, f"stars_{rating}", getattr(row, f"stars_{rating}") + direction)


# ---------------------------------------------------------------- writing


def _check_text(text: str, field: str, limit: int = MAX_TEXT_CHARS) -> str:
    if not isinstance(text, str) or not text.strip():
        raise BadInput(field, "a non-empty text")
    if len(text) > limit:
        raise BadInput(field, f"at most {limit:,} characters (got {len(text):,})")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput(field, "not valid Unicode text (a lone surrogate)") from None
    return text


async def submit(
    session: AsyncSession,
    *,
    avatar: Avatar,
    author: str,
    data: ReviewIn,
    signing: Signing,
    window_s: int,
    now: datetime | None = None,
) -> Review:
    """Write ``author``'s review of ``avatar``, or replace their earlier one with a later signed one."""
    if not 1 <= data.rating <= 5:
        raise BadInput("rating", "a whole number of stars, 1–5")
    _check_text(data.text, "text")
    moment = int((now or utc_now()).timestamp())
    if abs(data.time - moment) > window_s:
        raise BadInput("time", f"the signed time must be within {window_s} s of now ({moment})")
    signer = recover_signer(signing.typed_data(avatar.id, data.rating, data.text, data.time), data.signature)
    if signer != author:
        raise BadInput(
            "signature",
            f"signed by {signer}, not by the signed-in wallet {author}: the signature does "
            "not match this review's avatar, rating, text and time",
        )
    if await market.balance_of(session, avatar.id, author) < 1:
        raise Forbidden(f"only holders review: hold at least one key of @{avatar.handle}", code="no_key")
    if not await network.has_chatted(session, avatar.id, author):
        raise Forbidden(f"only fans who chatted review: chat with @{avatar.handle} first", code="no_chat")
    review = await session.scalar(
        select(Review).where(col(Review.avatar_id) == avatar.id, col(Review.reviewer) == author).with_for_update()
    )
    if review is not None and data.time <= review.signed_at:
        raise Conflict("a review signed at this time or later is already stored: sign the edit anew", code="replayed")
    if review is None:
        review = Review(
            avatar_id=avatar.id,
            reviewer=author,
            rating=data.rating,
            text=data.text,
            signed_at=data.time,
            signature=data.signature,
        )
        session.add(review)
        try:
            await session.flush()
        except IntegrityError:  # the same author's review, written a moment ago by another request
            raise Conflict(
                "another review by this wallet was just stored; reload and edit it", code="replayed"
            ) from None
    else:
        if review.hidden_at is None:
            await _count(session, avatar.id, review.rating, -1)
        review.rating, review.text, review.signed_at = data.rating, data.text, data.time
        review.signature, review.updated_at = data.signature, utc_now()
    if review.hidden_at is None:  # an edit of a hidden review stays hidden
        await _count(session, avatar.id, review.rating, +1)
    return review


async def _review(session: AsyncSession, avatar_id: str, review_id: int) -> Review:
    review = await session.get(Review, review_id, with_for_update=True)
    if review is None or review.avatar_id != avatar_id:
        raise NotFound(f"no review {review_id} of avatar {avatar_id}")
    return review


async def delete(session: AsyncSession, *, avatar_id: str, review_id: int, author: str) -> None:
    review = await _review(session, avatar_id, review_id)
    if review.reviewer != author:
        raise Forbidden("only its author deletes a review")
    if review.hidden_at is None:
        await _count(session, avatar_id, review.rating, -1)
    await session.delete(review)


async def answer(session: AsyncSession, *, avatar: Avatar, review_id: int, creator: str, text: str) -> Review:
    review = await _review(session, avatar.id, review_id)
    if creator != avatar.creator:
        raise Forbidden("only the avatar's creator answers its reviews")
    if review.answer is not None:
        raise Conflict("this review was answered already (once per review)", code="answered")
    review.answer, review.answered_at = _check_text(text, "text"), utc_now()
    return review


async def hide(
    session: AsyncSession, *, avatar_id: str, review_id: int, by: str, protocol_owner: str, reason: str
) -> Review:
    """The protocol owner (TwinKeys' owner) hides a review for abuse: it stays listed, with the reason."""
    if by != protocol_owner:
        raise Forbidden("only the protocol owner (TwinKeys' owner) hides reviews")
    review = await _review(session, avatar_id, review_id)
    _check_text(reason, "reason", MAX_HIDE_REASON_CHARS)
    if review.hidden_at is None:
        await _count(session, avatar_id, review.rating, -1)
    review.hidden_reason, review.hidden_at = reason, utc_now()
    return review


# ---------------------------------------------------------------- reading


async def reviews_page(
    session: AsyncSession, *, avatar_id: str, signing: Signing, prior: Prior, cursor: str | None, limit: int
) -> ReviewsPage:
    """Newest first (by id); the cursor is the last review's id."""
    query = select(Review).where(col(Review.avatar_id) == avatar_id).order_by(col(Review.id).desc()).limit(limit + 1)
    after = pagination.decode_cursor(cursor, pagination.cursor_id)
    if after is not None:
        query = query.where(col(Review.id) < after[0])
    rows = (await session.scalars(query)).all()
    page = rows[:limit]
    rating = (await ratings_of(session, [avatar_id], prior))[avatar_id]
    return ReviewsPage(
        rating=rating,
        items=await described(session, avatar_id, page, signing),
        next_cursor=pagination.encode_cursor(page[-1].id) if len(rows) > limit else None,
    )


async def described(
    session: AsyncSession, avatar_id: str, reviews: Sequence[Review], signing: Signing
) -> list[ReviewOut]:
    """Reviews of one avatar as the API shows them, with their authors' keys held now and since when."""
    authors = [review.reviewer for review in reviews]
    held = await market.balances_of(session, avatar_id, authors)
    since = await market.first_buys(session, avatar_id, authors)
    return [review_out(review, signing, held.get(review.reviewer, 0), since.get(review.reviewer)) for review in reviews]


def review_out(review: Review, signing: Signing, keys_held: int, holder_since: datetime | None) -> ReviewOut:
    assert review.id is not None
    hidden = review.hidden_at is not None
    return ReviewOut(
        id=review.id,
        avatar_id=review.avatar_id,
        reviewer=review.reviewer,
        rating=None if hidden else review.rating,
        text=None if hidden else review.text,
        created_at=review.created_at,
        updated_at=review.updated_at,
        reviewer_holding=ReviewerHolding(keys_held=keys_held, holder_since=holder_since, holds_none=keys_held < 1),
        answer=review.answer,
        answered_at=review.answered_at,
        hidden=hidden,
        hidden_reason=review.hidden_reason,
        typed_data=None
        if hidden
        else signing.typed_data(review.avatar_id, review.rating, review.text, review.signed_at),
        signature=None if hidden else review.signature,
    )


async def by_rating(
    session: AsyncSession, prior: Prior, *, q: str | None, cursor: str | None, limit: int
) -> tuple[list[tuple[Avatar, MarketAvatar]], str | None]:
    """One page of listed avatars, best rated first (unrated last, ties by id), keyset-paged in SQL on ids and
    scores alone, then the page's rows read by id."""
    after = pagination.decode_cursor(cursor, pagination.cursor_int, pagination.cursor_str)
    keyset = None if after is None else (after[0], after[1])
    ranked = await (
        _ranked_matching(session, prior, q, keyset, limit + 1)
        if q
        else _ranked_rated_first(session, prior, keyset, limit + 1)
    )
    page = ranked[:limit]
    next_cursor = pagination.encode_cursor(page[-1][1], page[-1][0]) if len(ranked) > limit else None
    rows = {
        avatar.id: (avatar, market_row)
        for avatar, market_row in await session.execute(
            select(Avatar, MarketAvatar)
            .join(MarketAvatar, col(MarketAvatar.avatar_id) == col(Avatar.id))
            .where(col(Avatar.id).in_([avatar_id for avatar_id, _ in page]))
        )
    }
    return [rows[avatar_id] for avatar_id, _ in page], next_cursor


async def _ranked_matching(
    session: AsyncSession, prior: Prior, q: str, after: tuple[int, str] | None, wanted: int
) -> list[tuple[str, int]]:
    """Listed avatars whose handle or name contains ``q``: ids and scores, best first (a search reads them all)."""
    score = prior.milli_score().label("score")
    query = market.listed_query(q, col(Avatar.id), score).outerjoin(
        AvatarRating, col(AvatarRating.avatar_id) == col(Avatar.id)
    )
    if after is not None:
        query = query.where(tuple_(prior.milli_score(), col(Avatar.id)) < tuple_(literal(after[0]), literal(after[1])))
    ranked = await session.execute(query.order_by(score.desc(), col(Avatar.id).desc()).limit(wanted))
    return [(avatar_id, value) for avatar_id, value in ranked]


async def _ranked_rated_first(
    session: AsyncSession, prior: Prior, after: tuple[int, str] | None, wanted: int
) -> list[tuple[str, int]]:
    """Ids and scores, best first, without a search: the rated avatars ranked on their rating rows alone (a narrow
    table, no join), keeping those listed, then the unrated (score -1) by id, read only as far as a page needs."""
    ranked: list[tuple[str, int]] = []
    score = prior.milli_score()
    if after is None or after[0] >= 0:
        keyset = after
        while len(ranked) < wanted:
            query = select(col(AvatarRating.avatar_id), score).where(col(AvatarRating.count) > 0)
            if keyset is not None:
                query = query.where(
                    tuple_(score, col(AvatarRating.avatar_id)) < tuple_(literal(keyset[0]), literal(keyset[1]))
                )
            batch = (
                await session.execute(query.order_by(score.desc(), col(AvatarRating.avatar_id).desc()).limit(wanted))
            ).all()
            listed = set(
                await session.scalars(
                    market.listed_query(None, col(Avatar.id)).where(col(Avatar.id).in_([row[0] for row in batch]))
                )
            )
            ranked += [(avatar_id, value) for avatar_id, value in batch if avatar_id in listed]
            if len(batch) < wanted:
                break
            keyset = (batch[-1][1], batch[-1][0])
        after = None
    if len(ranked) < wanted:
        unrated = (
            market.listed_query(None, col(Avatar.id))
            .outerjoin(AvatarRating, col(AvatarRating.avatar_id) == col(Avatar.id))
            .where(func.coalesce(col(AvatarRating.count), 0) == 0)
        )
        if after is not None:
            unrated = unrated.where(col(Avatar.id) < after[1])
        ids = await session.scalars(unrated.order_by(col(Avatar.id).desc()).limit(wanted - len(ranked)))
        ranked += [(avatar_id, -1) for avatar_id in ids]
    return ranked[:wanted]
