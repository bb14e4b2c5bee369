"""The generated gRPC code in proto/ is what `make proto` makes of the .proto today."""

import re
import subprocess
import sys
from pathlib import Path

PROTO = Path(__file__).resolve().parents[2] / "proto"
GENERATED = ("fabric_pb2.py", "fabric_pb2.pyi", "fabric_pb2_grpc.py")
# the generator's own version, stamped into its output: a newer patch release of
# grpcio-tools or protobuf (a fresh install takes the newest) changes nothing else
STAMPS = re.compile(r"(Protobuf Python Version: |GRPC_GENERATED_VERSION = ')[0-9.]+")


def unstamped(text: str) -> str:
    text = STAMPS.sub(r"\1X", text)
    # ValidateProtobufRuntimeVersion(domain, major, minor, patch, suffix, file)
    return re.sub(r"(ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,)"
                  r"\s*\d+,\s*\d+,\s*\d+,", r"\1 X, X, X,", text)


def test_generated_code_is_not_stale(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO}", f"--python_out={tmp_path}",
         f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}",
         str(PROTO / "aifabric" / "v1" / "fabric.proto")],
        check=True, capture_output=True, text=True,
    )
    for name in GENERATED:
        fresh = unstamped((tmp_path / "aifabric" / "v1" / name).read_text())
        committed = unstamped((PROTO / "aifabric" / "v1" / name).read_text())
        assert fresh == committed, f"proto/aifabric/v1/{name} is stale: run `make proto`"
