"""POST /admin/reload: load CURRENT again on every worker, behind the admin token."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import AdminDep, ControlDep, RegistryDep
from app.errors import ErrorBody, FamilyRefused
from app.schemas import Reloaded, WorkerInfo

router = APIRouter(tags=["admin"], dependencies=[AdminDep], responses={
    401: {"model": ErrorBody, "description": "missing or wrong token"},
    403: {"model": ErrorBody, "description": "admin API off (no TIERED_ADMIN_TOKEN)"},
    409: {"model": ErrorBody, "description": "a worker refused the new family (the message says which and "
                                             "why); the old one serves on everywhere"},
})


@router.post("/admin/reload", summary="Load CURRENT again on every worker; answers once all serve it")
async def reload(control: ControlDep, registry: RegistryDep) -> Reloaded:
    outcome = await control.reload()
    if outcome.refused is not None:
        raise FamilyRefused(outcome.refused)
    return Reloaded(family_id=outcome.family_id, previous_family_id=outcome.previous_family_id,
                    available=registry.family.available,
                    workers=[WorkerInfo(pid=w.pid, family_id=w.family_id, state=w.state)
                             for w in outcome.workers])
