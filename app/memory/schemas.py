"""What the fan sees of their memories, and what they may change. Constraints here become 400s naming the field."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import Meta, Struct

from app.memory.models import MAX_FACT_CHARS

FactText = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_FACT_CHARS,
        pattern=r"\S",
        description=f"the fact, 1–{MAX_FACT_CHARS} characters, not only spaces",
    ),
]


class MemoryOut(Struct):
    """One memory: what it says, why (the fan's message it came from), and how strong it is now (decayed)."""

    id: int
    kind: str
    key: str
    text: str
    pinned: bool
    strength: float
    use_count: int
    created_at: datetime
    last_used_at: datetime
    source_message_id: int | None
    source_text: str


class MemoryPatch(Struct, forbid_unknown_fields=True):
    """Edit the text, pin (never decays, never forgotten by the cap first) or unpin."""

    text: FactText | None = None
    pinned: bool | None = None


class MemoriesForgotten(Struct):
    forgotten: int
