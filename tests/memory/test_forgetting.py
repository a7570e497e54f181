"""Decay, reinforcement, the threshold and the cap, on memories in memory (the maths of app.memory.forgetting)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.memory.forgetting import MAX_STRENGTH, current_strength, reinforce, to_forget
from app.memory.models import Memory

DAY = 86_400.0
HALF_LIFE = 30 * DAY
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def memory(memory_id: int, *, days_unused: float, strength: float = 1.0, pinned: bool = False) -> Memory:
    return Memory(
        id=memory_id,
        avatar_id="0x" + "a" * 32,
        fan="0x" + "b" * 40,
        kind="fact",
        key=f"k{memory_id}",
        text=f"fact {memory_id}",
        strength=strength,
        pinned=pinned,
        last_used_at=NOW - timedelta(days=days_unused),
    )


def test_strength_halves_every_half_life() -> None:
    assert current_strength(memory(1, days_unused=0), NOW, HALF_LIFE) == pytest.approx(1.0)
    assert current_strength(memory(1, days_unused=30), NOW, HALF_LIFE) == pytest.approx(0.5)
    assert current_strength(memory(1, days_unused=90, strength=4), NOW, HALF_LIFE) == pytest.approx(0.5)


def test_pinned_memories_never_decay() -> None:
    assert current_strength(memory(1, days_unused=3650, strength=2, pinned=True), NOW, HALF_LIFE) == 2


def test_a_use_adds_one_to_the_decayed_strength_and_restarts_the_clock() -> None:
    used = memory(1, days_unused=30, strength=2)
    reinforce(used, NOW, HALF_LIFE)
    assert used.strength == pytest.approx(2.0)
    assert used.last_used_at == NOW
    assert used.use_count == 1


def test_strength_is_capped() -> None:
    used = memory(1, days_unused=0, strength=MAX_STRENGTH)
    reinforce(used, NOW, HALF_LIFE)
    assert used.strength == MAX_STRENGTH


def test_below_the_threshold_is_forgotten_pinned_never() -> None:
    fresh, stale, stale_pinned = (
        memory(1, days_unused=10),
        memory(2, days_unused=100),
        memory(3, days_unused=1000, pinned=True),
    )
    assert to_forget([fresh, stale, stale_pinned], NOW, half_life_s=HALF_LIFE, threshold=0.1, cap=10) == {2: "decay"}


def test_beyond_the_cap_the_weakest_go_first_and_pinned_last() -> None:
    memories = [
        memory(1, days_unused=1),
        memory(2, days_unused=20),
        memory(3, days_unused=5),
        memory(4, days_unused=60, pinned=True, strength=0.2),
    ]
    assert to_forget(memories, NOW, half_life_s=HALF_LIFE, threshold=0.1, cap=2) == {2: "cap", 3: "cap"}
