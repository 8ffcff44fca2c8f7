"""The Open Inference Protocol (KServe / Triton "v2") REST shapes, and their mapping onto a tier.

Each tier is one model: name = tier (M0..M3), version = family id, platform onnxruntime_onnx, input
`features` FP32 [-1, F] (F = len(market.features.FEATURE_NAMES)), one output named after the family's
target (e.g. `volatility`) FP32 [-1, 1] (or [-1, n_classes]). Tensor data is JSON (flat row-major or
nested), decoded by msgspec with the row cap of TIERED_MAX_BATCH_ITEMS in the type itself, so an
oversized tensor costs milliseconds, not the seconds a per-value validator spends on a million values;
the binary tensor extension is not implemented, so clients send JSON (tritonclient:
`binary_data=False`). Errors answer {"error": "..."} with status 400, as the protocol asks; an unknown
model 404, a model that did not load 503.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
import numpy as np
from msgspec import Meta, Struct
from pydantic import BaseModel

from app import wire
from app.errors import BadRequest, InvalidInput
from app.registry import Family
from app.windows import F32_MAX
from market.features import FEATURE_NAMES

PLATFORM = "onnxruntime_onnx"
DATATYPE = "FP32"


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


class RequestOutput(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(max_length=256)]
    parameters: dict[str, Any] | None = None


@dataclass(frozen=True)
class RequestTypes:
    request: type[Struct]
    decoder: msgspec.json.Decoder[Any]


def request_types(max_rows: int) -> RequestTypes:
    """The request type for at most `max_rows` rows (TIERED_MAX_BATCH_ITEMS): its tensor holds at most
    max_rows × F values, so an oversized body is refused once decoded, in milliseconds."""
    width = len(FEATURE_NAMES)
    row = Annotated[list[float], Meta(max_length=width)]
    tensor = msgspec.defstruct("RequestInput", [
        ("name", Annotated[str, Meta(max_length=256)]),
        # Decoded as numbers, checked as whole ones: JSON Schema's integers include 2.0.
        ("shape", Annotated[list[Annotated[float, Meta(extra_json_schema={
            "type": "integer", "minimum": 0, "maximum": max_rows * width})]], Meta(max_length=8)]),
        ("datatype", Annotated[str, Meta(max_length=16)]),
        ("data", Annotated[list[float | row], Meta(
            max_length=max_rows * width, description="row-major, flat or one list per row")]),
        ("parameters", dict[str, Any] | None, None),
    ], forbid_unknown_fields=True, module=__name__)
    request = msgspec.defstruct("InferenceRequest", [
        ("inputs", Annotated[list[tensor], Meta(min_length=1, max_length=16)]),  # type: ignore[valid-type]
        ("id", Annotated[str, Meta(max_length=256)] | None, None),
        ("parameters", dict[str, Any] | None, None),
        ("outputs", Annotated[list[RequestOutput], Meta(max_length=16)] | None, None),
    ], forbid_unknown_fields=True, module=__name__)
    return RequestTypes(request, msgspec.json.Decoder(request))


EXAMPLE: Any = {"example-1": {"summary": "one row of features", "value": {
    "id": "example-1",
    "inputs": [{"name": "features", "shape": [1, len(FEATURE_NAMES)], "datatype": "FP32",
                "data": [0.0] * len(FEATURE_NAMES)}]}}}


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    # {"out_of_range": "row 0: logrange_lag0, volatility; ..."} when rows of the input lie outside the
    # family's training range (parameter values are scalars in the protocol); absent when none do.
    parameters: dict[str, str] | None = None
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


def decode(types: RequestTypes, body: bytes) -> Any:
    try:
        return wire.decode(types.decoder, body)
    except InvalidInput as e:  # the protocol answers every bad request with 400
        raise BadRequest(e.message, e.field) from None


def features_tensor(request: Any, family: Family, max_rows: int) -> np.ndarray:
    """The request's one FP32 input as a checked (B, F) float32 array."""
    m = family.manifest
    if len(request.inputs) != 1 or request.inputs[0].name != m.input.name:
        raise BadRequest(f"expected exactly one input named {m.input.name!r}, got "
                         f"{[i.name for i in request.inputs]}")
    tensor = request.inputs[0]
    width = m.input.shape[1]
    if tensor.datatype != DATATYPE:
        raise BadRequest(f"input {tensor.name} has datatype {tensor.datatype}; send {DATATYPE}")
    shape = [int(d) if d == int(d) else -1 for d in tensor.shape if math.isfinite(d)]
    if len(shape) != 2 or shape[1] != width or not 1 <= shape[0] <= max_rows:
        raise BadRequest(f"input {tensor.name} has shape {tensor.shape}; send [rows, {width}] "
                         f"with 1 ≤ rows ≤ {max_rows}")
    for wanted in request.outputs or []:
        if wanted.name != m.output.name:
            raise BadRequest(f"unknown output {wanted.name!r}; this model has {m.output.name!r}")
    try:
        x = np.array(tensor.data, dtype=np.float64)
    except (ValueError, TypeError):
        raise BadRequest(f"input {tensor.name}: give data flat or as rows of the same length, not "
                         "both") from None
    if x.size != math.prod(shape):
        raise BadRequest(f"input {tensor.name} holds {x.size} values; shape {shape} needs {math.prod(shape)}")
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(~(np.abs(x) <= F32_MAX))
    if bad.size:
        value = x.ravel()[bad[0]]
        problem = "is not a finite number" if not np.isfinite(value) else \
            f"is beyond float32's range: send values less than or equal to {F32_MAX} in magnitude"
        raise BadRequest(f"input {tensor.name}: value {bad[0]} (row-major) {problem} (got {value!r})")
    return x.reshape(shape).astype(np.float32)


def inference_response(request: Any, family: Family, tier: str, y: np.ndarray,
                       out_of_range: dict[int, list[str]] | None = None) -> InferenceResponse:
    out = ResponseOutput(name=family.manifest.output.name, shape=list(y.shape), datatype=DATATYPE,
                         data=y.ravel().tolist())
    rows = sorted((out_of_range or {}).items())
    flagged = "; ".join(f"row {row}: {', '.join(names)}" for row, names in rows)
    # Left unset when no row is out: the route leaves unset fields out of the answer.
    extra = {"parameters": {"out_of_range": flagged}} if flagged else {}
    return InferenceResponse(model_name=tier, model_version=family.family_id, id=request.id, outputs=[out],
                             **extra)


def components(types: RequestTypes) -> dict[str, Any]:
    _, found = msgspec.json.schema_components([types.request], ref_template="#/components/schemas/{name}")
    return found
