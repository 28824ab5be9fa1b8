#!/usr/bin/env bash
# Writes the Python stubs for protos/ into the package (videomatch_client/_generated/), with Debian's grpc_tools
# (apt-get install python3-grpc-tools). They are committed, so that `pip install ./clients/python` needs no code
# generator: run this after changing the contract and commit what it writes. `generate.sh --check` writes nothing
# and fails when the committed stubs differ from what the contract gives (test.sh runs it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
package="$here/videomatch_client/_generated"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 -m grpc_tools.protoc -I"$here/../../protos" --grpc_python_out="$work" \
  --descriptor_set_out="$work/contract.pb" "$here/../../protos/videomatch/v1/videomatch.proto"
mkdir -p "$work/out"
# The message module in the builder form of protoc >= 3.20 (Debian's grpc_tools carries protoc 3.5, whose form of
# building descriptors one by one current protobuf runtimes refuse): the contract's descriptor, serialized, and
# protobuf's own builder making the classes from it. It loads on protobuf 3.20 and later (cpp, upb and python).
/usr/bin/python3 - "$work/contract.pb" "$work/out/videomatch_pb2.py" <<'PY'
import sys
from google.protobuf import descriptor_pb2
files = descriptor_pb2.FileDescriptorSet.FromString(open(sys.argv[1], "rb").read()).file
contract = next(f for f in files if f.name == "videomatch/v1/videomatch.proto")
imports = {"google/protobuf/wrappers.proto": "from google.protobuf import wrappers_pb2 as _wrappers_pb2  # noqa: F401"}
unknown = [d for d in contract.dependency if d not in imports]
if unknown:
    sys.exit(f"generate.sh: the contract imports {unknown}; add their modules to the import table")
with open(sys.argv[2], "w") as out:
    out.write("# Generated from videomatch/v1/videomatch.proto by clients/python/generate.sh. DO NOT EDIT!\n")
    out.write("from google.protobuf import descriptor_pool as _descriptor_pool\n")
    out.write("from google.protobuf.internal import builder as _builder\n")
    for d in contract.dependency:
        out.write(imports[d] + "\n")
    out.write(f"\nDESCRIPTOR = _descriptor_pool.Default().AddSerializedFile({contract.SerializeToString()!r})\n")
    out.write("_builder.BuildMessageAndEnumDescriptors(DESCRIPTOR, globals())\n")
    out.write("_builder.BuildTopDescriptorsAndMessages(DESCRIPTOR, __name__, globals())\n")
PY
# protoc names the message module by its proto path (videomatch.v1); inside the package it is a sibling module.
sed -E 's/^from videomatch\.v1 import videomatch_pb2 as /from . import videomatch_pb2 as /' \
  "$work/videomatch/v1/videomatch_pb2_grpc.py" > "$work/out/videomatch_pb2_grpc.py"
if grep -q '^from videomatch' "$work/out/videomatch_pb2_grpc.py"; then
  echo "generate.sh: the grpc stub still imports the videomatch.v1 path; the import rewrite needs updating" >&2
  exit 1
fi
printf '"""Stubs generated from protos/videomatch/v1/videomatch.proto by clients/python/generate.sh: do not edit."""\n' > "$work/out/__init__.py"
if [ "${1:-}" = "--check" ]; then
  if ! diff -r -q -x __pycache__ "$work/out" "$package" >/dev/null 2>&1; then
    diff -r -x __pycache__ "$work/out" "$package" | head -n 20 >&2 || true
    echo "generate.sh: the committed stubs in $package differ from protos/: run clients/python/generate.sh and commit them" >&2
    exit 1
  fi
  echo "the stubs in $package match protos/"
  exit 0
fi
rm -rf "$package"
mkdir -p "$package"
cp "$work/out/"*.py "$package/"
echo "generated $(find "$package" -name '*.py' | wc -l) modules in $package"
