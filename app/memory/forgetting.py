"""Smart forgetting: strength decays with time since last use, use reinforces it, the weak are deleted.

A memory stores its strength ``s`` at its last use ``t_u``; at time ``t`` it is worth::

    s(t) = s · 2^(−(t − t_u) / half_life)        (pinned memories: s, always)

A new memory starts at ``s = 2``; a use sets ``s ← min(MAX_STRENGTH, s(t) + 1)`` and ``t_u ← t``. A memory whose
``s(t)`` falls below the threshold is deleted; beyond the thread's cap the weakest go first (pinned ones last).
An unused new memory lives ``half_life · log2(2 / threshold)``: 4.3 half-lives (130 days) at the defaults.
Nothing runs over time: the worth is computed when a thread is read, and only the thread of the turn at hand is
pruned, so a turn's cost does not grow with the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from prometheus_client import Counter

from app.lib.time import aware
from app.memory.models import Memory

NEW_STRENGTH = 2.0  # a fact just said: recalled unasked for a while, then only when the talk touches it
MAX_STRENGTH = 8.0  # however often used, 6.3 unused half-lives forget it at the default threshold

FORGOTTEN = Counter("twin_memory_forgotten_total", "Memories deleted, by why", ["reason"])


class Decaying(Protocol):
    """What decay reads of a memory: a stored row or retrieval's lighter candidate."""

    @property
    def strength(self) -> float: ...
    @property
    def last_used_at(self) -> datetime: ...
    @property
    def pinned(self) -> bool: ...


def current_strength(memory: Decaying, now: datetime, half_life_s: float) -> float:
    if memory.pinned:
        return memory.strength
    elapsed = max(0.0, (now - aware(memory.last_used_at)).total_seconds())
    return memory.strength * 2.0 ** (-elapsed / half_life_s)


def reinforce(memory: Memory, now: datetime, half_life_s: float) -> None:
    """One use: the decayed strength plus one, from now (a use replayed late never moves the last use back)."""
    memory.strength = min(MAX_STRENGTH, current_strength(memory, now, half_life_s) + 1.0)
    memory.last_used_at = max(aware(memory.last_used_at), now)
    memory.use_count += 1


def to_forget(
    memories: Sequence[Memory], now: datetime, *, half_life_s: float, threshold: float, cap: int
) -> dict[int, str]:
    """The ids of a thread's memories to delete, with why: ``decay`` (below the threshold) or ``cap`` (the weakest
    beyond the thread's cap, pinned memories kept longest)."""
    doomed: dict[int, str] = {}
    kept: list[tuple[bool, float, int]] = []
    for memory in memories:
        assert memory.id is not None
        worth = current_strength(memory, now, half_life_s)
        if not memory.pinned and worth < threshold:
            doomed[memory.id] = "decay"
        else:
            kept.append((memory.pinned, worth, memory.id))
    kept.sort(reverse=True)  # pinned first, then strongest; newest on ties
    for _, _, memory_id in kept[cap:]:
        doomed[memory_id] = "cap"
    return doomed


def count_forgotten(reasons: dict[int, str]) -> None:
    for reason in reasons.values():
        FORGOTTEN.labels(reason=reason).inc()
