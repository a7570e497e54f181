"""Time helpers: an injectable clock, and datetimes read back from the database made timezone-aware."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

# Seconds since the epoch (``time.time`` in production; tests pass their own to step time by hand).
Clock = Callable[[], float]


def aware(moment: datetime) -> datetime:
    """``moment`` in UTC when it came back naive (SQLite keeps no timezone; every stored time is UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
