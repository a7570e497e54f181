"""How a reply that failed ends (app/chat/turn.py FAILURES): one row per kind of error, the rest internal."""

from __future__ import annotations

import pytest

from app.chat.turn import INTERNAL_ERROR, UNAVAILABLE_RETRY_S, outcome_of
from app.proxy.client.client import (
    NoNodeAvailable,
    NoTrustedNode,
    PaymentRefused,
    ReplyFailed,
    ReplyRejected,
    RequestRejected,
)


@pytest.mark.parametrize(
    ("error", "code", "keeps_text", "retry_after_s"),
    [
        (ReplyRejected("bad signature", None), "verification_failed", False, None),
        (ReplyFailed("upstream closed"), "upstream_failed", True, UNAVAILABLE_RETRY_S),
        (NoNodeAvailable("none up"), "unavailable", False, UNAVAILABLE_RETRY_S),
        (NoTrustedNode("none trusted"), "unavailable", False, UNAVAILABLE_RETRY_S),  # a subclass takes its base's row
        (PaymentRefused("insufficient OPG"), "unavailable", False, UNAVAILABLE_RETRY_S),
        (RequestRejected(400, "too long", "messages"), "request_rejected", False, None),
        (RuntimeError("a bug"), "internal_error", True, None),
    ],
)
def test_each_failure_ends_as_its_row_says(
    error: Exception, code: str, keeps_text: bool, retry_after_s: int | None
) -> None:
    outcome = outcome_of(error)

    assert (outcome.code, outcome.keeps_text, outcome.retry_after_s) == (code, keeps_text, retry_after_s)


def test_details_name_what_the_fan_can_act_on() -> None:
    assert outcome_of(ReplyFailed("upstream closed")).detail(ReplyFailed("upstream closed")) == (
        "the model failed mid-reply (upstream closed); nothing was charged for it"
    )
    rejected = RequestRejected(400, "too long", "messages")
    assert outcome_of(rejected).detail(rejected) == "the inference node refused the request: HTTP 400: too long"
    assert outcome_of(KeyError("x")) is INTERNAL_ERROR
