"""The Open Inference Protocol v2 REST surface: every tier is a model, and so is the routed model
`tiered`; each path also takes `/versions/{version}`, the family's id (bodies and models in
`app/oip.py` and `app/inference.py`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from app import inference, oip, wire
from app.deps import InferenceDep, OipTypesDep
from app.errors import OIP_ERROR_RESPONSES, NoTierAvailable

router = APIRouter(prefix="/v2", tags=["open inference protocol"], responses=OIP_ERROR_RESPONSES)

MODEL = "/models/{model}"
VERSIONED = "/models/{model}/versions/{version}"  # the version is the family's id
INFER_RESPONSES: dict[int | str, dict[str, Any]] = {200: {
    "model": oip.InferenceResponse,
    "description": "JSON; with binary outputs, their bytes follow the JSON header, whose length "
                   f"`{oip.HEADER_LENGTH}` gives",
    "content": {oip.BINARY_CONTENT_TYPE: {}}}}


@router.get("", summary="Server metadata")
async def server_metadata() -> oip.ServerMetadata:
    return oip.ServerMetadata(name=inference.SERVER_NAME, version=inference.SERVER_VERSION,
                              extensions=list(inference.EXTENSIONS))


@router.get("/health/live", summary="Server live")
async def live() -> oip.Liveness:
    return oip.Liveness(live=True)


@router.get("/health/ready", summary="Server ready: every model is ready")
async def ready(models: InferenceDep) -> oip.Readiness:
    problem = models.server_problem()
    if problem is not None:
        raise NoTierAvailable(f"not every model is ready: {problem}")
    return oip.Readiness(ready=True)


@router.get(MODEL, summary="Model metadata (label maps and optional inputs in `properties`)")
async def model_metadata(model: str, models: InferenceDep) -> oip.ModelMetadata:
    return oip.model_metadata(models.metadata(model))


@router.get(VERSIONED, summary="Model metadata, of this version")
async def model_version_metadata(model: str, version: str, models: InferenceDep) -> oip.ModelMetadata:
    return oip.model_metadata(models.metadata(model, version))


@router.get(MODEL + "/ready", summary="Model ready")
async def model_ready(model: str, models: InferenceDep) -> oip.ModelReadiness:
    models.check_ready(model)
    return oip.ModelReadiness(name=model, ready=True)


@router.get(VERSIONED + "/ready", summary="Model ready, this version")
async def model_version_ready(model: str, version: str, models: InferenceDep) -> oip.ModelReadiness:
    models.check_ready(model, version)
    return oip.ModelReadiness(name=model, ready=True)


INFER: dict[str, Any] = {"openapi_extra": wire.request_body("InferenceRequest", oip.EXAMPLE),
                         "response_class": Response, "responses": INFER_RESPONSES}


@router.post(MODEL + "/infer", summary="Inference: JSON, or binary tensors after a JSON header", **INFER)
async def infer(model: str, request: Request, models: InferenceDep, types: OipTypesDep) -> Response:
    return await _infer(request, models, types, model, None)


@router.post(VERSIONED + "/infer", summary="Inference on this version", **INFER)
async def infer_version(model: str, version: str, request: Request, models: InferenceDep,
                        types: OipTypesDep) -> Response:
    return await _infer(request, models, types, model, version)


async def _infer(request: Request, models: inference.Inference, types: oip.RequestTypes, model: str,
                 version: str | None) -> Response:
    models.model(models.family, model, version)  # an unknown model or version is a 404, whatever the body
    decoded = oip.decode(types, await request.body(), request.headers, model, version)
    return oip.response(await models.infer(decoded.request), decoded)
