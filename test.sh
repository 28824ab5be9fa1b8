#!/usr/bin/env bash
# Runs every test suite of the project and ends with one line: "N passed, N failed, N skipped".
#   .NET    engine unit tests, the server's functional tests, the CLI's tests (xunit; results as .trx)
#   Python  clients/python, pip-installed into a virtual environment, against a real server process (needs apt
#           python3-grpcio python3-grpc-tools python3-numpy python3-venv)
#   Node    clients/node, packed with npm pack and installed, against the same server (npm ci in clients/node for the
#           test tools; results from node's junit reporter)
#   Export  tools/export (EfficientLoFTR to ONNX) against HF's golden fixtures (needs apt python3-torch python3-onnx),
#           and tools/bench-gpu's dry run (the GPU run's script on CPU with the tiny fixture)
#   Chart   charts/videomatch linted and rendered by the real helm and checked (helm from charts/tests/get-helm.sh, which
#           needs npm; apt python3-yaml, python3-jsonschema, yamllint); starts the built server with its settings
# Totals come from the runners' result files (tests/Infrastructure/testkit.py tally), never from their console output.
# A suite that cannot run (a missing tool, a build error, a runner that wrote no results) counts as one failure.
# Exit status: 0 only when everything built and no test failed.
set -uo pipefail
cd "$(dirname "$0")"
root=$(pwd)
testkit="/usr/bin/python3 $root/tests/Infrastructure/testkit.py"

failed=0
results=$(mktemp -d)
# The clients as installed (a virtual environment, an npm project): apart from the results, which are all tallied.
installs=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  rm -rf "$results" "$installs"
}
trap cleanup EXIT

suite_failed() { echo "test.sh: $1" >&2; failed=$((failed + 1)); }
has_results() { [ -n "$(find "$1" -type f -name "$2" 2>/dev/null | head -n 1)" ]; }

if ! /usr/bin/python3 -c 'import json, xml.etree.ElementTree' 2>/dev/null; then
  echo "test.sh: /usr/bin/python3 is needed to read the test results (apt-get install python3)" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi

# --- .NET -----------------------------------------------------------------------------------------------------
# A hung test fails the run with its name (and a dump) instead of holding CI until its time limit. Every limit a
# test sets itself (tests/Infrastructure/Limits.cs: 2 min a wait, 7 min an export) is below this one, so a test that
# runs out fails with its own reason first.
dotnet test VideoMatch.sln -c Release --nologo --blame-hang --blame-hang-timeout 12m \
  --logger "trx" --results-directory "$results/dotnet"
status=$?
projects=$(find tests -name '*.Tests.csproj' | wc -l)
reported=$(find "$results/dotnet" -maxdepth 1 -name '*.trx' 2>/dev/null | wc -l)
if [ "$reported" -lt "$projects" ]; then
  suite_failed ".NET: $reported of $projects test projects wrote results; the build or a test host failed (see above)"
elif [ "$status" -ne 0 ] && ! grep -qE 'outcome="(Failed|Error|Timeout|Aborted)"' "$results"/dotnet/*.trx; then
  suite_failed ".NET: dotnet test failed outside any test (see above)"
fi

# --- a real server for the Python and Node clients ------------------------------------------------------------
# On port 0 with the test-server settings; its address comes from Kestrel's "Now listening on" line, and it is
# ready when grpc.health.v1 says SERVING.
server_dll="$root/src/VideoMatch.Server/bin/Release/net10.0/VideoMatch.Server.dll"
address=""
if [ -f "$server_dll" ]; then
  mapfile -t settings < <($testkit settings)
  dotnet "$server_dll" "${settings[@]}" --urls "http://127.0.0.1:0" \
    --Logging:LogLevel:Microsoft.Hosting.Lifetime=Information > "$results/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 240); do
    address=$(sed -nE 's#.*Now listening on: http://(127\.0\.0\.1:[0-9]+).*#\1#p' "$results/server.log" | head -n 1)
    [ -n "$address" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.25
  done
  if [ -n "$address" ] && ! $testkit wait-health "$address" 60; then
    address=""
  fi
fi
if [ -z "$address" ]; then
  cat "$results/server.log" 2>/dev/null >&2
  suite_failed "the server for the client tests did not start or never became SERVING; Python and Node suites not run"
else
  echo "client tests against the server at $address"

  # --- Python ---------------------------------------------------------------------------------------------------
  if ! /usr/bin/python3 -c 'import grpc, grpc_tools, numpy' 2>/dev/null; then
    suite_failed "python: /usr/bin/python3 lacks grpcio, grpc_tools or numpy (apt-get install python3-grpcio python3-grpc-tools python3-numpy)"
  elif ! clients/python/generate.sh --check; then
    suite_failed "python: the stubs committed in clients/python are not those of protos/ (run clients/python/generate.sh)"
  elif ! /usr/bin/python3 -m venv --system-site-packages "$installs/python-env" ||
       ! "$installs/python-env/bin/pip" install --no-index --quiet ./clients/python; then
    # As a user installs it (its dependencies are Debian's, seen through --system-site-packages; --no-index: no download).
    suite_failed "python: pip install ./clients/python into a virtual environment failed (apt-get install python3-venv)"
  else
    # The tests import the installed package: testkit.py's folder, not clients/python, is first on sys.path.
    VIDEOMATCH_CLIENT_INSTALLED=1 VIDEOMATCH_ADDRESS="$address" VIDEOMATCH_SERVER_DLL="$server_dll" \
      "$installs/python-env/bin/python" "$root/tests/Infrastructure/testkit.py" unittest clients/python/tests "$results/python.json"
    [ -f "$results/python.json" ] || suite_failed "python: the unittest run wrote no results"
  fi

  # --- Node -----------------------------------------------------------------------------------------------------
  if ! command -v node >/dev/null; then
    suite_failed "node: Node.js is not installed"
  elif [ ! -d clients/node/node_modules ] && ! (cd clients/node && npm ci --no-audit --no-fund); then
    suite_failed "node: npm ci failed in clients/node"
  elif ! mkdir -p "$installs/node-pack" "$installs/node-app" ||
       ! (cd clients/node && npm pack --silent --pack-destination "$installs/node-pack" >/dev/null) ||
       ! (cd "$installs/node-app" && echo '{ "private": true }' > package.json &&
          npm install --no-audit --no-fund --prefer-offline --silent "$installs"/node-pack/videomatch-client-*.tgz); then
    # As a user installs it: the tarball npm pack makes (with its copy of the contract), installed into an empty project.
    suite_failed "node: npm pack of clients/node, or installing its tarball, failed"
  else
    mkdir -p "$results/node"
    (cd clients/node && VIDEOMATCH_CLIENT_PACKAGE="$installs/node-app/node_modules/videomatch-client" VIDEOMATCH_ADDRESS=$address \
      VIDEOMATCH_SERVER_DLL="$server_dll" node --test --test-reporter=spec --test-reporter-destination=stdout \
      --test-reporter=junit --test-reporter-destination="$results/node/junit.xml" test/)
    has_results "$results/node" '*.xml' || suite_failed "node: the test run wrote no results"
  fi
fi

# --- Export ---------------------------------------------------------------------------------------------------
# tools/export against HF's golden fixtures (../shared; those tests skip with a message without them).
if ! /usr/bin/python3 -c 'import torch, onnx, numpy' 2>/dev/null; then
  suite_failed "export: /usr/bin/python3 lacks torch, onnx or numpy (apt-get install python3-torch python3-onnx python3-numpy)"
else
  $testkit unittest tools/export/tests "$results/export.json"
  [ -f "$results/export.json" ] || suite_failed "export: the unittest run wrote no results"
  # The GPU run's script (tools/bench-gpu) dry-run on CPU: the tiny fixture through every step. It drives
  # tools/VideoMatch.Benchmarks, which dotnet test does not build.
  if ! dotnet build tools/VideoMatch.Benchmarks -c Release --nologo -v quiet; then
    suite_failed "bench-gpu: tools/VideoMatch.Benchmarks did not build (see above)"
  else
    $testkit unittest tools/bench-gpu/tests "$results/bench-gpu.json"
    [ -f "$results/bench-gpu.json" ] || suite_failed "bench-gpu: the unittest run wrote no results"
  fi
fi

# --- Chart ----------------------------------------------------------------------------------------------------
if ! command -v yamllint >/dev/null || ! /usr/bin/python3 -c 'import yaml, jsonschema' 2>/dev/null; then
  suite_failed "chart: needs yamllint, python3-yaml and python3-jsonschema (see .ci/run for the apt packages)"
elif ! ./charts/tests/get-helm.sh >/dev/null; then
  suite_failed "chart: could not fetch helm (charts/tests/get-helm.sh, from npm)"
else
  VIDEOMATCH_SERVER_DLL="$server_dll" $testkit unittest charts/tests "$results/chart.json"
  [ -f "$results/chart.json" ] || suite_failed "chart: the unittest run wrote no results"
fi

# --- Totals ---------------------------------------------------------------------------------------------------
echo "results:"
$testkit tally "$results" > "$results/tally.txt"
sed '$d' "$results/tally.txt"
read -r passed failed_tests skipped < <(tail -n 1 "$results/tally.txt")
failed=$((failed + ${failed_tests:-1}))
echo "${passed:-0} passed, $failed failed, ${skipped:-0} skipped"
[ "$failed" -eq 0 ]
