"""POST /admin/reload: load CURRENT again, behind the admin token."""

from __future__ import annotations

import anyio
from fastapi import APIRouter

from app.deps import AdminDep, MetricsDep, RegistryDep
from app.errors import ErrorBody
from app.schemas import Reloaded

router = APIRouter(tags=["admin"], dependencies=[AdminDep], responses={
    401: {"model": ErrorBody, "description": "missing or wrong token"},
    403: {"model": ErrorBody, "description": "admin API off (no TIERED_ADMIN_TOKEN)"},
    409: {"model": ErrorBody, "description": "the new family failed verification; the old one serves on"},
})


@router.post("/admin/reload", summary="Load CURRENT again; the old family serves until the new one verified")
async def reload(registry: RegistryDep, metrics: MetricsDep) -> Reloaded:
    previous = registry.family.family_id
    # Loading sessions takes a while; a worker thread keeps the event loop serving meanwhile.
    family = await anyio.to_thread.run_sync(registry.reload)
    metrics.serving(family)
    return Reloaded(family_id=family.family_id, previous_family_id=previous, available=family.available)
