#!/usr/bin/env bash
# Generates the Python stubs from protos/ with Debian's grpc_tools (apt-get install python3-grpc-tools).
# The output is not committed: run this after changing the contract (test.sh runs it every time).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/videomatch_client/_generated"
rm -rf "$out"
mkdir -p "$out"
/usr/bin/python3 -m grpc_tools.protoc -I"$here/../../protos" --python_out="$out" --grpc_python_out="$out" \
  "$here/../../protos/videomatch/v1/videomatch.proto"
echo "generated $(find "$out" -name '*.py' | wc -l) modules in $out"
