"""GET /healthz (the process answers), /readyz (the family serves) and /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from app import catalog
from app.deps import MetricsDep, RegistryDep
from app.schemas import Health, Readiness

router = APIRouter(tags=["health"])

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", summary="Readiness: 200 ready or degraded, 503 when no tier serves",
            response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(registry: RegistryDep) -> JSONResponse:
    ready = catalog.readiness(registry.family)
    return JSONResponse(ready.model_dump(), status_code=503 if ready.status == "unavailable" else 200)


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse,
            responses={200: {"content": {PROMETHEUS_TYPE: {}}}})
async def metrics(registry: RegistryDep, counters: MetricsDep) -> PlainTextResponse:
    return PlainTextResponse(catalog.prometheus(registry.family, counters), media_type=PROMETHEUS_TYPE)
