// What a visitor downloads: the SDK's JavaScript (bundled with the wasm-bindgen glue and
// minified by esbuild) and its WebAssembly module (wasm-opt -Oz), each `gzip -9`, against
// the 28 KB budget; then what takes the module's bytes, from the name section of the module
// before wasm-opt (`node bench/size.mjs <module with names>`: after -Oz inlining and merging
// the names no longer say whose code a body is; -Oz shrinks the whole by about 5%).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BUDGET = 28 * 1000;
const here = new URL('..', import.meta.url).pathname;
const bin = join(here, 'node_modules/.bin');
const scratch = mkdtempSync(join(tmpdir(), 'sightline-size-'));

const gzip9 = (file) => execFileSync('gzip', ['-9', '-c', file], { maxBuffer: 1 << 26 }).length;

const bundle = join(scratch, 'index.min.js');
execFileSync(join(bin, 'esbuild'), [join(here, 'dist/index.js'), '--bundle', '--format=esm', '--minify', `--outfile=${bundle}`], {
  stdio: 'ignore',
});
const wasm = join(here, 'dist/gen/sightline_bg.wasm');
const js = { raw: readFileSync(bundle).length, gz: gzip9(bundle) };
const mod = { raw: readFileSync(wasm).length, gz: gzip9(wasm) };
const total = js.gz + mod.gz;
console.log('== @sightline/web download size (minified, gzip -9)');
console.log(`JS (runtime + glue)   ${String(js.raw).padStart(7)} B raw  ${String(js.gz).padStart(6)} B gz`);
console.log(`wasm (core, -Oz)      ${String(mod.raw).padStart(7)} B raw  ${String(mod.gz).padStart(6)} B gz`);
console.log(`total                                 ${String(total).padStart(6)} B gz  budget ${BUDGET} B: ${total <= BUDGET ? 'within' : `over by ${total - BUDGET} B`}`);

const named = process.argv[2];
if (named !== undefined) {
  const sizes = functionSizes(readFileSync(named));
  const byOwner = new Map();
  let code = 0;
  for (const { name, size } of sizes) {
    code += size;
    const owner = ownerOf(name);
    byOwner.set(owner, (byOwner.get(owner) ?? 0) + size);
  }
  console.log(`\n== code by owner (before wasm-opt; ${code} B of function bodies)`);
  for (const [owner, size] of [...byOwner].sort((a, b) => b[1] - a[1]).slice(0, 12)) {
    console.log(`${String(size).padStart(7)} B  ${(100 * size / code).toFixed(1).padStart(5)}%  ${owner}`);
  }
  console.log('\n== largest functions');
  for (const { name, size } of sizes.sort((a, b) => b.size - a.size).slice(0, 15)) {
    console.log(`${String(size).padStart(7)} B  ${name.slice(0, 110)}`);
  }
}

/** The crate (or export shim) a function belongs to, from its demangled name. */
function ownerOf(name) {
  const stripped = name.replace(/::h[0-9a-f]{16}$/, '').replace(/^<+/, '');
  const m = /^([a-z_][a-z0-9_]*)(\[[0-9a-f]+\])?::/.exec(stripped);
  if (m !== null) return m[1];
  return /^[a-z_]+$/.test(stripped.split(' ')[0]) ? 'exports (wasm-bindgen shims)' : stripped.slice(0, 40);
}

/** Each function body's size and name (from the `name` section). */
function functionSizes(bytes) {
  let i = 8;
  const leb = () => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = bytes[i++];
      result += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (b < 0x80) return result;
    }
  };
  const names = new Map();
  let imported = 0;
  const bodies = [];
  while (i < bytes.length) {
    const id = bytes[i++];
    const size = leb();
    const end = i + size;
    if (id === 0) {
      const len = leb();
      const name = new TextDecoder().decode(bytes.subarray(i, i + len));
      i += len;
      while (name === 'name' && i < end) {
        const sub = bytes[i++];
        const subSize = leb();
        const subEnd = i + subSize;
        if (sub === 1) {
          for (let n = leb(); n > 0; n--) {
            const index = leb();
            const l = leb();
            names.set(index, new TextDecoder().decode(bytes.subarray(i, i + l)));
            i += l;
          }
        }
        i = subEnd;
      }
    } else if (id === 2) {
      for (let n = leb(); n > 0; n--) {
        // Module and field names; `i += leb()` would read `i` before leb moves it.
        for (let part = 0; part < 2; part++) {
          const len = leb();
          i += len;
        }
        const kind = bytes[i++];
        if (kind === 0) {
          leb();
          imported += 1;
        } else if (kind === 1) {
          i += 1;
          const flags = bytes[i++];
          leb();
          if (flags & 1) leb();
        } else if (kind === 2) {
          const flags = bytes[i++];
          leb();
          if (flags & 1) leb();
        } else if (kind === 3) i += 2;
        else if (kind === 4) { i += 1; leb(); }
      }
    } else if (id === 10) {
      for (let n = leb(), k = 0; k < n; k++) {
        const len = leb();
        bodies.push({ index: imported + k, size: len });
        i += len;
      }
    }
    i = end;
  }
  return bodies.map((b) => ({ name: names.get(b.index) ?? `function ${b.index}`, size: b.size }));
}
