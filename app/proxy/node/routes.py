"""HTTP surface of a node: OpenAI's chat completions, embeddings and models, attestation, health, metrics."""

from __future__ import annotations

from typing import Any

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.response import Stream
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from app.proxy.node.node import ProxyNode
from app.proxy.node.openapi import ChatOperation, EmbeddingsOperation


class ChatCompletionsController(Controller):
    tags = ["proxy"]

    @post(
        "/v1/chat/completions",
        status_code=200,
        operation_class=ChatOperation,
        summary="OpenAI-compatible chat completion, paid with x402, attested",
    )
    async def create(self, request: Request[Any, Any, Any], node: NamedDependency[ProxyNode]) -> Response[Any]:
        completion = await node.completions.start(await request.body(), request.headers, str(request.url))
        if completion.request.stream:
            return Stream(
                node.completions.sse(completion),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        body, headers, status = await node.completions.complete(completion)
        return Response(body, status_code=status, headers=headers, media_type=MediaType.JSON)

    @post(
        "/v1/embeddings",
        status_code=200,
        operation_class=EmbeddingsOperation,
        summary="OpenAI-compatible embeddings, paid with x402, attested",
    )
    async def embeddings(self, request: Request[Any, Any, Any], node: NamedDependency[ProxyNode]) -> Response[Any]:
        body, headers, status = await node.completions.embed(await request.body(), request.headers, str(request.url))
        return Response(body, status_code=status, headers=headers, media_type=MediaType.JSON)

    @get("/v1/models", summary="The models this node serves, with each request's price")
    async def models(self, node: NamedDependency[ProxyNode]) -> dict[str, Any]:
        return {"object": "list", "data": node.model_cards()}


class NodeInfoController(Controller):
    tags = ["proxy"]

    @get("/v1/attestation", summary="The node's signing key, tee_id, code measurement and TEE evidence")
    async def attestation(self, node: NamedDependency[ProxyNode]) -> dict[str, Any]:
        return node.attestation_document()

    @get("/healthz", summary="Liveness: 200 while the node runs")
    async def healthz(self, node: NamedDependency[ProxyNode]) -> dict[str, Any]:
        return {"status": "ok", "in_flight": node.completions.in_flight, "capacity": node.settings.capacity}

    @get("/metrics", summary="Prometheus metrics (text exposition format)", media_type=CONTENT_TYPE_LATEST)
    async def metrics(self) -> Response[str]:
        return Response(generate_latest(REGISTRY).decode(), media_type=CONTENT_TYPE_LATEST)
