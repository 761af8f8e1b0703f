// The cross-platform conformance suite (tests/conformance/README.md) on the web build,
// through the browser runtime's own host loop (`Host`: store operations, uploads over its
// transport, timers) in virtual time: the host's timers are replaced, and the runner calls
// `handle_timeout` at each deadline itself. Every expectation is compared exactly, digests
// included. The one
// figure that may differ is `bytes_delivered`: the web build compresses with the core's
// compact encoder, so its bodies are other gzip bytes of the same protobuf; it must equal
// the length of the batch members (a body's first gzip member, the send info following it)
// this runner saw delivered.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { gunzipSync, inflateRawSync } from 'node:zlib';

import './wasm.mjs';
import { Config, Logger, Stored, refusal } from '../dist/core.js';
import { Host } from '../dist/host.js';
import { Capture } from '../dist/testing.js';

const dir = new URL('../../../tests/conformance/scenarios/', import.meta.url);
const WALL0 = 1_700_000_000_000;
const [PUT, REMOVE, APPEND, CLEAR] = [1, 2, 3, 4];

// Virtual time: the host arms no real timer; the runner fires each deadline at its time.
globalThis.setTimeout = () => 0;
globalThis.clearTimeout = () => {};

/** A scenario's `config` (the core's serde form) on the module's `Config`. */
function config(json, seed) {
  const c = new Config();
  for (const [key, value] of Object.entries(json)) {
    if (key === 'seed') continue;
    if (key === 'contract') {
      for (const [k, v] of Object.entries(value)) {
        if (k === 'pages') c.set_pages(v);
        else if (k === 'require_artwork') c.set_require_artwork(v);
        else if (typeof v === 'string') c.set_text(`contract.${k}`, v);
        else c.set_number(`contract.${k}`, v);
      }
    } else if (typeof value === 'string') c.set_text(key, value);
    else c.set_number(key, value);
  }
  c.set_seed(BigInt(seed));
  return c;
}

/** The length of a body's first gzip member: header, deflate stream, CRC and size. */
function firstMember(body) {
  const [id1, id2, method, flags] = body;
  assert.deepEqual([id1, id2, method, flags], [0x1f, 0x8b, 8, 0], 'a plain gzip header');
  const { engine } = inflateRawSync(body.subarray(10), { info: true });
  return 10 + engine.bytesWritten + 8;
}

/**
 * The scenario's store: values and one journal, the operations failing while `failures`
 * lasts (`fail_store`), which the web's SlotStore never reports (it falls back to memory).
 */
class ScenarioStore {
  values = new Map();
  journal = new Uint8Array(0);
  failures = 0;

  apply(op) {
    if (this.failures > 0) {
      this.failures -= 1;
      return { ok: false, quota: false };
    }
    if (op.kind === PUT) this.values.set(op.key, op.bytes);
    else if (op.kind === REMOVE) this.values.delete(op.key);
    else if (op.kind === APPEND) {
      const bytes = op.bytes;
      const joined = new Uint8Array(this.journal.length + bytes.length);
      joined.set(this.journal);
      joined.set(bytes, this.journal.length);
      this.journal = joined;
    } else if (op.kind === CLEAR) this.journal = new Uint8Array(0);
    return { ok: true, quota: false };
  }

  stored() {
    const stored = new Stored();
    for (const [k, v] of this.values) stored.put(k, v);
    stored.set_journal(this.journal);
    return stored;
  }
}

/** Lets every answer reach the host: microtasks, then a turn of the event loop. */
async function settle(host) {
  do await new Promise((resolve) => setImmediate(resolve));
  while (host.uploading);
}

/** Runs `scenario` through the browser runtime's host loop (`Host`) in virtual time. */
async function run(scenario) {
  const store = new ScenarioStore();
  const responses = [...(scenario.responses ?? [])];
  const out = { refused: [], uploads: [], delivered: [] };
  let bodiesDelivered = 0;
  const clock = { t: 0, mono: () => clock.t, wall: () => WALL0 + clock.t };
  const transport = (url, init) => {
    assert.equal(url, 'https://collect.example/v1/batches');
    const response = responses.shift() ?? { status: 200 };
    const body = init.body;
    const status = response.network_error ? 0 : response.status;
    out.uploads.push({ at: clock.t, sha256: createHash('sha256').update(gunzipSync(body)).digest('hex'), response });
    if (status >= 200 && status < 300) {
      bodiesDelivered += firstMember(body);
      const capture = new Capture();
      capture.receive(body);
      for (const i of capture.impressions) {
        out.delivered.push({
          upload: out.uploads.length - 1,
          seq: i.seq,
          page: i.page,
          page_view: i.page_view,
          request_id: i.request_id,
          item_id: i.item_id,
          artwork_id: i.artwork_id,
          row: i.row,
          column: i.column,
          first_visible_ms: i.first_visible_ms,
          visible_ms: i.visible_ms,
          max_visible_pct: i.max_visible_pct,
          focused_ms: i.focused_ms,
        });
      }
      capture.free();
    }
    return Promise.resolve({ status, retryAfter: response.retry_after ?? null });
  };
  const open = (seed) => {
    const logger = Logger.resume(config(scenario.config, seed), store.stored(), clock.mono(), clock.wall());
    const host = new Host(logger, store, 'https://collect.example', transport, clock, (e) => {
      throw e;
    });
    host.drain();
    return host;
  };
  let host = open(scenario.config.seed);
  await settle(host);
  const ids = new Map();
  const timers = async (until) => {
    for (;;) {
      const d = host.read(-1, (l) => l.poll_timeout());
      if (d < 0 || d > until) return;
      clock.t = d;
      host.input(undefined, (l, m, w) => l.handle_timeout(m, w));
      await settle(host);
      const next = host.read(-1, (l) => l.poll_timeout());
      assert.ok(next < 0 || next > d, `the deadline does not advance past ${d}`);
    }
  };

  let ordinal = 0;
  for (const [index, step] of scenario.steps.entries()) {
    await timers(step.at);
    clock.t = step.at;
    const [kind, body] = Object.entries(step).find(([k]) => k !== 'at');
    const pv = (n) => ids.get(n) ?? 0;
    const item = (i) => [i.item_id, i.artwork_id ?? null, i.row, i.column];
    let value = 0;
    const input = (f) => {
      value = host.input(Number.NaN, f);
      assert.ok(!Number.isNaN(value ?? 0), 'the host took the input');
    };
    switch (kind) {
      case 'start_page_view': {
        ordinal += 1;
        const layout = body.layout;
        input((l, m, w) =>
          l.start_page_view(
            body.page,
            body.request_id ?? null,
            layout ? layout.flat() : null,
            layout ? new Uint32Array(layout.map((r) => r.length)) : null,
            m,
            w,
          ),
        );
        if (refusal(value) === null) ids.set(ordinal, value);
        break;
      }
      case 'end_page_view':
        input((l, m, w) => l.end_page_view(pv(body.page_view), m, w));
        break;
      case 'visibility':
        input((l, m, w) => l.visibility(pv(body.page_view), ...item(body.item), body.fraction, m, w));
        break;
      case 'focus':
        input((l, m, w) => l.focus(pv(body.page_view), ...item(body.item), body.focused, m, w));
        break;
      case 'app_hidden':
        input((l, m, w) => l.app_hidden(m, w));
        break;
      case 'app_visible':
        input((l, m, w) => l.app_visible(m, w));
        break;
      case 'impression':
        input((l, m, w) =>
          l.impression(
            pv(body.page_view),
            ...item(body.item),
            body.first_visible_at,
            body.visible_ms,
            body.max_visible_fraction,
            body.focused_ms,
            m,
            w,
          ),
        );
        break;
      case 'flush':
        input((l, m, w) => l.flush(m, w));
        break;
      case 'set_enabled':
        input((l, m, w) => l.set_enabled(body.enabled, body.purge, m, w));
        break;
      case 'restart':
        host.close();
        host = open(body.seed);
        break;
      case 'fail_store':
        store.failures += body.count;
        break;
      default:
        throw new Error(`unknown step kind ${kind}`);
    }
    const rule = refusal(value ?? 0);
    if (rule !== null) out.refused.push({ step: index, rule });
    await settle(host);
  }
  await timers(scenario.until);
  out.stats = host.stats();
  host.close();
  return { out, bodiesDelivered };
}

const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

test('the suite has scenarios to run', () => {
  assert.ok(files.length >= 30, `found ${files.length}`);
});

for (const file of files) {
  const scenario = JSON.parse(readFileSync(new URL(file, dir), 'utf8'));
  test(`conformance: ${scenario.name}`, async () => {
    const { out, bodiesDelivered } = await run(scenario);
    const expect = scenario.expect;
    assert.deepEqual(out.refused, expect.refused, 'refused');
    assert.deepEqual(out.uploads, expect.uploads, 'uploads');
    assert.deepEqual(out.delivered, expect.delivered, 'delivered');
    assert.equal(out.stats.bytes_delivered, bodiesDelivered, 'bytes_delivered: the batch members delivered');
    assert.deepEqual(
      { ...out.stats, bytes_delivered: 0 },
      { ...expect.stats, bytes_delivered: 0 },
      'stats',
    );
  });
}
