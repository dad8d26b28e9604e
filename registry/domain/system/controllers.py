"""Health, readiness and Prometheus metrics (no authentication)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Controller, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from registry.domain.system.deps import HealthServiceDep, MetricsDep

# Litestar appends "; charset=utf-8" to every text/* media type: give it the type without
METRICS_MEDIA_TYPE = CONTENT_TYPE_LATEST.removesuffix("; charset=utf-8")


class SystemController(Controller):
    @get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz")
    async def readyz(self, health_service: HealthServiceDep) -> Response[dict[str, Any]]:
        checks = await anyio.to_thread.run_sync(health_service.check)
        ready = all(c == "ok" for c in checks.values())
        return Response(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    @get("/metrics")
    async def metrics(self, metrics: MetricsDep) -> Response[bytes]:
        return Response(generate_latest(metrics.registry), media_type=METRICS_MEDIA_TYPE)
