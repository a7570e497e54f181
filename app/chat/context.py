"""What the model is sent for a message: the persona, the latest exchanges of the fan's thread that fit the
history budget, and the message."""

from __future__ import annotations

import math
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from app.chat.models import ChatMessage, MessageStatus, Role

HISTORY_SCAN_LIMIT = 200  # replies looked at when filling the history budget


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


async def recent_history(session: AsyncSession, avatar_id: str, fan: str, budget_tokens: int) -> list[dict[str, str]]:
    """The latest complete exchanges of the fan's thread that fit ``budget_tokens``, oldest first (one statement,
    the texts alone)."""
    if budget_tokens <= 0:
        return []
    reply, prompt = aliased(ChatMessage), aliased(ChatMessage)
    exchanges_read = await session.execute(
        select(col(prompt.content), col(reply.content))
        .join(prompt, col(prompt.id) == col(reply.reply_to))
        .where(
            col(reply.avatar_id) == avatar_id,
            col(reply.fan) == fan,
            col(reply.role) == Role.assistant,
            col(reply.status) == MessageStatus.complete,
        )
        .order_by(col(reply.id).desc())
        .limit(HISTORY_SCAN_LIMIT)
    )
    exchanges: list[dict[str, str]] = []
    used = 0
    for said, answered in exchanges_read:
        cost = estimate_tokens(said) + estimate_tokens(answered)
        if used + cost > budget_tokens:
            break
        used += cost
        exchanges[:0] = [{"role": "user", "content": said}, {"role": "assistant", "content": answered}]
    return exchanges


def context_messages(persona: str, history: Sequence[dict[str, str]], content: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": persona}, *history, {"role": "user", "content": content}]
