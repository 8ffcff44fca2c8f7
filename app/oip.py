"""The Open Inference Protocol (KServe / Triton "v2") over REST: request bodies to `inference.Request`,
`inference.Result` to response bodies, the JSON shapes, and the binary tensor data extension.

A body is read as JSON whatever its Content-Type says (or whether it says anything), as Triton and
KServe read it: stock clients send none. msgspec decodes it with the caps of the settings in the type
(values in one tensor, inputs, outputs), so an oversized tensor costs milliseconds. Tensor `data` is
row-major, flat or nested up to three levels (the routed model's windows are [B, W, 5]).

The binary tensor data extension (advertised in GET /v2 `extensions`): with an
`Inference-Header-Content-Length: N` header, the body's first N bytes are the JSON header and the rest
holds, back to back in the order of the inputs, the raw little-endian bytes of every input whose
`parameters.binary_data_size` gives its length. An output goes back raw when its request output says
`parameters.binary_data: true`, or, when it does not say, when the request's `parameters` say
`binary_data_output: true` (what tritonclient sends by default); the response then carries its own
`Inference-Header-Content-Length` and the raw bytes after its JSON header, each raw output with its
`binary_data_size`. Any mismatch (a header length beyond the body, sizes that do not add up to the
bytes sent, a size that is not shape × datatype) is a 400 saying which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.responses import Response

from app import examples, tensors, wire
from app.errors import BadRequest, InvalidInput
from app.inference import FEATURES, ModelInfo, Request, Result
from app.tensors import Incoming
from market.features import FEATURE_NAMES

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_CONTENT_TYPE = "application/octet-stream"
MAX_TENSORS = 16
Name = Annotated[str, Meta(max_length=256)]
Parameters = dict[str, Any]


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
    properties: dict[str, str]


class Liveness(BaseModel):
    live: bool


class Readiness(BaseModel):
    ready: bool


class ModelReadiness(BaseModel):
    name: str
    ready: bool


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None  # binary_data_size: the output's bytes follow the JSON
    data: list[float] | None = None  # row-major, flat; absent for a binary output


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class RequestOutput(Struct, forbid_unknown_fields=True):
    name: Name
    parameters: Parameters | None = None


@dataclass(frozen=True)
class RequestTypes:
    request: type[Struct]
    decoder: msgspec.json.Decoder[Any]


def max_values(max_rows: int, max_bars: int) -> int:
    """The most values one tensor may hold: a batch of feature rows, or of windows of six columns."""
    return max_rows * max(len(FEATURE_NAMES), max_bars * 6)


def request_types(max_values: int) -> RequestTypes:
    """The request type for tensors of at most `max_values` values (from TIERED_MAX_BATCH_ITEMS and
    TIERED_MAX_CANDLES), so an oversized body is refused once decoded, in milliseconds."""
    number = float
    data = Annotated[list[number | list[number | list[number]]], Meta(  # type: ignore[valid-type]
        max_length=max_values, description="row-major, flat or nested as the shape")]
    tensor = msgspec.defstruct("RequestInput", [
        ("name", Name),
        # Decoded as numbers, checked as whole ones: JSON Schema's integers include 2.0.
        ("shape", Annotated[list[Annotated[float, Meta(extra_json_schema={"type": "integer", "minimum": 0})]],
                            Meta(max_length=tensors.MAX_RANK)]),
        ("datatype", Annotated[str, Meta(max_length=16)]),
        ("data", data | None, None),  # absent when the tensor comes as binary data after the JSON header
        ("parameters", Parameters | None, None),
    ], forbid_unknown_fields=True, module=__name__)
    request = msgspec.defstruct("InferenceRequest", [
        ("inputs", Annotated[list[tensor], Meta(min_length=1, max_length=MAX_TENSORS)]),  # type: ignore[valid-type]
        ("id", Name | None, None),
        ("parameters", Parameters | None, None),
        ("outputs", Annotated[list[RequestOutput], Meta(max_length=MAX_TENSORS)] | None, None),
    ], forbid_unknown_fields=True, module=__name__)
    return RequestTypes(request, msgspec.json.Decoder(request))


EXAMPLE: Any = {
    "tier": {"summary": "a tier (M0..M3): one row of features", "value": {
        "id": "example-1",
        "inputs": [{"name": FEATURES, "shape": [1, len(FEATURE_NAMES)], "datatype": "FP32",
                    "data": [0.0] * len(FEATURE_NAMES)}]}},
    "tiered": {"summary": "the routed model `tiered`: one window of 48 bars and their open times",
               "value": examples.ROUTED_INFER},
}


@dataclass(frozen=True)
class Decoded:
    request: Request
    binary: dict[str, bool]  # per requested output, when it says
    binary_default: bool  # binary_data_output


def decode(types: RequestTypes, body: bytes, headers: Headers, model: str, version: str | None) -> Decoded:
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise BadRequest(f"Content-Encoding {encoding} is not supported; send the request uncompressed")
    json_part, rest = _split(body, headers.get(HEADER_LENGTH))
    try:
        header = wire.decode(types.decoder, json_part)
    except InvalidInput as e:  # the protocol answers every bad request with 400
        hint = "" if rest or "JSON" not in e.message else (
            f"; a body that carries binary tensors needs the {HEADER_LENGTH} header (the JSON's length)")
        raise BadRequest(e.message + hint, e.field) from None
    inputs, offset = [], 0
    for i, t in enumerate(header.inputs):
        params = t.parameters or {}
        size = params.get("binary_data_size")
        shape = tensors.check_shape(t.name, t.shape)
        if t.datatype not in tensors.KNOWN:
            raise BadRequest(f"input {t.name} has datatype {t.datatype!r}; the protocol's datatypes are "
                             f"{', '.join(tensors.KNOWN)}")
        if size is None:
            if t.data is None:
                raise BadRequest(f"inputs[{i}] ({t.name}): give data, or parameters.binary_data_size with "
                                 f"the bytes after the JSON header ({HEADER_LENGTH})")
            inputs.append(Incoming(t.name, t.datatype, shape, t.data, params))
            continue
        if t.data is not None:
            raise BadRequest(f"input {t.name}: give data or parameters.binary_data_size, not both")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(f"input {t.name}: parameters.binary_data_size is {size!r}; send a byte count "
                             "≥ 0")
        if offset + size > len(rest):
            if HEADER_LENGTH not in headers:
                raise BadRequest(f"input {t.name} has binary_data_size {size} but the request has no "
                                 f"{HEADER_LENGTH} header; send the JSON header's length in it")
            raise BadRequest(f"input {t.name}: binary_data_size {size} reaches byte {offset + size} of the "
                             f"binary data, but {len(rest)} bytes follow the JSON header")
        inputs.append(Incoming(t.name, t.datatype, shape, rest[offset:offset + size], params))
        offset += size
    if offset != len(rest):
        raise BadRequest(f"{len(rest) - offset} bytes after the JSON header are not claimed by any input's "
                         f"binary_data_size (the sizes add up to {offset}); check {HEADER_LENGTH} and the "
                         "sizes")
    return _decoded(header, inputs, model, version)


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(the JSON header, the binary data after it)."""
    if header_length is None:
        return body, b""
    if not header_length.strip().isdigit():
        raise BadRequest(f"{HEADER_LENGTH} is {header_length!r}; send the JSON header's length in bytes")
    n = int(header_length)
    if n > len(body):
        raise BadRequest(f"{HEADER_LENGTH} is {n}, beyond the body's {len(body)} bytes; send the length of "
                         "the JSON header alone")
    return body[:n], body[n:]


def _decoded(header: Any, inputs: list[Incoming], model: str, version: str | None) -> Decoded:
    params = header.parameters or {}
    default = params.get("binary_data_output", False)
    if not isinstance(default, bool):
        raise BadRequest(f"parameters.binary_data_output is {default!r}; send true or false")
    binary, names = {}, []
    for o in header.outputs or []:
        p = o.parameters or {}
        if "classification" in p:
            raise BadRequest(f"output {o.name}: the classification extension is not supported; ask for the "
                             "output itself (a target with classes gives every class's probability)")
        if "binary_data" in p:
            if not isinstance(p["binary_data"], bool):
                raise BadRequest(f"output {o.name}: parameters.binary_data is {p['binary_data']!r}; send "
                                 "true or false")
            binary[o.name] = p["binary_data"]
        names.append(o.name)
    request = Request(model, version, inputs, names or None, header.id, params)
    return Decoded(request, binary, default)


def response(result: Result, decoded: Decoded) -> Response:
    """The JSON answer, or with binary outputs its JSON header followed by their bytes."""
    outputs, blobs = [], []
    for name, values in result.outputs:
        out: dict[str, Any] = {"name": name, "datatype": tensors.datatype(values),
                               "shape": list(values.shape)}
        if decoded.binary.get(name, decoded.binary_default):
            blob = tensors.raw(values)
            out["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            out["data"] = values.ravel().tolist()
        outputs.append(out)
    body: dict[str, Any] = {"model_name": result.model, "model_version": result.version}
    if result.id is not None:
        body["id"] = result.id
    if result.parameters:
        body["parameters"] = result.parameters
    body["outputs"] = outputs
    header = msgspec.json.encode(body)
    if not blobs:
        return Response(header, media_type="application/json")
    return Response(b"".join([header, *blobs]), media_type=BINARY_CONTENT_TYPE,
                    headers={HEADER_LENGTH: str(len(header))})


def model_metadata(info: ModelInfo) -> ModelMetadata:
    def tensor(t: Any) -> MetadataTensor:
        return MetadataTensor(name=t.name, datatype=t.datatype, shape=list(t.shape))

    return ModelMetadata(name=info.name, versions=info.versions, platform=info.platform,
                         inputs=[tensor(t) for t in info.inputs], outputs=[tensor(t) for t in info.outputs],
                         properties=info.properties)


def components(types: RequestTypes) -> dict[str, Any]:
    _, found = msgspec.json.schema_components([types.request], ref_template="#/components/schemas/{name}")
    return found

