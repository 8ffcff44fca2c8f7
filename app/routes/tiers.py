"""GET /tiers and /tiers/{name}: the family, each tier's lineage, quality, availability and live counters."""

from __future__ import annotations

from fastapi import APIRouter

from app import catalog
from app.deps import MetricsDep, QualityDep, RegistryDep
from app.errors import ERROR_RESPONSES, ErrorBody
from app.router import check_tier
from app.schemas import FamilyInfo, TierInfo

router = APIRouter(tags=["tiers"], responses=ERROR_RESPONSES)


@router.get("/tiers", summary="The family and every tier")
async def tiers(registry: RegistryDep, metrics: MetricsDep, quality: QualityDep) -> FamilyInfo:
    return catalog.describe(registry.family, metrics, quality)


@router.get("/tiers/{name}", summary="One tier", responses={404: {"model": ErrorBody}})
async def tier(name: str, registry: RegistryDep, metrics: MetricsDep, quality: QualityDep) -> TierInfo:
    family = registry.family
    check_tier(family, name, "name")
    return catalog.describe_tier(family.tiers[name], metrics.tiers(list(family.tiers))[name],
                                 metrics.collect(), quality)
