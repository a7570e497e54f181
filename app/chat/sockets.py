"""How many chat websockets one session, and one client address, may hold open in this process.

Every open socket holds a task, a database-backed gate and buffers; without a cap one signed-in
browser (or one address opening many sessions) could hold as many as it likes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager


class TooManySockets(Exception):
    """This session or address holds its share of sockets already; ``detail`` is the close reason."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class SocketQuota:
    """Open sockets counted per session and per client address (one event loop: no lock needed)."""

    def __init__(self, *, per_session: int, per_address: int) -> None:
        self.per_session = per_session
        self.per_address = per_address
        self._sessions: Counter[str] = Counter()
        self._addresses: Counter[str] = Counter()

    @contextmanager
    def holding(self, session: str | None, address: str) -> Iterator[None]:
        """Count one socket while the block runs; :class:`TooManySockets` on entry when over a cap.
        Without a session (the socket will be refused at once) only the address counts it."""
        session = session or ""
        if session and self._sessions[session] >= self.per_session:
            raise TooManySockets(f"at most {self.per_session} chat sockets per session; close one first")
        if self._addresses[address] >= self.per_address:
            raise TooManySockets(f"at most {self.per_address} chat sockets per address; close one first")
        self._sessions[session] += 1
        self._addresses[address] += 1
        try:
            yield
        finally:
            for counter, key in ((self._sessions, session), (self._addresses, address)):
                counter[key] -= 1
                if counter[key] <= 0:
                    del counter[key]
