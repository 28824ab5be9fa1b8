#!/usr/bin/env bash
# Runs every test suite of the project and ends with one line: "N passed, N failed, N skipped".
# Exit status: 0 only when everything built and no test failed.
set -uo pipefail
cd "$(dirname "$0")"

passed=0 failed=0 skipped=0 broken=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# .NET: engine unit tests and the server's functional tests (real gRPC service, in memory).
dotnet test VideoMatch.sln -c Release --nologo 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
while read -r f p s; do
  failed=$((failed + f)); passed=$((passed + p)); skipped=$((skipped + s))
done < <(sed -nE 's/.*(Passed|Failed)! +- +Failed: +([0-9]+), +Passed: +([0-9]+), +Skipped: +([0-9]+).*/\2 \3 \4/p' "$log")
if [ "$status" -ne 0 ] && ! grep -qE '(Passed|Failed)! +- +Failed' "$log"; then
  echo "test.sh: the .NET build or test run failed before any test ran (see above)" >&2
  broken=1
fi
[ "$status" -ne 0 ] && [ "$failed" -eq 0 ] && broken=1

failed=$((failed + broken))
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
