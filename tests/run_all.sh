#!/usr/bin/env bash
# Runs every check and test of the repository, one script per platform (each runnable
# alone), and skips nothing. Each installs what a fresh machine lacks. Used by .ci/run and
# by developers alike.
set -euo pipefail
cd "$(dirname "$0")/.."

for platform in rust fuzz api python kotlin swift c firmware web; do
  started=$SECONDS
  bash "tests/$platform.sh"
  printf '\n==> %s: passed in %d s\n' "$platform" $((SECONDS - started))
done
