"""The chain's circuit breaker: a stalled node fails every call at once instead of hanging them.

A node that is frozen (SIGSTOP, a stuck disk, a GC pause) still accepts TCP connections, so each
call waits for its whole read deadline, and every request queued behind it waits too. The watch
probes the node with ``eth_blockNumber`` every ``interval_s``; a probe that gets no answer within
``timeout_s`` marks the chain *stalled*. While it is stalled every call through the provider fails
at once with ``ChainUnavailable`` (a 503 with Retry-After to clients), and the calls already in
flight fail too, so nothing waits longer than about ``interval_s + timeout_s`` after the stall
began. The next probe that is answered closes the breaker::

    watch = chain.w3.provider.watch
    task = asyncio.create_task(watch.run(interval_s=0.5, timeout_s=1.0))
    ...
    watch.check()            # raises ChainUnavailable while the node is stalled
    await watch.guard(call)  # call()'s result, or ChainUnavailable as soon as a stall is seen

Without a running probe nothing is ever marked stalled: calls keep their own read deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

log = structlog.get_logger()

T = TypeVar("T")

STALLED_RETRY_AFTER_S = 2


class ChainWatch:
    """Whether the node answers now, as the last probe found it; shared by every caller of one provider."""

    def __init__(self, unavailable: Callable[[str], Exception]) -> None:
        self._unavailable = unavailable
        self.stalled_since: float | None = None  # time.monotonic() of the first probe that got no answer
        self.cause = ""
        self._stalls: dict[asyncio.AbstractEventLoop, asyncio.Future[None]] = {}  # resolved when a stall is seen

    @property
    def stalled(self) -> bool:
        return self.stalled_since is not None

    def stalled_for_s(self) -> float:
        return 0.0 if self.stalled_since is None else time.monotonic() - self.stalled_since

    def check(self) -> None:
        """Raise the provider's ``ChainUnavailable`` while the node is stalled."""
        if self.stalled_since is not None:
            raise self._error()

    async def guard(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``'s result, unless a stall is seen first: then it is cancelled and ChainUnavailable raised."""
        self.check()
        request = asyncio.ensure_future(call())
        stall = self._stall_future()
        try:
            await asyncio.wait((request, stall), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            request.cancel()
            raise
        if not request.done():
            request.cancel()
            raise self._error()
        return request.result()

    async def run(self, probe: Callable[[], Awaitable[object]], *, interval_s: float, timeout_s: float) -> None:
        """Probe forever (a lifespan task): ``probe()`` must answer within ``timeout_s``."""
        while True:
            started = time.monotonic()
            try:
                async with asyncio.timeout(timeout_s):
                    await probe()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - no answer in time, or a refused connection: stalled
                self._mark_stalled(f"{type(error).__name__}: {error}"[:200] if str(error) else type(error).__name__)
            else:
                self._mark_answering()
            await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - started)))

    def _mark_stalled(self, cause: str) -> None:
        if self.stalled_since is None:
            self.stalled_since = time.monotonic()
            self.cause = cause
            log.warning("chain_stalled", cause=cause)
        for loop, stall in list(self._stalls.items()):  # wake every call in flight, on whichever loop it waits
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, stall)
        self._stalls.clear()

    def _mark_answering(self) -> None:
        if self.stalled_since is not None:
            log.info("chain_answering", stalled_s=round(self.stalled_for_s(), 1))
            self.stalled_since = None
            self.cause = ""

    def _stall_future(self) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        stall = self._stalls.get(loop)
        if stall is None or stall.done():
            stall = self._stalls[loop] = loop.create_future()
        return stall

    def _error(self) -> Exception:
        return self._unavailable(
            f"the chain node has not answered for {self.stalled_for_s():.0f} s ({self.cause or 'no answer'})"
        )


def _resolve(stall: asyncio.Future[None]) -> None:
    if not stall.done():
        stall.set_result(None)
