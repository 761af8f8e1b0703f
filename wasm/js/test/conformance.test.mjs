// The cross-platform conformance suite (tests/conformance/README.md) on the web build: the
// host loop the README describes, driven through the module's exports as the browser
// runtime drives them, with every expectation compared exactly, digests included. The one
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
import { Config, Logger, Stored, coreStats, refusal } from '../dist/core.js';
import { Capture } from '../dist/testing.js';

const dir = new URL('../../../tests/conformance/scenarios/', import.meta.url);
const WALL0 = 1_700_000_000_000;
const [PUT, REMOVE, APPEND, CLEAR] = [1, 2, 3, 4];

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

function run(scenario) {
  const store = { values: new Map(), journal: new Uint8Array(0) };
  let failures = 0;
  const responses = [...(scenario.responses ?? [])];
  const out = { refused: [], uploads: [], delivered: [] };
  let bodiesDelivered = 0;
  const resume = (seed, t) => {
    const stored = new Stored();
    for (const [k, v] of store.values) stored.put(k, v);
    stored.set_journal(store.journal);
    return Logger.resume(config(scenario.config, seed), stored, t, WALL0 + t);
  };
  let logger = resume(scenario.config.seed, 0);
  const ids = new Map();

  const drain = (t) => {
    for (;;) {
      let op;
      while ((op = logger.poll_store_op()) !== undefined) {
        let ok = true;
        if (failures > 0) {
          failures -= 1;
          ok = false;
        } else if (op.kind === PUT) store.values.set(op.key, op.bytes);
        else if (op.kind === REMOVE) store.values.delete(op.key);
        else if (op.kind === APPEND) {
          const bytes = op.bytes;
          const joined = new Uint8Array(store.journal.length + bytes.length);
          joined.set(store.journal);
          joined.set(bytes, store.journal.length);
          store.journal = joined;
        } else if (op.kind === CLEAR) store.journal = new Uint8Array(0);
        const id = op.id;
        op.free();
        assert.ok(logger.store_result(id, ok, false), 'the operation handed out is acknowledged');
      }
      const upload = logger.poll_upload(t, WALL0 + t);
      if (upload === undefined) break;
      const response = responses.shift() ?? { status: 200 };
      const body = upload.body;
      const id = upload.id;
      upload.free();
      const status = response.network_error ? 0 : response.status;
      assert.ok(logger.upload_result(id, status, response.retry_after ?? null, t, WALL0 + t));
      const sha256 = createHash('sha256').update(gunzipSync(body)).digest('hex');
      out.uploads.push({ at: t, sha256, response });
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
    }
  };
  const timers = (until) => {
    for (;;) {
      const d = logger.poll_timeout();
      if (d < 0 || d > until) return;
      logger.handle_timeout(d, WALL0 + d);
      drain(d);
      const next = logger.poll_timeout();
      assert.ok(next < 0 || next > d, `the deadline does not advance past ${d}`);
    }
  };

  drain(0);
  let ordinal = 0;
  scenario.steps.forEach((step, index) => {
    const t = step.at;
    timers(t);
    const [kind, body] = Object.entries(step).find(([k]) => k !== 'at');
    const pv = (n) => ids.get(n) ?? 0;
    const item = (i) => [i.item_id, i.artwork_id ?? null, i.row, i.column];
    const w = WALL0 + t;
    let value = 0;
    switch (kind) {
      case 'start_page_view': {
        ordinal += 1;
        const layout = body.layout;
        value = logger.start_page_view(
          body.page,
          body.request_id ?? null,
          layout ? layout.flat() : null,
          layout ? new Uint32Array(layout.map((r) => r.length)) : null,
          t,
          w,
        );
        if (refusal(value) === null) ids.set(ordinal, value);
        break;
      }
      case 'end_page_view':
        value = logger.end_page_view(pv(body.page_view), t, w);
        break;
      case 'visibility':
        value = logger.visibility(pv(body.page_view), ...item(body.item), body.fraction, t, w);
        break;
      case 'focus':
        value = logger.focus(pv(body.page_view), ...item(body.item), body.focused, t, w);
        break;
      case 'app_hidden':
        logger.app_hidden(t, w);
        break;
      case 'app_visible':
        logger.app_visible(t, w);
        break;
      case 'impression':
        value = logger.impression(
          pv(body.page_view),
          ...item(body.item),
          body.first_visible_at,
          body.visible_ms,
          body.max_visible_fraction,
          body.focused_ms,
          t,
          w,
        );
        break;
      case 'flush':
        logger.flush(t, w);
        break;
      case 'set_enabled':
        logger.set_enabled(body.enabled, body.purge, t, w);
        break;
      case 'restart':
        logger.free();
        logger = resume(body.seed, t);
        break;
      case 'fail_store':
        failures += body.count;
        break;
      default:
        throw new Error(`unknown step kind ${kind}`);
    }
    const rule = refusal(value);
    if (rule !== null) out.refused.push({ step: index, rule });
    drain(t);
  });
  timers(scenario.until);
  out.stats = coreStats(logger);
  logger.free();
  return { out, bodiesDelivered };
}

const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

test('the suite has scenarios to run', () => {
  assert.ok(files.length >= 30, `found ${files.length}`);
});

for (const file of files) {
  const scenario = JSON.parse(readFileSync(new URL(file, dir), 'utf8'));
  test(`conformance: ${scenario.name}`, () => {
    const { out, bodiesDelivered } = run(scenario);
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
