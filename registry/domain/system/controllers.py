"""Health, readiness and Prometheus metrics (no authentication)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Controller, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from registry.deps import MetricsDep
from registry.domain.system.deps import HealthServiceDep
from registry.errors import ServiceUnavailableError

# Litestar appends "; charset=utf-8" to every text/* media type: give it the type without
METRICS_MEDIA_TYPE = CONTENT_TYPE_LATEST.removesuffix("; charset=utf-8")


class SystemController(Controller):
    @get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz")
    async def readyz(self, health_service: HealthServiceDep) -> dict[str, Any]:
        """200 when every dependency answers; otherwise a 503 problem whose ``checks``
        say which one failed (like every error, problem+json)."""
        checks = await anyio.to_thread.run_sync(health_service.check)
        failing = {name: state for name, state in checks.items() if state != "ok"}
        if failing:
            raise ServiceUnavailableError(
                "not ready: " + "; ".join(f"{name}: {state}" for name, state in failing.items()),
                checks=checks,
            )
        return {"status": "ready", "checks": checks}

    @get("/metrics")
    async def metrics(self, metrics: MetricsDep) -> Response[bytes]:
        return Response(generate_latest(metrics.registry), media_type=METRICS_MEDIA_TYPE)
