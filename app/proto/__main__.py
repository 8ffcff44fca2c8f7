"""Compile inference.proto into the descriptor set the server loads: `python -m app.proto`."""

from __future__ import annotations

import sys

from app.proto import DESCRIPTOR_SET, protoc_args


def main() -> int:
    from grpc_tools import protoc  # the dev extra: serving reads the committed descriptor set

    status = protoc.main(protoc_args(DESCRIPTOR_SET))
    if status == 0:
        print(f"wrote {DESCRIPTOR_SET}", file=sys.stderr)
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
