"""The Open Inference Protocol over gRPC, in-process: the app's lifespan runs the gRPC server on the app's
event loop beside HTTP, over the same models; the committed descriptor set is what the .proto compiles
to; every domain error has its status code; typed contents, the message size limit, the health
service, a reload seen by both transports, and workers sharing one port.

The stock client (tritonclient.grpc) against the real server is in tests/reliability/test_stock_clients.py.
"""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from app import errors, grpc_server, proto
from app.errors import ServiceError
from market.features import FEATURE_NAMES

M = proto.messages()
F = len(FEATURE_NAMES)
CONNECTIONS = 24  # over two listeners: all on one by chance with probability 2^-23


def call(port: int, method: str, request: Any, timeout: float = 30.0) -> Any:
    """One GRPCInferenceService call with this service's own messages."""
    response = getattr(M, method + "Response")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        rpc = channel.unary_unary(f"/{proto.SERVICE}/{method}",
                                  request_serializer=type(request).SerializeToString,
                                  response_deserializer=response.FromString)
        return rpc(request, timeout=timeout)


def features_request(x: np.ndarray, model: str = "M3", raw: bool = True) -> Any:
    request = M.ModelInferRequest(model_name=model, id="g-1")
    tensor = request.inputs.add(name="features", datatype="FP32", shape=x.shape)
    if raw:
        request.raw_input_contents.append(x.astype("<f4").tobytes())
    else:
        tensor.contents.fp32_contents.extend(x.ravel().tolist())
    return request


def refused(port: int, method: str, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(port, method, request)
    return caught.value


@pytest.fixture(scope="module")
def served(quick_store, client_for, free_port) -> Any:
    """(HTTP test client, gRPC port) of one app."""
    port = free_port()
    with client_for(quick_store, grpc_port=port) as c:
        yield c, port


def test_the_committed_descriptor_set_is_what_the_proto_compiles_to(tmp_path):
    from grpc_tools import protoc

    out = tmp_path / "inference.binpb"
    assert protoc.main(proto.protoc_args(out)) == 0
    assert out.read_bytes() == proto.DESCRIPTOR_SET.read_bytes(), "run `make proto` and commit the result"


CODES = [
    (errors.BadRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.OutOfRange, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.Unauthorized, grpc.StatusCode.UNAUTHENTICATED),
    (errors.AdminDisabled, grpc.StatusCode.PERMISSION_DENIED),
    (errors.UnknownTier, grpc.StatusCode.NOT_FOUND),
    (errors.UnknownModel, grpc.StatusCode.NOT_FOUND),
    (errors.UnknownSymbol, grpc.StatusCode.NOT_FOUND),
    (errors.FamilyRefused, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.PayloadTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.TierUnavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.NoTierAvailable, grpc.StatusCode.UNAVAILABLE),
]


def test_every_domain_error_has_a_grpc_status_code():
    assert {cls for cls, _ in CODES} == set(ServiceError.__subclasses__())


@pytest.mark.parametrize(("cls", "code"), CODES, ids=[c[0].__name__ for c in CODES])
def test_each_domain_error_maps_to_its_status_code(cls, code):
    assert grpc_server.code_of(cls("what went wrong")) == code


def test_the_health_service_says_serving(served):
    _, port = served
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        for service in ("", proto.SERVICE):
            status = check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
            assert status == health_pb2.HealthCheckResponse.SERVING


def test_typed_contents_and_raw_bytes_give_the_answer_rest_gives(served, dataset):
    client, port = served
    x = dataset.test.x[:4]
    raw = call(port, "ModelInfer", features_request(x, raw=True))
    typed = call(port, "ModelInfer", features_request(x, raw=False))
    assert raw.raw_output_contents == typed.raw_output_contents and raw.id == "g-1"
    rest = client.post("/v2/models/M3/infer", json={"inputs": [
        {"name": "features", "shape": [4, F], "datatype": "FP32", "data": x.ravel().tolist()}]}).json()
    got = np.frombuffer(raw.raw_output_contents[0], dtype="<f4")
    assert got.tolist() == np.array(rest["outputs"][0]["data"], dtype=np.float32).tolist()


def test_raw_contents_must_match_the_inputs_and_errors_carry_the_rest_message(served, dataset):
    _, port = served
    request = features_request(dataset.test.x[:1])
    request.raw_input_contents.append(b"\0\0\0\0")
    error = refused(port, "ModelInfer", request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "2 entries for 1 inputs" in error.details()
    short = features_request(dataset.test.x[:2])
    short.raw_input_contents[0] = short.raw_input_contents[0][:-4]
    error = refused(port, "ModelInfer", short)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (f"input features: {2 * F * 4 - 4} bytes of binary data; shape [2, {F}] of "
                               f"FP32 needs {2 * F * 4} ({2 * F} × 4 bytes)")


def test_unknown_models_and_versions_are_not_found(served, quick_store):
    _, port = served
    unknown = refused(port, "ModelMetadata", M.ModelMetadataRequest(name="M9"))
    assert unknown.code() == grpc.StatusCode.NOT_FOUND and "tiered" in unknown.details()
    old = refused(port, "ModelReady", M.ModelReadyRequest(name="M2", version="old"))
    assert old.code() == grpc.StatusCode.NOT_FOUND and "old" in old.details()
    assert call(port, "ModelReady", M.ModelReadyRequest(name="tiered", version="")).ready


def test_a_message_over_the_limit_is_resource_exhausted(quick_store, client_for, free_port):
    port = free_port()
    x = np.zeros((256, F), dtype=np.float32)  # 44 KB of features
    with client_for(quick_store, grpc_port=port, grpc_max_message_bytes=32 * 1024):
        error = refused(port, "ModelInfer", features_request(x))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert len(call(port, "ModelInfer", features_request(x[:64])).raw_output_contents[0]) == 64 * 4


def test_a_reload_changes_what_both_transports_serve(store_copy, client_for, family_maker, admin_token,
                                                     free_port, dataset):
    store, family_dir = store_copy
    port = free_port()
    with client_for(store, grpc_port=port) as c:
        family_maker(family_dir, "fam-new")
        assert call(port, "ModelMetadata", M.ModelMetadataRequest(name="M2")).versions != ["fam-new"]
        assert c.post("/admin/reload", headers={"Authorization": f"Bearer {admin_token}"}).status_code == 200
        assert list(call(port, "ModelMetadata", M.ModelMetadataRequest(name="M2")).versions) == ["fam-new"]
        assert call(port, "ModelInfer", features_request(dataset.test.x[:1])).model_version == "fam-new"


def test_workers_share_the_port_and_a_single_worker_refuses_a_taken_one(quick_store, client_for, free_port,
                                                                        dataset):
    port = free_port()
    # Two workers' apps (as uvicorn's workers run them) bind the same port through SO_REUSEPORT.
    with client_for(quick_store, grpc_port=port, workers=2) as one, \
            client_for(quick_store, grpc_port=port, workers=2) as two:
        for _ in range(CONNECTIONS):  # a new connection each: the kernel spreads them over both listeners
            assert call(port, "ModelInfer", features_request(dataset.test.x[:1])).model_name == "M3"
        counts = [c.get("/tiers/M3").json()["live"]["requests"] for c in (one, two)]
        assert sum(counts) == CONNECTIONS and min(counts) > 0, counts
        # One worker does not share: a port another process holds stops its start, with the reason.
        with pytest.raises(grpc_server.BindFailed, match="TIERED_GRPC_PORT"), \
                client_for(quick_store, grpc_port=port):
            pass
