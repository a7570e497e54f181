"""Model → upstreams, with failover before the first token (or the vectors) and timeouts between tokens.

:meth:`UpstreamRouter.open` tries a model's upstreams in their configured order and returns
the first stream that produces an event within the first-token timeout; an upstream that
fails before then is closed and the next one tried. Once a stream has begun it is never
switched: a failure after that point ends the reply (:class:`MidStreamError`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

import httpx

from app.proxy.config import UpstreamTarget
from app.proxy.node import metrics
from app.proxy.node.chat_request import ChatRequest
from app.proxy.node.embeddings_request import EmbeddingsRequest
from app.proxy.node.errors import UpstreamUnavailable
from app.proxy.node.upstreams.base import Embeddings, EmbeddingUpstream, Upstream, UpstreamError, UpstreamEvent


class MidStreamError(Exception):
    """The upstream failed after its first token; ``reason`` is safe to show."""

    def __init__(self, upstream: str, reason: str) -> None:
        super().__init__(f"{upstream}: {reason}")
        self.upstream = upstream
        self.reason = reason


@dataclass
class OpenStream:
    """An upstream stream that has produced its first event."""

    upstream: str
    first: UpstreamEvent
    rest: AsyncIterator[UpstreamEvent]
    idle_timeout: float

    async def events(self) -> AsyncGenerator[UpstreamEvent, None]:
        """Every event, the first included; raises MidStreamError on failure or silence."""
        try:
            yield self.first
            while True:
                try:
                    async with asyncio.timeout(self.idle_timeout):
                        event = await anext(self.rest)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise self._failed(f"no token for {self.idle_timeout:g}s") from None
                except UpstreamError as error:
                    raise self._failed(error.reason) from None
                except httpx.HTTPError as error:
                    raise self._failed(f"{type(error).__name__} while streaming") from None
                yield event
        finally:
            await self.close()

    async def close(self) -> None:
        await self.rest.aclose()  # type: ignore[attr-defined]

    def _failed(self, reason: str) -> MidStreamError:
        metrics.UPSTREAM_ERRORS.labels(self.upstream, "mid_stream").inc()
        return MidStreamError(self.upstream, reason)


class UpstreamRouter:
    def __init__(
        self,
        upstreams: Mapping[str, Upstream],
        routes: Mapping[str, Sequence[UpstreamTarget]],
        *,
        first_token_timeout: float,
        idle_timeout: float,
    ) -> None:
        self._upstreams = upstreams
        self._routes = routes
        self._first_token_timeout = first_token_timeout
        self._idle_timeout = idle_timeout

    def kinds_for(self, model: str) -> set[str]:
        return {self._upstreams[target.upstream].kind for target in self._routes[model]}

    def embedders_for(self, model: str) -> list[tuple[EmbeddingUpstream, str]]:
        """The model's upstreams that serve embeddings, in failover order, with their own model names."""
        return [
            (upstream, target.model)
            for target in self._routes[model]
            if isinstance(upstream := self._upstreams[target.upstream], EmbeddingUpstream)
        ]

    async def embed(self, request: EmbeddingsRequest) -> Embeddings:
        """The vectors from the first of the model's upstreams that answers within the first-token timeout."""
        failures: list[str] = []
        for upstream, model in self.embedders_for(request.model):
            try:
                async with asyncio.timeout(self._first_token_timeout):
                    return await upstream.embed(request.inputs, model, request.dimensions)
            except (UpstreamError, httpx.HTTPError, TimeoutError) as error:
                metrics.UPSTREAM_ERRORS.labels(upstream.name, "before_first_token").inc()
                failures.append(f"{upstream.name}: {_describe(error, self._first_token_timeout)}")
        raise UpstreamUnavailable(
            f"no upstream of {request.model} embedded: {'; '.join(failures)}", code="upstream_unavailable"
        )

    async def open(self, request: ChatRequest) -> OpenStream:
        failures: list[str] = []
        for target in self._routes[request.model]:
            upstream = self._upstreams[target.upstream]
            events = upstream.stream(request, target.model)
            try:
                async with asyncio.timeout(self._first_token_timeout):
                    first = await anext(events)
            except (UpstreamError, httpx.HTTPError, TimeoutError, StopAsyncIteration) as error:
                await events.aclose()  # type: ignore[attr-defined]
                metrics.UPSTREAM_ERRORS.labels(upstream.name, "before_first_token").inc()
                failures.append(f"{upstream.name}: {_describe(error, self._first_token_timeout)}")
                continue
            return OpenStream(upstream.name, first, events, self._idle_timeout)
        raise UpstreamUnavailable(
            f"no upstream of {request.model} answered: {'; '.join(failures)}", code="upstream_unavailable"
        )


def _describe(error: Exception, timeout: float) -> str:
    if isinstance(error, UpstreamError):
        return error.reason
    if isinstance(error, TimeoutError):
        return f"no first token within {timeout:g}s"
    if isinstance(error, StopAsyncIteration):
        return "the stream was empty"
    return f"{type(error).__name__}: could not reach it"
