"""Signing reviews as a wallet does (eth-account's EIP-712), and a holder who chatted."""

from __future__ import annotations

import time
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount

from app.reviews.signing import review_typed_data
from tests.chat.conftest import Served, holding_fan, reply_frames, send_message


def signed_review(
    served: Served,
    account: LocalAccount,
    avatar_id: str,
    rating: int,
    text: str,
    *,
    at: int | None = None,
    sent: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The body of a review signed by ``account`` (``sent`` changes the body after signing)."""
    moment = int(time.time()) if at is None else at
    typed = review_typed_data(
        chain_id=served.chain.chain_id,
        twin_keys=served.chain.addresses.twin_keys,
        avatar_id=avatar_id,
        rating=rating,
        text=text,
        time=moment,
    )
    signature = Account.sign_typed_data(account.key, full_message=typed).signature.hex()
    return {"rating": rating, "text": text, "time": moment, "signature": "0x" + signature.removeprefix("0x")} | (
        sent or {}
    )


async def chatted_holder(served: Served, account: LocalAccount, avatar_id: str) -> httpx.AsyncClient:
    """``account`` buys a key, chats once with the avatar and is signed in."""
    http = await holding_fan(served, account, avatar_id)
    await chat_once(served, http, avatar_id)
    return http


async def chat_once(served: Served, http: httpx.AsyncClient, avatar_id: str, message_id: str = "m1") -> None:
    async with served.chat(avatar_id, http) as ws:
        await send_message(ws, message_id, "Hello there")
        assert (await reply_frames(ws))[-1]["type"] == "done"
