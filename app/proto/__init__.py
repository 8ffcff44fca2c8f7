"""The Open Inference Protocol's gRPC messages, loaded from the committed descriptor set
`inference.binpb` (compiled from `inference.proto`) into a descriptor pool of this service's own.

Why not generated `*_pb2.py` modules: those register `inference.ModelInferRequest` and the rest in
protobuf's default pool, where tritonclient.grpc registers the same names from Triton's own proto, and a
process that imports both fails ("duplicate symbol 'inference.ServerLiveRequest'"): a test suite
driving the server with the stock client, an application embedding both. A private pool holds the
same messages (the classes protobuf builds from a descriptor are the ones generated code builds), and
gRPC's generic handlers (`app/grpc_server.py`) need no generated servicer.

Regenerate the descriptor set after editing the .proto (grpcio-tools, in the dev extra), and commit it:

    python -m app.proto        (or `make proto`)

`tests/app/test_grpc.py` checks that the committed file is what the .proto compiles to.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

HERE = Path(__file__).parent
PROTO = HERE / "inference.proto"
DESCRIPTOR_SET = HERE / "inference.binpb"
PACKAGE = "inference"
SERVICE = f"{PACKAGE}.GRPCInferenceService"


def protoc_args(out: Path) -> list[str]:
    """grpc_tools.protoc's arguments that compile the .proto into the descriptor set at `out`."""
    return ["protoc", f"--proto_path={HERE}", f"--descriptor_set_out={out}", PROTO.name]


@cache
def messages() -> Any:
    """The message classes by name: messages().ModelInferRequest, messages().InferParameter, ..."""
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    found = {}
    for file in files.file:
        for message in file.message_type:
            found[message.name] = message_factory.GetMessageClass(
                pool.FindMessageTypeByName(f"{file.package}.{message.name}"))
    return SimpleNamespace(**found)

