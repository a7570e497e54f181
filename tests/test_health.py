"""Liveness, readiness, metrics, OpenAPI and the JSON error shape."""

from __future__ import annotations

from typing import Annotated

from litestar import Litestar, post
from litestar.params import Body
from litestar.testing import AsyncTestClient

from app.config import Settings
from app.main import create_app

UNREACHABLE_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:9/nowhere"


async def test_healthy_service_is_live_and_ready(client: AsyncTestClient[Litestar]) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}

    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["dependencies"]["database"] == "ok"


async def test_unreachable_database_fails_readiness_but_not_liveness() -> None:
    app = create_app(Settings(database_url=UNREACHABLE_DATABASE, auto_migrate=False))
    async with AsyncTestClient(app=app) as client:
        ready = await client.get("/readyz")
        live = await client.get("/healthz")
        listing = await client.get("/api/avatars")

    assert listing.status_code == 503  # retry later, not a 500
    assert listing.json()["error"] == "database_unavailable"
    assert listing.headers["retry-after"] == "2"
    assert ready.status_code == 503
    body = ready.json()
    assert body["error"] == "not_ready"
    assert "database" in body["detail"]
    assert body["dependencies"]["database"].startswith("down:")
    assert live.status_code == 200


async def test_metrics_are_prometheus_text(client: AsyncTestClient[Litestar]) -> None:
    await client.get("/healthz")
    metrics = await client.get("/metrics")

    assert metrics.status_code == 200
    assert "twin_http_requests_total" in metrics.text


async def test_openapi_document_is_served(client: AsyncTestClient[Litestar]) -> None:
    schema = await client.get("/schema/openapi.json")

    assert schema.status_code == 200
    assert "/readyz" in schema.json()["paths"]


async def test_unknown_route_is_json_404(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/no/such/route")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert response.headers["content-type"].startswith("application/json")


async def test_malformed_json_body_is_json_400(app: Litestar) -> None:
    @post("/echo-count")
    async def echo_count(data: Annotated[dict[str, int], Body()]) -> dict[str, int]:
        return {"keys": len(data)}

    app.register(echo_count)
    async with AsyncTestClient(app=app) as client:
        malformed = await client.post("/echo-count", content=b"{not json", headers={"content-type": "application/json"})
        wrong_type = await client.post("/echo-count", json={"a": "not a number"})
        fine = await client.post("/echo-count", json={"a": 1})

    assert malformed.status_code == 400
    assert malformed.json()["error"] == "bad_request"
    assert "JSON" in malformed.json()["detail"]
    assert wrong_type.status_code == 400
    assert wrong_type.json()["error"] == "invalid_request"
    assert fine.json() == {"keys": 1}
