"""The Open Inference Protocol over gRPC: `inference.GRPCInferenceService` and the standard health
service, served beside HTTP by the same process, models and data plane (`app/inference.py`), so a
reload changes what both answer at once.

    async with grpc_server.serving(settings, models):   # the app's lifespan, once per worker
        ...

On TIERED_GRPC_PORT (off when unset), on the HTTP host. grpc.aio runs on the worker's own event loop, so
a ModelInfer joins the data plane's batches like any HTTP request. Each worker binds the port itself:
with several workers grpcio's SO_REUSEPORT lets them share it and the kernel spreads connections over
them; with one, SO_REUSEPORT is off, so a port another process holds fails the start instead of being
silently shared. Messages over TIERED_GRPC_MAX_MESSAGE_BYTES are refused by gRPC (RESOURCE_EXHAUSTED).
On shutdown (SIGTERM ends the lifespan) the health service answers NOT_SERVING, new calls are refused
and calls in flight get TIERED_SHUTDOWN_GRACE_SECONDS to finish.

Tensors come in `raw_input_contents` (what stock clients send) or typed `contents`, and go out in
`raw_output_contents` (the only form tritonclient decodes). Domain errors become a status code (the
table `CODES`) with the same message REST gives.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from app import errors, proto, tensors
from app.errors import BadRequest, ServiceError
from app.inference import EXTENSIONS, SERVER_NAME, SERVER_VERSION, Inference, ModelInfo, Request, Result
from app.settings import Settings
from app.tensors import Incoming

log = logging.getLogger("app.grpc")

# Each domain error's status code (`app/errors.py` has the tree); anything else is INTERNAL.
CODES: dict[type[ServiceError], grpc.StatusCode] = {
    errors.BadRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    errors.OutOfRange: grpc.StatusCode.INVALID_ARGUMENT,  # TIERED_OUT_OF_RANGE=refuse
    errors.UnknownModel: grpc.StatusCode.NOT_FOUND,
    errors.UnknownTier: grpc.StatusCode.NOT_FOUND,
    errors.UnknownSymbol: grpc.StatusCode.NOT_FOUND,  # no gRPC method names a symbol; kept total
    errors.PayloadTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.TierUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.NoTierAvailable: grpc.StatusCode.UNAVAILABLE,
    errors.FamilyRefused: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unauthorized: grpc.StatusCode.UNAUTHENTICATED,
    errors.AdminDisabled: grpc.StatusCode.PERMISSION_DENIED,
}
# The typed `contents` field of each datatype.
CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
            "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
            "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
            "FP64": "fp64_contents", "BYTES": "bytes_contents"}
PARAMETER_FIELDS = {bool: "bool_param", int: "int64_param", str: "string_param", float: "double_param"}


def code_of(error: ServiceError) -> grpc.StatusCode:
    return next((CODES[c] for c in type(error).__mro__ if c in CODES), grpc.StatusCode.INTERNAL)


class InferenceService:
    """GRPCInferenceService's six methods over the protocol-neutral `Inference`."""

    def __init__(self, models: Inference) -> None:
        self.models, self.m = models, proto.messages()

    def handler(self) -> grpc.GenericRpcHandler:
        m = self.m
        methods = {"ServerLive": (self.server_live, m.ServerLiveRequest),
                   "ServerReady": (self.server_ready, m.ServerReadyRequest),
                   "ModelReady": (self.model_ready, m.ModelReadyRequest),
                   "ServerMetadata": (self.server_metadata, m.ServerMetadataRequest),
                   "ModelMetadata": (self.model_metadata, m.ModelMetadataRequest),
                   "ModelInfer": (self.model_infer, m.ModelInferRequest)}
        return grpc.method_handlers_generic_handler(proto.SERVICE, {
            name: grpc.unary_unary_rpc_method_handler(
                _answering(method), request_deserializer=request.FromString,
                response_serializer=lambda message: message.SerializeToString())
            for name, (method, request) in methods.items()})

    async def server_live(self, request: Any) -> Any:
        return self.m.ServerLiveResponse(live=True)

    async def server_ready(self, request: Any) -> Any:
        return self.m.ServerReadyResponse(ready=self.models.server_problem() is None)

    async def model_ready(self, request: Any) -> Any:
        problem = self.models.model_problem(request.name, request.version)
        return self.m.ModelReadyResponse(ready=problem is None)

    async def server_metadata(self, request: Any) -> Any:
        return self.m.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION, extensions=EXTENSIONS)

    async def model_metadata(self, request: Any) -> Any:
        return self._metadata(self.models.metadata(request.name, request.version))

    async def model_infer(self, request: Any) -> Any:
        return self._response(await self.models.infer(self._request(request)))

    def _metadata(self, info: ModelInfo) -> Any:
        tensor = self.m.ModelMetadataResponse.TensorMetadata
        return self.m.ModelMetadataResponse(
            name=info.name, versions=info.versions, platform=info.platform, properties=info.properties,
            inputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in info.inputs],
            outputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in info.outputs])

    def _request(self, r: Any) -> Request:
        raw = r.raw_input_contents
        if raw and len(raw) != len(r.inputs):
            raise BadRequest(f"raw_input_contents has {len(raw)} entries for {len(r.inputs)} inputs; send "
                             "one per input, in the order of inputs")
        inputs = []
        for i, t in enumerate(r.inputs):
            shape = tensors.check_shape(t.name, list(t.shape))
            if t.datatype not in tensors.KNOWN:
                raise BadRequest(f"input {t.name} has datatype {t.datatype!r}; the protocol's datatypes are "
                                 f"{', '.join(tensors.KNOWN)}")
            typed = t.HasField("contents") and t.contents.ByteSize() > 0
            if raw and typed:
                raise BadRequest(f"input {t.name}: give contents or raw_input_contents, not both")
            data = raw[i] if raw else getattr(t.contents, CONTENTS.get(t.datatype, "bytes_contents"))
            inputs.append(Incoming(t.name, t.datatype, shape, data, _parameters(t.parameters)))
        for o in r.outputs:
            if "classification" in o.parameters:
                raise BadRequest(f"output {o.name}: the classification extension is not supported; ask for "
                                 "the output itself")
        return Request(r.model_name, r.model_version or None, inputs, [o.name for o in r.outputs] or None,
                       r.id or None, _parameters(r.parameters))

    def _response(self, result: Result) -> Any:
        out = self.m.ModelInferResponse(model_name=result.model, model_version=result.version,
                                        id=result.id or "")
        for key, value in result.parameters.items():
            setattr(out.parameters[key], PARAMETER_FIELDS[type(value)], value)
        for name, values in result.outputs:
            out.outputs.add(name=name, datatype=tensors.datatype(values), shape=values.shape)
            out.raw_output_contents.append(tensors.raw(values))
        return out


def _parameters(given: Any) -> dict[str, Any]:
    return {key: getattr(value, value.WhichOneof("parameter_choice") or "bool_param")
            for key, value in given.items()}


def _answering(method: Callable[[Any], Awaitable[Any]]) -> Callable[[Any, grpc.aio.ServicerContext], Any]:
    """The method as an RPC: a domain error ends the call with its status code and message."""
    async def rpc(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(request)
        except ServiceError as e:
            await context.abort(code_of(e), e.message)
        except Exception:
            log.exception("gRPC %s failed", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; the server log has the details")
    return rpc


def address(settings: Settings) -> str:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"{host}:{settings.grpc_port}"


class BindFailed(RuntimeError):
    """The gRPC port could not be bound."""


@asynccontextmanager
async def serving(settings: Settings, models: Inference) -> AsyncIterator[grpc.aio.Server | None]:
    """The gRPC server for the block (None when TIERED_GRPC_PORT is unset), stopped gracefully after it."""
    if settings.grpc_port is None:
        yield None
        return
    limit = settings.grpc_max_message_bytes
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
        ("grpc.so_reuseport", 1 if settings.workers > 1 else 0)])
    server.add_generic_rpc_handlers((InferenceService(models).handler(),))
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    try:
        server.add_insecure_port(address(settings))
    except RuntimeError as e:
        raise BindFailed(f"TIERED_GRPC_PORT: cannot listen on {address(settings)} ({e}); choose a free "
                         "port") from None
    await server.start()
    for service in ("", proto.SERVICE):  # "" is the server as a whole
        await checks.set(service, health_pb2.HealthCheckResponse.SERVING)
    log.info("gRPC (Open Inference Protocol) on %s", address(settings))
    try:
        yield server
    finally:
        await checks.enter_graceful_shutdown()
        await server.stop(settings.shutdown_grace_seconds)
