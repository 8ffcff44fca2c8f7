"""GET /healthz (the process answers), /readyz (the family serves, the feeds are live) and /metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from app import catalog
from app.deps import LiveDep, MetricsDep, RegistryDep
from app.metrics import CONTENT_TYPE
from app.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", summary="Readiness: 200 ready or degraded (a tier or feed down), 503: no tier serves",
            response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(registry: RegistryDep, live: LiveDep) -> JSONResponse:
    ready = catalog.readiness(registry.family, live.states())
    return JSONResponse(ready.model_dump(), status_code=503 if ready.status == "unavailable" else 200)


@router.get("/metrics", summary="Prometheus metrics, every worker summed", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics(counters: MetricsDep) -> Response:
    return Response(counters.exposition(), media_type=CONTENT_TYPE)
