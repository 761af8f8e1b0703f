#!/usr/bin/env bash
# The collector's HTTP API from outside: the release binary on loopback in micro mode,
# exercised by schemathesis against the OpenAPI document it serves at /openapi.json (no
# 5xx; every status, content type, header and body as documented), then pytest specs
# (tests/api/) that check the rows and sessions against the document's schemas and parse
# /metrics with the Prometheus project's OpenMetrics parser. Pinned tools in a virtualenv
# under the target directory. Runnable alone.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/debian.sh
root="$PWD"
target=$(realpath -m "${CARGO_TARGET_DIR:-$PWD/target}")
export CARGO_TARGET_DIR="$target"

step() { printf '\n==> api: %s (%s)\n' "$*" "$(date +%T)"; }

step "schemathesis, prometheus-client, pytest and ruff in $target/apitools"
python3 -c 'import ensurepip, venv' 2>/dev/null || debian_install python3-venv
tools="$target/apitools"
[ -x "$tools/bin/pip" ] || python3 -m venv "$tools"
# Installed again only when the pins change.
stamp="$tools/requirements.installed"
if ! cmp -s tests/api/requirements.txt "$stamp"; then
  "$tools/bin/pip" install -q -r tests/api/requirements.txt
  cp tests/api/requirements.txt "$stamp"
fi

step "lint"
"$tools/bin/ruff" check --config tests/api/ruff.toml tests/api
"$tools/bin/ruff" format --check --config tests/api/ruff.toml tests/api

step "the release collector on loopback (micro mode)"
cargo build -q --release -p sightline-collector
work=$(mktemp -d)
key="api-test-key"
"$target/release/sightline-collector" serve --listen 127.0.0.1:0 --app-key "$key" --micro \
  >"$work/stdout" 2>"$work/stderr" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 300); do
  grep -q '^listening on ' "$work/stdout" 2>/dev/null && break
  kill -0 $pid 2>/dev/null || { cat "$work/stderr"; exit 1; }
  sleep 0.1
done
url="http://$(sed -n 's/^listening on //p' "$work/stdout")"
echo "collector at $url"
export SIGHTLINE_API_URL="$url" SIGHTLINE_API_KEY="$key"

step "pytest: rows, sessions and errors against the document; /metrics by the OpenMetrics parser"
PYTHONDONTWRITEBYTECODE=1 "$tools/bin/pytest" -q -p no:cacheprovider tests/api

step "schemathesis against /openapi.json"
# Seeded and bounded, so a run is repeatable and its length does not depend on luck.
# Run from the scratch directory: schemathesis keeps a cache in its working directory.
cd "$work"
PYTHONPATH="$root/tests/api" SCHEMATHESIS_HOOKS=hooks "$tools/bin/schemathesis" \
  --config-file "$root/tests/api/schemathesis.toml" --no-color run "$url/openapi.json" \
  --header "x-sightline-app-key: $key" \
  --max-examples 300 \
  --seed 1 \
  --workers 1 \
  --request-timeout 15

kill -0 $pid || { echo "the collector died:"; cat "$work/stderr"; exit 1; }
