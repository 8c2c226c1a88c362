"""Generates the Python gRPC client of handbereik's local API.

Runs grpc_tools.protoc on the repository's proto/ files into
examples/python/generated/ (not committed: the .proto files are the source).
"""

import pathlib
import shutil
import sys

import grpc_tools
from grpc_tools import protoc

HERE = pathlib.Path(__file__).resolve().parent
PROTO = HERE.parent.parent / "proto"
OUT = HERE / "generated"


def main() -> int:
    files = sorted(str(p) for p in (PROTO / "handbereik" / "v1").glob("*.proto"))
    if not files:
        print(f"no .proto files under {PROTO}", file=sys.stderr)
        return 2
    # Start afresh, so no client of a removed .proto file stays behind.
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    # google/protobuf/*.proto, as shipped with grpcio-tools.
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO}",
            f"-I{well_known}",
            f"--python_out={OUT}",
            f"--grpc_python_out={OUT}",
            *files,
        ]
    )
    if code != 0:
        print(f"protoc failed with exit code {code}", file=sys.stderr)
        return 2
    print(f"generated {len(files)} files' clients into {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
