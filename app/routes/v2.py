"""The Open Inference Protocol v2 REST surface; every tier is a model (shapes in `app/oip.py`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app import oip, wire
from app.deps import DataPlaneDep, OipTypesDep, RegistryDep, SettingsDep
from app.errors import OIP_ERROR_RESPONSES, NoTierAvailable, TierUnavailable
from app.router import check_tier

router = APIRouter(prefix="/v2", tags=["open inference protocol"], responses=OIP_ERROR_RESPONSES)

SERVER_NAME = "tiered"
SERVER_VERSION = "0.1.0"


@router.get("", summary="Server metadata")
async def server_metadata() -> oip.ServerMetadata:
    return oip.ServerMetadata(name=SERVER_NAME, version=SERVER_VERSION, extensions=[])


@router.get("/health/live", summary="Server live")
async def live() -> oip.Liveness:
    return oip.Liveness(live=True)


@router.get("/health/ready", summary="Server ready: every model (tier) is ready",
            response_model=oip.Readiness)
async def ready(registry: RegistryDep) -> JSONResponse:
    family = registry.family
    if family.problems:
        details = "; ".join(f"{name}: {problem}" for name, problem in family.problems.items())
        raise NoTierAvailable(f"not every model is ready: {details}")
    return JSONResponse({"ready": True})


@router.get("/models/{tier}", summary="Model metadata")
async def model_metadata(tier: str, registry: RegistryDep) -> oip.ModelMetadata:
    family = registry.family
    check_tier(family, tier, "model_name")
    return oip.model_metadata(family, tier)


@router.get("/models/{tier}/ready", summary="Model ready")
async def model_ready(tier: str, registry: RegistryDep) -> oip.ModelReadiness:
    family = registry.family
    check_tier(family, tier, "model_name")
    if not family.tiers[tier].available:
        raise TierUnavailable(f"model {tier} is not ready: {family.tiers[tier].problem}")
    return oip.ModelReadiness(name=tier, ready=True)


@router.post("/models/{tier}/infer", summary="Inference on one tier with an FP32 feature tensor",
             openapi_extra=wire.request_body("InferenceRequest", oip.EXAMPLE),
             response_model_exclude_unset=True)
async def infer(tier: str, request: Request, plane: DataPlaneDep, types: OipTypesDep,
                settings: SettingsDep) -> oip.InferenceResponse:
    body = oip.decode(types, await request.body())
    family = plane.registry.family  # one snapshot for the checks and the run
    check_tier(family, tier, "model_name")
    done = plane.infer(tier, oip.features_tensor(body, family, settings.max_batch_items), family)
    return oip.inference_response(body, family, tier, done.y, done.out_of_range)
