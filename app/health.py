"""Liveness and readiness: each dependency has a readiness check by name (``Services.readiness_checks``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# A check raises when its dependency is down; it may return a note that stays "ok" but says something.
ReadinessCheck = Callable[[], Awaitable[str | None]]
READINESS_TIMEOUT_S = 3.0


def database_check(engine: AsyncEngine) -> ReadinessCheck:
    async def check() -> str | None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return None

    return check


async def _run(check: ReadinessCheck) -> str:
    try:
        note = await asyncio.wait_for(check(), READINESS_TIMEOUT_S)
    except TimeoutError:
        return f"down: no answer within {READINESS_TIMEOUT_S:g}s"
    except Exception as error:  # noqa: BLE001 - any failure means "not ready", reported by name
        return f"down: {type(error).__name__}: {error}"[:300]
    return f"ok: {note}" if note else "ok"


class Readiness(msgspec.Struct):
    """``dependencies`` maps each dependency to ``ok``, ``ok: <note>`` or ``down: <why>``; when one is
    down, ``status`` is ``unavailable`` and ``error``/``detail`` name it in the shared error shape."""

    status: str
    dependencies: dict[str, str]
    error: str | msgspec.UnsetType = msgspec.UNSET
    detail: str | msgspec.UnsetType = msgspec.UNSET


class HealthController(Controller):
    include_in_schema = True
    tags = ["health"]

    @get("/healthz", summary="Liveness: 200 while the process runs")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @get(
        "/readyz",
        summary="Readiness: each dependency's state; 503 names what failed",
        responses={503: ResponseSpec(Readiness, description="A dependency is down", generate_examples=False)},
    )
    async def readyz(self, readiness_checks: NamedDependency[Mapping[str, ReadinessCheck]]) -> Response[Readiness]:
        checks = readiness_checks
        results = await asyncio.gather(*(_run(check) for check in checks.values()))
        dependencies = dict(zip(checks, results, strict=True))
        failed = [name for name, result in dependencies.items() if not result.startswith("ok")]
        if failed:
            return Response(
                Readiness(
                    status="unavailable",
                    dependencies=dependencies,
                    error="not_ready",
                    detail=f"unavailable: {', '.join(failed)}",
                ),
                status_code=503,
            )
        return Response(Readiness(status="ok", dependencies=dependencies))


class MetricsController(Controller):
    """Prometheus's text exposition format (Litestar's own controller documents it as JSON)."""

    tags = ["health"]

    @get("/metrics", summary="Prometheus metrics (text exposition format)", media_type=CONTENT_TYPE_LATEST)
    async def metrics(self) -> Response[str]:
        return Response(generate_latest(REGISTRY).decode(), media_type=CONTENT_TYPE_LATEST)
