#!/usr/bin/env bash
# Web: the core compiled to wasm and the npm package @sightline/web. Installs what a fresh
# machine lacks (the wasm32 target, wasm-bindgen-cli of the pinned version, Debian's
# Chromium, the npm dev dependencies), builds the package with wasm/build.sh, then: lints
# (clippy for wasm32, tsc, the README quickstart type-checked against the package's .d.ts),
# the conformance suite and the glue's specs in Node, the browser specs in real headless
# Chromium against the release collector on loopback, and the benches (download size
# against the budget, main-thread cost of a 1,000-tile scroll). Runnable alone.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/debian.sh

step() { printf '\n==> web: %s\n' "$*"; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
bindgen_version=$(sed -n 's/^wasm-bindgen = { version = "=\([0-9.]*\)".*/\1/p' wasm/Cargo.toml)

step "toolchain"
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$bindgen_version" ]; then
  # --locked fails for this crate (see ../shared/TOOLCHAIN.md).
  cargo install wasm-bindgen-cli --version "$bindgen_version"
fi
missing=$(debian_missing chromium)
[ -z "$missing" ] || debian_install $missing
command -v node >/dev/null || debian_install nodejs npm
(cd wasm/js && npm ci --no-audit --no-fund --loglevel=error)

step "build: the collector (release) and the package"
cargo build -q --release -p sightline-collector
bash wasm/build.sh

step "lints"
cargo clippy -q -p sightline-wasm --target wasm32-unknown-unknown --profile wasm -- -D warnings
cargo clippy -q -p sightline-wasm --target wasm32-unknown-unknown --features kit -- -D warnings
(cd wasm/js && node_modules/.bin/tsc -p . --noEmit)
types=$CARGO_TARGET_DIR/web-types
rm -rf "$types" && mkdir -p "$types"
{
  echo "// README.md's web quickstart, checked against the package's declarations."
  sed -n '/<!-- quickstart:web -->/,/^```$/p' README.md | sed '1,2d;$d'
  echo "export {};"
} >"$types/quickstart.ts"
grep -q 'startPageView' "$types/quickstart.ts" || { echo "README.md has no web quickstart" >&2; exit 1; }
cat >"$types/tsconfig.json" <<JSON
{
  "compilerOptions": {
    "target": "es2022", "module": "es2022", "moduleResolution": "bundler", "strict": true,
    "lib": ["es2022", "esnext.disposable", "dom", "dom.iterable"], "noEmit": true,
    "paths": { "@sightline/web": ["$PWD/wasm/js/dist/index.d.ts"] }
  },
  "files": ["quickstart.ts"]
}
JSON
wasm/js/node_modules/.bin/tsc -p "$types"

step "Node: the conformance suite on the wasm build, the glue's specs"
(cd wasm/js && node --test test/*.test.mjs)

step "Chromium: the SDK in a real browser against the real collector"
(cd wasm/js && node --test --test-concurrency=1 test/browser/*.test.mjs)

step "benchmarks (figures printed, not asserted)"
(cd wasm/js && node bench/size.mjs "$CARGO_TARGET_DIR/sightline-web-named.wasm" && node bench/longtask.mjs 2>/dev/null)
