"""What the model is sent for a message: the persona, the latest exchanges of the fan's thread that fit the
history budget, and the message."""

from __future__ import annotations

import math
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.chat.models import ChatMessage, MessageStatus, Role

HISTORY_SCAN_LIMIT = 200  # replies looked at when filling the history budget


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


async def recent_history(session: AsyncSession, avatar_id: str, fan: str, budget_tokens: int) -> list[dict[str, str]]:
    """The latest complete exchanges of the fan's thread that fit ``budget_tokens``, oldest first."""
    if budget_tokens <= 0:
        return []
    replies = (
        await session.scalars(
            select(ChatMessage)
            .where(
                col(ChatMessage.avatar_id) == avatar_id,
                col(ChatMessage.fan) == fan,
                col(ChatMessage.role) == Role.assistant,
                col(ChatMessage.status) == MessageStatus.complete,
            )
            .order_by(col(ChatMessage.id).desc())
            .limit(HISTORY_SCAN_LIMIT)
        )
    ).all()
    prompts = {
        message.id: message
        for message in await session.scalars(
            select(ChatMessage).where(col(ChatMessage.id).in_([reply.reply_to for reply in replies]))
        )
    }
    exchanges: list[dict[str, str]] = []
    used = 0
    for reply in replies:
        prompt = prompts.get(reply.reply_to)
        if prompt is None:
            continue
        cost = estimate_tokens(prompt.content) + estimate_tokens(reply.content)
        if used + cost > budget_tokens:
            break
        used += cost
        exchanges[:0] = [{"role": "user", "content": prompt.content}, {"role": "assistant", "content": reply.content}]
    return exchanges


def context_messages(persona: str, history: Sequence[dict[str, str]], content: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": persona}, *history, {"role": "user", "content": content}]
