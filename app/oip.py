"""The Open Inference Protocol (KServe / Triton "v2") REST shapes, and their mapping onto a tier.

Each tier is one model: name = tier (M0..M3), version = family id, platform onnxruntime_onnx, input
`features` FP32 [-1, F] (F = len(market.features.FEATURE_NAMES)), one output named after the family's
target (e.g. `volatility`) FP32 [-1, 1] (or [-1, n_classes]). Tensor data is JSON (flat row-major or
nested); the binary tensor extension is not implemented, so clients send JSON (tritonclient:
`binary_data=False`). Errors answer {"error": "..."} with status 400, as the protocol asks; an unknown
model 404, a model that did not load 503.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, Field

from app.errors import BadRequest
from app.registry import Family
from app.schemas import F32_MAX
from market.features import FEATURE_NAMES

PLATFORM = "onnxruntime_onnx"
DATATYPE = "FP32"

Number = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-F32_MAX, le=F32_MAX)]


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class RequestInput(BaseModel):
    name: str = Field(max_length=256)
    shape: list[Annotated[int, Field(ge=0, le=1_000_000)]] = Field(max_length=8)
    datatype: str = Field(max_length=16)
    parameters: dict[str, Any] | None = None
    data: list[Number] | list[list[Number]] = Field(max_length=1_000_000)


class RequestOutput(BaseModel):
    name: str = Field(max_length=256)
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    model_config = {"json_schema_extra": {"examples": [{
        "id": "example-1",
        "inputs": [{"name": "features", "shape": [1, len(FEATURE_NAMES)], "datatype": "FP32",
                    "data": [0.0] * len(FEATURE_NAMES)}],
    }]}}

    id: str | None = Field(None, max_length=256)
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1, max_length=16)
    outputs: list[RequestOutput] | None = Field(None, max_length=16)


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]


class Liveness(BaseModel):
    live: bool


class Readiness(BaseModel):
    ready: bool


class ModelReadiness(BaseModel):
    name: str
    ready: bool


def _dims(shape: list[int | None]) -> list[int]:
    return [-1 if d is None else d for d in shape]


def model_metadata(family: Family, tier: str) -> ModelMetadata:
    m = family.manifest
    return ModelMetadata(
        name=tier, versions=[family.family_id], platform=PLATFORM,
        inputs=[MetadataTensor(name=m.input.name, datatype=DATATYPE, shape=_dims(m.input.shape))],
        outputs=[MetadataTensor(name=m.output.name, datatype=DATATYPE, shape=_dims(m.output.shape))],
    )


def features_tensor(request: InferenceRequest, family: Family, max_rows: int) -> np.ndarray:
    """The request's one FP32 input as a checked (B, F) float32 array."""
    m = family.manifest
    if len(request.inputs) != 1 or request.inputs[0].name != m.input.name:
        raise BadRequest(f"expected exactly one input named {m.input.name!r}, got "
                         f"{[i.name for i in request.inputs]}")
    tensor = request.inputs[0]
    width = m.input.shape[1]
    if tensor.datatype != DATATYPE:
        raise BadRequest(f"input {tensor.name} has datatype {tensor.datatype}; send {DATATYPE}")
    if len(tensor.shape) != 2 or tensor.shape[1] != width or not 1 <= tensor.shape[0] <= max_rows:
        raise BadRequest(f"input {tensor.name} has shape {tensor.shape}; send [rows, {width}] "
                         f"with 1 ≤ rows ≤ {max_rows}")
    for wanted in request.outputs or []:
        if wanted.name != m.output.name:
            raise BadRequest(f"unknown output {wanted.name!r}; this model has {m.output.name!r}")
    try:
        x = np.asarray(tensor.data, dtype=np.float32)
    except ValueError:
        raise BadRequest(f"input {tensor.name}: nested data rows must all have the same length") from None
    if x.size != math.prod(tensor.shape):
        raise BadRequest(f"input {tensor.name} holds {x.size} values; shape {tensor.shape} needs "
                         f"{math.prod(tensor.shape)}")
    return x.reshape(tensor.shape)


def inference_response(request: InferenceRequest, family: Family, tier: str,
                       y: np.ndarray) -> InferenceResponse:
    out = ResponseOutput(name=family.manifest.output.name, shape=list(y.shape), datatype=DATATYPE,
                         data=y.ravel().tolist())
    return InferenceResponse(model_name=tier, model_version=family.family_id, id=request.id, outputs=[out])
