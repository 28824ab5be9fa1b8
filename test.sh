#!/usr/bin/env bash
# Runs every test suite of the project and ends with one line: "N passed, N failed, N skipped".
#   .NET    engine unit tests, the server's functional tests, the CLI's tests (xunit)
#   Python  clients/python against a real server process (needs apt python3-grpcio python3-grpc-tools python3-numpy)
#   Node    clients/node against the same server (npm ci in clients/node)
#   Export  tools/export (EfficientLoFTR to ONNX) against HF's golden fixtures (needs apt python3-torch python3-onnx)
#   Chart   charts/videomatch rendered without helm and checked (needs apt golang-go, golang-github-masterminds-sprig-dev,
#           golang-gopkg-yaml.v3-dev, python3-yaml, python3-jsonschema, yamllint); starts the built server with its settings
# Exit status: 0 only when everything built and no test failed.
set -uo pipefail
cd "$(dirname "$0")"
root=$(pwd)

passed=0 failed=0 skipped=0
log=$(mktemp)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  rm -f "$log" "$log.server"
}
trap cleanup EXIT

suite_failed() { echo "test.sh: $1" >&2; failed=$((failed + 1)); }

# Runs one Python unittest folder (extra arguments: VAR=value for its environment) and adds up its results.
run_unittest() {
  local name=$1 folder=$2
  shift 2
  env "$@" /usr/bin/python3 -m unittest discover -s "$folder" -v 2>&1 | tee "$log"
  local ran bad=0 skip n
  ran=$(sed -nE 's/^Ran ([0-9]+) tests?.*/\1/p' "$log" | tail -n 1)
  for n in $(sed -nE 's/^FAILED \((.*)\)/\1/p' "$log" | grep -oE '(failures|errors)=[0-9]+' | cut -d= -f2); do bad=$((bad + n)); done
  skip=$(sed -nE 's/.*skipped=([0-9]+).*/\1/p' "$log" | tail -n 1)
  if [ -z "$ran" ]; then
    suite_failed "$name: the unittest run did not finish"
  else
    skip=${skip:-0}
    passed=$((passed + ran - bad - skip)); failed=$((failed + bad)); skipped=$((skipped + skip))
  fi
}

# --- .NET -----------------------------------------------------------------------------------------------------
# A hung test fails the run with its name (and a dump) instead of holding CI until its time limit.
dotnet test VideoMatch.sln -c Release --nologo --blame-hang --blame-hang-timeout 5m 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
dotnet_failed=0
while read -r f p s; do
  dotnet_failed=$((dotnet_failed + f)); passed=$((passed + p)); skipped=$((skipped + s))
done < <(sed -nE 's/.*(Passed|Failed)! +- +Failed: +([0-9]+), +Passed: +([0-9]+), +Skipped: +([0-9]+).*/\2 \3 \4/p' "$log")
failed=$((failed + dotnet_failed))
if [ "$status" -ne 0 ] && [ "$dotnet_failed" -eq 0 ]; then
  suite_failed "the .NET build or test run failed outside any test (see above)"
fi

# --- a real server for the Python and Node clients ------------------------------------------------------------
server_dll="$root/src/VideoMatch.Server/bin/Release/net10.0/VideoMatch.Server.dll"
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 50151)
address="127.0.0.1:$port"
if [ -f "$server_dll" ]; then
  dotnet "$server_dll" --urls "http://$address" --Inference:EmbeddedWidth=320 --Inference:EmbeddedHeight=256 \
    --Inference:WarmUp=false --Metrics:Url= --Logging:LogLevel:Default=Warning --Logging:LogLevel:Microsoft.Hosting.Lifetime=Information \
    --Logging:LogLevel:VideoMatch.Server.Hosting=Information > "$log.server" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 120); do
    grep -q "; ready" "$log.server" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.5
  done
fi
if ! grep -q "; ready" "$log.server" 2>/dev/null; then
  cat "$log.server" 2>/dev/null >&2
  suite_failed "the server for the client tests did not start; Python and Node suites not run"
else
  echo "client tests against the server at $address"

  # --- Python ---------------------------------------------------------------------------------------------------
  if ! /usr/bin/python3 -c 'import grpc, grpc_tools, numpy' 2>/dev/null; then
    suite_failed "python: /usr/bin/python3 lacks grpcio, grpc_tools or numpy (apt-get install python3-grpcio python3-grpc-tools python3-numpy)"
  elif ! clients/python/generate.sh; then
    suite_failed "python: generating the stubs failed"
  else
    run_unittest python clients/python/tests VIDEOMATCH_ADDRESS="$address"
  fi

  # --- Node -----------------------------------------------------------------------------------------------------
  if ! command -v node >/dev/null; then
    suite_failed "node: Node.js is not installed"
  elif [ ! -d clients/node/node_modules ] && ! (cd clients/node && npm ci --no-audit --no-fund); then
    suite_failed "node: npm ci failed in clients/node"
  else
    (cd clients/node && VIDEOMATCH_ADDRESS=$address node --test test/) 2>&1 | tee "$log"
    pass=$(sed -nE 's/^# pass ([0-9]+)$/\1/p' "$log" | tail -n 1)
    fail=$(sed -nE 's/^# fail ([0-9]+)$/\1/p' "$log" | tail -n 1)
    skip=$(sed -nE 's/^# skipped ([0-9]+)$/\1/p' "$log" | tail -n 1)
    if [ -z "$pass" ]; then
      suite_failed "node: the test run did not finish"
    else
      passed=$((passed + pass)); failed=$((failed + ${fail:-0})); skipped=$((skipped + ${skip:-0}))
    fi
  fi
fi

# --- Export ---------------------------------------------------------------------------------------------------
# tools/export against HF's golden fixtures (../shared; those tests skip with a message without them).
if ! /usr/bin/python3 -c 'import torch, onnx, numpy' 2>/dev/null; then
  suite_failed "export: /usr/bin/python3 lacks torch, onnx or numpy (apt-get install python3-torch python3-onnx python3-numpy)"
else
  run_unittest export tools/export/tests
fi

# --- Chart ----------------------------------------------------------------------------------------------------
if ! command -v go >/dev/null || ! command -v yamllint >/dev/null || ! /usr/bin/python3 -c 'import yaml, jsonschema' 2>/dev/null; then
  suite_failed "chart: needs go, yamllint, python3-yaml and python3-jsonschema (see .ci/run for the apt packages)"
else
  run_unittest chart charts/tests VIDEOMATCH_SERVER_DLL="$server_dll"
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
