"""What the reviews API takes and returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from msgspec import Struct


class RatingOut(Struct):
    """An avatar's rating: the Bayesian average of its visible reviews (``score``, 1–5, None with none),
    their plain mean, how many, and how many gave each number of stars (``distribution["1"]`` … ``["5"]``)."""

    score: float | None
    mean: float | None
    count: int
    distribution: dict[str, int]


class ReviewIn(Struct):
    """A review as its author signed it: ``time`` is the signed message's, ``signature`` the EIP-712 one."""

    rating: int
    text: str
    time: int
    signature: str


class AnswerIn(Struct):
    text: str


class HideIn(Struct):
    reason: str


class ReviewerHolding(Struct):
    keys_held: int  # now, per the index
    holder_since: datetime | None  # the reviewer's first key bought
    holds_none: bool  # marked: the author no longer holds a key


class ReviewOut(Struct):
    id: int
    avatar_id: str
    reviewer: str
    rating: int | None  # None while hidden
    text: str | None  # None while hidden
    created_at: datetime
    updated_at: datetime
    reviewer_holding: ReviewerHolding
    answer: str | None
    answered_at: datetime | None
    hidden: bool
    hidden_reason: str | None
    # What anyone needs to check authorship: the EIP-712 typed data (text hash included) and the signature.
    typed_data: dict[str, Any] | None
    signature: str | None


class ReviewsPage(Struct):
    rating: RatingOut
    items: list[ReviewOut]
    next_cursor: str | None
