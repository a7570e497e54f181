"""Reviews by holders who chatted, signed as EIP-712 typed data: writing, verifying, editing, deleting,
answering, hiding, and what is refused."""

from __future__ import annotations

import time

import httpx
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from tests.chat.conftest import Served, holding_fan
from tests.helpers import launch, sell
from tests.reviews.helpers import chat_once, chatted_holder, signed_review


async def test_a_holder_who_chatted_reviews_and_anyone_can_verify_the_author(
    served: Served, creator: LocalAccount, fan: LocalAccount
) -> None:
    creator_http = await served.signed_in(creator)
    avatar_id = await launch(creator_http, served.chain, creator, "verified")  # type: ignore[arg-type]
    http = await chatted_holder(served, fan, avatar_id)

    written = await http.post(
        f"/api/avatars/{avatar_id}/reviews", json=signed_review(served, fan, avatar_id, 4, "Kind and quick. ünïcode ✓")
    )
    anonymous = httpx_client(served)
    listed = (await anonymous.get(f"/api/avatars/{avatar_id}/reviews")).json()

    assert written.status_code == 201, written.text
    (review,) = listed["items"]
    # Checked with eth-account alone, from what the API returns: the signer, and the text behind its hash.
    typed, signature = review["typed_data"], review["signature"]
    assert Account.recover_message(encode_typed_data(full_message=typed), signature=signature) == fan.address
    assert typed["message"]["textHash"] == "0x" + keccak(review["text"].encode()).hex()
    assert typed["domain"] == {
        "name": "Twin market",
        "version": "1",
        "chainId": served.chain.chain_id,
        "verifyingContract": served.chain.addresses.twin_keys,
    }
    assert (typed["message"]["avatarId"], typed["message"]["rating"]) == (avatar_id, 4)
    assert review["reviewer"] == fan.address
    assert review["reviewer_holding"]["keys_held"] == 1
    assert review["reviewer_holding"]["holder_since"] is not None
    assert listed["rating"]["count"] == 1
    assert listed["rating"]["distribution"] == {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0}
    # The prior (3.0, weight 5) pulls one 4-star review towards 3: (3·5 + 4) / 6.
    assert listed["rating"]["score"] == round(19 / 6, 3)


def httpx_client(served: Served) -> httpx.AsyncClient:
    """A client with no session: anyone."""
    client = httpx.AsyncClient(base_url=served.base_url, timeout=30)
    served.clients.append(client)
    return client


async def test_no_key_or_no_chat_is_403_with_a_reason(served: Served, creator: LocalAccount, fan: LocalAccount) -> None:
    creator_http = await served.signed_in(creator)
    avatar_id = await launch(creator_http, served.chain, creator, "gated")  # type: ignore[arg-type]
    outsider = served.chain.dev_accounts[3]
    outsider_http = await served.signed_in(outsider)
    no_key = await outsider_http.post(
        f"/api/avatars/{avatar_id}/reviews", json=signed_review(served, outsider, avatar_id, 5, "great")
    )
    holder_http = await holding_fan(served, fan, avatar_id)
    no_chat = await holder_http.post(
        f"/api/avatars/{avatar_id}/reviews", json=signed_review(served, fan, avatar_id, 5, "great")
    )

    assert (no_key.status_code, no_key.json()["error"]) == (403, "no_key")
    assert "hold at least one key" in no_key.json()["detail"]
    assert (no_chat.status_code, no_chat.json()["error"]) == (403, "no_chat")


async def test_forged_mismatched_stale_and_out_of_range_reviews_are_400_naming_the_field(
    served: Served, creator: LocalAccount, fan: LocalAccount
) -> None:
    creator_http = await served.signed_in(creator)
    avatar_id = await launch(creator_http, served.chain, creator, "strict")  # type: ignore[arg-type]
    http = await chatted_holder(served, fan, avatar_id)
    other = served.chain.dev_accounts[3]
    now = int(time.time())
    cases = {
        "forged": (signed_review(served, other, avatar_id, 5, "fine"), "signature"),
        "text changed after signing": (
            signed_review(served, fan, avatar_id, 5, "fine", sent={"text": "fine!"}),
            "signature",
        ),
        "rating changed after signing": (
            signed_review(served, fan, avatar_id, 2, "fine", sent={"rating": 5}),
            "signature",
        ),
        "no signature": (signed_review(served, fan, avatar_id, 5, "fine", sent={"signature": "0x1234"}), "signature"),
        "no key recovers": (
            signed_review(served, fan, avatar_id, 5, "fine", sent={"signature": "0x" + "00" * 65}),
            "signature",
        ),
        "too old": (signed_review(served, fan, avatar_id, 5, "fine", at=now - 3_600), "time"),
        "in the future": (signed_review(served, fan, avatar_id, 5, "fine", at=now + 3_600), "time"),
        "six stars": (signed_review(served, fan, avatar_id, 6, "fine"), "rating"),
        "too long": (signed_review(served, fan, avatar_id, 5, "x" * 2_001), "text"),
        "empty": (signed_review(served, fan, avatar_id, 5, "  "), "text"),
    }
    answers = {
        name: await http.post(f"/api/avatars/{avatar_id}/reviews", json=body) for name, (body, _) in cases.items()
    }

    assert {name: (answer.status_code, answer.json().get("field")) for name, answer in answers.items()} == {
        name: (400, field) for name, (_, field) in cases.items()
    }
    assert (await http.get(f"/api/avatars/{avatar_id}/reviews")).json()["items"] == []


async def test_a_resubmission_edits_the_one_review_and_an_older_signed_one_is_a_replay(
    served: Served, creator: LocalAccount, fan: LocalAccount
) -> None:
    creator_http = await served.signed_in(creator)
    avatar_id = await launch(creator_http, served.chain, creator, "edited")  # type: ignore[arg-type]
    http = await chatted_holder(served, fan, avatar_id)
    now = int(time.time())
    first = signed_review(served, fan, avatar_id, 2, "meh", at=now - 10)
    assert (await http.post(f"/api/avatars/{avatar_id}/reviews", json=first)).status_code == 201
    edited = await http.post(
        f"/api/avatars/{avatar_id}/reviews", json=signed_review(served, fan, avatar_id, 5, "grew on me", at=now)
    )
    replayed = await http.post(f"/api/avatars/{avatar_id}/reviews", json=first)
    listed = (await http.get(f"/api/avatars/{avatar_id}/reviews")).json()

    assert edited.status_code == 201
    assert (replayed.status_code, replayed.json()["error"]) == (409, "replayed")
    assert [(review["rating"], review["text"]) for review in listed["items"]] == [(5, "grew on me")]
    assert listed["rating"]["distribution"] == {"1": 0, "2": 0, "3": 0, "4": 0, "5": 1}


async def test_only_the_author_deletes_and_the_rating_follows(
    served: Served, creator: LocalAccount, fan: LocalAccount
) -> None:
    creator_http = await served.signed_in(creator)
    avatar_id = await launch(creator_http, served.chain, creator, "deleted")  # type: ignore[arg-type]
    http = await chatted_holder(served, fan, avatar_id)
    review = (
        await http.post(f"/api/avatars/{avatar_id}/reviews", json=signed_review(served, fan, avatar_id, 1, "no"))
    ).json()

    by_creator = await creator_http.delete(f"/api/avatars/{avatar_id}/reviews/{review['id']}")
    by_author = await http.delete(f"/api/avatars/{avatar_id}/reviews/{review['id']}")
    again = await http.delete(f"/api/avatars/{avatar_id}/reviews/{review['id']}")
    listed = (await http.get(f"/api/avatars/{avatar_id}/reviews")).json()

    assert by_creator.status_code == 403
    assert by_author.status_code == 204
    assert again.status_code == 404
    assert listed["items"] == []
    assert (listed["rating"]["count"], listed["rating"]["score"]) == (0, None)


async def test_the_creator_answers_a_review_once(served: Served, creator: LocalAccount, fan: LocalAccount) -> None:
    creator_http = await served.signed_in(creator)
    avatar_id = await launch(creator_http, served.chain, creator, "answered")  # type: ignore[arg-type]
    http = await chatted_holder(served, fan, avatar_id)
    review = (
        await http.post(f"/api/avatars/{avatar_id}/reviews", json=signed_review(served, fan, avatar_id, 3, "ok"))
    ).json()
    path = f"/api/avatars/{avatar_id}/reviews/{review['id']}/answer"

    by_fan = await http.post(path, json={"text": "me too"})
    answered = await creator_http.post(path, json={"text": "Thanks, noted."})
    twice = await creator_http.post(path, json={"text": "Again"})

    assert by_fan.status_code == 403
    assert (answered.status_code, answered.json()["answer"]) == (201, "Thanks, noted.")
    assert (twice.status_code, twice.json()["error"]) == (409, "answered")


async def test_the_protocol_owner_hides_a_review_which_stays_listed_and_leaves_the_rating(
    served: Served, creator: LocalAccount, fan: LocalAccount
) -> None:
    owner = served.chain.dev_accounts[0]  # deployed the contracts: TwinKeys' owner
    creator_http = await served.signed_in(creator)
    avatar_id = await launch(creator_http, served.chain, creator, "hidden")  # type: ignore[arg-type]
    http = await chatted_holder(served, fan, avatar_id)
    review = (
        await http.post(
            f"/api/avatars/{avatar_id}/reviews", json=signed_review(served, fan, avatar_id, 1, "<b>spam</b>")
        )
    ).json()
    path = f"/api/avatars/{avatar_id}/reviews/{review['id']}/hide"

    by_creator = await creator_http.post(path, json={"reason": "I dislike it"})
    owner_http = await served.signed_in(owner)
    hidden = await owner_http.post(path, json={"reason": "spam"})
    listed = (await http.get(f"/api/avatars/{avatar_id}/reviews")).json()

    assert by_creator.status_code == 403
    assert hidden.status_code == 201
    (shown,) = listed["items"]
    assert (shown["hidden"], shown["hidden_reason"], shown["text"], shown["rating"]) == (True, "spam", None, None)
    assert listed["rating"]["count"] == 0


async def test_a_reviewer_who_sold_every_key_is_marked_and_the_page_escapes_reviews(
    served: Served, creator: LocalAccount, fan: LocalAccount
) -> None:
    creator_http = await served.signed_in(creator)
    avatar_id = await launch(creator_http, served.chain, creator, "escaped", first_keys=2)  # type: ignore[arg-type]
    http = await chatted_holder(served, fan, avatar_id)
    text = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
    assert (
        await http.post(f"/api/avatars/{avatar_id}/reviews", json=signed_review(served, fan, avatar_id, 5, text))
    ).status_code == 201
    sell(served.chain, fan, avatar_id, 1)
    await served.index()

    listed = (await http.get(f"/api/avatars/{avatar_id}/reviews")).json()
    page = (await http.get(f"/avatars/{avatar_id}")).text

    assert listed["items"][0]["reviewer_holding"]["holds_none"] is True
    assert "holds no key now" in page
    assert '<script>alert("x")</script>' not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in page


async def test_review_writes_are_rate_limited(served: Served, creator: LocalAccount, fan: LocalAccount) -> None:
    creator_http = await served.signed_in(creator)
    avatar_id = await launch(creator_http, served.chain, creator, "limited")  # type: ignore[arg-type]
    http = await chatted_holder(served, fan, avatar_id)
    limit = served.app.state.services.settings.review_writes_per_minute
    now = int(time.time())
    answers = [
        await http.post(
            f"/api/avatars/{avatar_id}/reviews",
            json=signed_review(served, fan, avatar_id, 4, f"take {n}", at=now - 100 + n),
        )
        for n in range(limit + 1)
    ]

    assert [answer.status_code for answer in answers] == [201] * limit + [429]
    await chat_once(served, http, avatar_id, "m2")  # other routes are not limited
