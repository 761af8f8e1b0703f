// The browser runtime's glue, in Node against the real module: storage (binary values, a
// quota error falling back to memory), the host loop (uploads, Retry-After, a reload
// resuming the queue), uploads as requests within the keepalive budget, and configuration
// errors. The SDK as started by a page is in sdk.test.mjs, traps in trap.test.mjs;
// browser-only parts (observers, lifecycle, Web Locks) are specified in Chromium.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import './wasm.mjs';
import { Logger, coreConfig, outcome } from '../dist/core.js';
import { Host } from '../dist/host.js';
import { SlotStore, fromBinary, toBinary } from '../dist/store.js';
import { Capture } from '../dist/testing.js';
import { KEEPALIVE_BYTES, keepaliveBytesInFlight, request } from '../dist/transport.js';
import { FakeClock, FakeStorage } from './fakes.mjs';

const options = { appId: 'com.example.web', appVersion: '1.0.0', appKey: 'key-1' };

/** A host over `storage` whose uploads `answer` answers, captured when 2xx. */
function host(storage, { capture = new Capture(), answer = () => ({ status: 200, retryAfter: null }), clock = new FakeClock() } = {}) {
  const store = new SlotStore(storage, 'sightline/tab-1/');
  const traps = [];
  const logger = Logger.resume(coreConfig(options), store.stored(), clock.mono(), clock.wall());
  const h = new Host(logger, store, 'https://collect.example', capture.transport(answer), clock, (e) => traps.push(e));
  h.drain();
  return { h, store, capture, clock, traps };
}

/** Records `n` pre-qualified impressions, each visible 1.5 s, on a new page view. */
function record(h, n, clock) {
  const pv = h.input(0, (l, m, w) => l.start_page_view('home', null, null, null, m, w));
  const first = clock.mono();
  clock.t += 2_000;
  for (let i = 0; i < n; i++) {
    const value = h.input(0, (l, m, w) =>
      l.impression(pv, `title:${i}`, null, 0, i, first, 1500, 1, 0, m, w),
    );
    assert.equal(outcome(value).kind, 'accepted');
  }
}

/** Lets the transport's promises settle. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

test('every byte value survives the binary string localStorage holds', () => {
  const bytes = new Uint8Array(20_000).map((_, i) => (i * 7) % 256);
  const s = toBinary(bytes);
  assert.equal(s.length, bytes.length);
  assert.deepEqual(fromBinary(s), bytes);
});

test('a closed batch is uploaded, acknowledged and delivered exactly once', async () => {
  const { h, capture, clock } = host(new FakeStorage());
  record(h, 3, clock);
  h.input(undefined, (l, m, w) => l.flush(m, w));
  await settle();
  assert.deepEqual(capture.impressions.map((i) => i.seq), [1, 2, 3]);
  assert.equal(h.stats().delivered, 3);
  assert.equal(h.stats().bytes_delivered > 0, true);
  capture.assertNoViolations();
  capture.assertAccounted();
  h.close();
});

test('a reload resumes the stored queue: what the last page could not send is sent once', async () => {
  const storage = new FakeStorage();
  const offline = host(storage, { answer: () => ({ status: 0, retryAfter: null }) });
  record(offline.h, 2, offline.clock);
  offline.h.input(undefined, (l, m, w) => l.app_hidden(m, w));
  await settle();
  assert.equal(offline.capture.uploads, 0);
  const session = offline.h.read('', (l) => l.session_id);
  offline.h.close();

  const reloaded = host(storage);
  // The failed attempt's backoff was stored with the batch; it still applies after a reload.
  reloaded.clock.t += 120_000;
  reloaded.h.input(undefined, (l, m, w) => l.handle_timeout(m, w));
  await settle();
  assert.deepEqual(reloaded.capture.impressions.map((i) => i.seq), [1, 2]);
  assert.equal(reloaded.capture.impressions[0].session_id, session, 'the same session goes on');
  reloaded.capture.assertAccounted();
  reloaded.h.close();
});

test('Retry-After from the answer sets the core next deadline', async () => {
  const clock = new FakeClock(1_000);
  let answers = 0;
  const { h } = host(new FakeStorage(), {
    clock,
    answer: () => (answers++ === 0 ? { status: 503, retryAfter: '120' } : { status: 200, retryAfter: null }),
  });
  record(h, 1, clock);
  h.input(undefined, (l, m, w) => l.flush(m, w));
  await settle();
  assert.equal(h.stats().retries, 0);
  assert.ok(h.read(-1, (l) => l.poll_timeout()) >= 1_000 + 120_000, 'retry no sooner than Retry-After');
  h.close();
});

test('a quota error moves the slot to memory: counted, logging goes on, the stale copy is removed', async () => {
  const storage = new FakeStorage(600);
  const { h, store, capture, clock } = host(storage, { answer: () => ({ status: 0, retryAfter: null }) });
  record(h, 40, clock);
  h.input(undefined, (l, m, w) => l.flush(m, w));
  assert.equal(store.medium, 'memory');
  assert.equal(store.fallbacks, 1);
  assert.equal(store.fallbackReason, 'QuotaExceededError');
  assert.equal([...storage.map.keys()].filter((k) => k.startsWith('sightline/tab-1/')).length, 0);
  assert.equal(h.stats().store_errors, 0, 'the core saw every operation succeed');
  assert.equal(h.stats().recorded, 40);
  await settle();
  assert.equal(capture.uploads, 0);
  h.close();
});

test('an upload becomes a POST of its path, headers and body, with keepalive within 64 KiB', () => {
  const clock = new FakeClock();
  const logger = Logger.resume(coreConfig(options), new SlotStore(null, 'p/').stored(), 0, clock.wall());
  const pv = logger.start_page_view('home', null, null, null, 0, clock.wall());
  assert.equal(logger.impression(pv, 'title:1', null, 0, 0, 0, 1500, 1, 0, 2000, clock.wall()), 1);
  logger.flush(2000, clock.wall());
  let op;
  while ((op = logger.poll_store_op()) !== undefined) {
    const id = op.id;
    op.free();
    logger.store_result(id, true, false);
  }
  const upload = logger.poll_upload(2000, clock.wall());
  const { url, init, done } = request('https://collect.example/', upload);
  done();
  assert.equal(url, 'https://collect.example/v1/batches');
  assert.equal(init.method, 'POST');
  assert.equal(init.headers['x-sightline-app-key'], 'key-1');
  assert.equal(init.headers['content-type'], 'application/x-sightline-batch');
  assert.deepEqual([init.body[0], init.body[1]], [0x1f, 0x8b]);
  assert.equal(init.keepalive, init.body.length <= KEEPALIVE_BYTES);
  assert.equal(init.keepalive, true);
  upload.free();
  logger.free();
});

test('a bad setting is refused with its name', () => {
  assert.throws(() => coreConfig({ ...options, maxAttempts: 1.5 }), /max_attempts: expected a whole number/);
  assert.throws(() => coreConfig({ ...options, platform: 'toaster' }), /platform: expected tv, android, ios, web or other/);
  const config = coreConfig({ ...options, appId: '' });
  assert.throws(() => Logger.resume(config, new SlotStore(null, 'p/').stored(), 0, 0), /app_id is not a well-formed id/);
});

test('worst-case ids (64 random characters, item and artwork) still give bodies a keepalive request carries', async () => {
  const bodies = [];
  const capture = new Capture();
  const clock = new FakeClock();
  const store = new SlotStore(null, 'sightline/big/');
  const logger = Logger.resume(coreConfig(options), store.stored(), 0, clock.wall());
  const h = new Host(logger, store, 'https://collect.example', (url, init) => {
    bodies.push(init);
    capture.receive(init.body);
    return Promise.resolve({ status: 200, retryAfter: null });
  }, clock, () => {});
  h.drain();
  // A seeded generator: the same ids every run.
  let x = 0x2545f491;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const id = () => Array.from({ length: 64 }, () => alphabet[((x = (x * 1103515245 + 12345) >>> 0) >>> 16) % 62]).join('');
  const pv = h.input(0, (l, m, w) => l.start_page_view('home', null, null, null, m, w));
  clock.t = 2_000;
  for (let i = 0; i < 1_000; i++) {
    const value = h.input(0, (l, m, w) => l.impression(pv, id(), id(), Math.floor(i / 100), i % 100, 0, 1500, 1, 0, m, w));
    assert.equal(outcome(value).kind, 'accepted');
    await settle();
  }
  h.input(undefined, (l, m, w) => l.flush(m, w));
  await settle();
  assert.ok(bodies.length > 1, `the core closed batches by size (${bodies.length} uploads)`);
  for (const init of bodies) {
    assert.ok(init.body.length <= KEEPALIVE_BYTES, `${init.body.length} bytes`);
    assert.equal(init.keepalive, true);
  }
  assert.equal(capture.impressions.length, 1_000);
  capture.assertAccounted();
  h.close();
});

test('a page killed with its batch open: the next page replays the journal, every append in order', async () => {
  const storage = new FakeStorage();
  const killed = host(storage);
  record(killed.h, 12, killed.clock);
  const appends = [...storage.map.keys()].filter((k) => k.startsWith('sightline/tab-1/j/'));
  assert.ok(appends.length >= 10, `one key per append (${appends.length}), so j/10 must sort after j/9`);
  // No hide, no flush: the page is gone.
  killed.h.close();

  const next = host(storage);
  next.h.input(undefined, (l, m, w) => l.flush(m, w));
  await settle();
  assert.deepEqual(
    next.capture.impressions.map((i) => i.item_id),
    Array.from({ length: 12 }, (_, i) => `title:${i}`),
  );
  next.capture.assertAccounted();
  next.h.close();
});

test('a transport that rejects is a network error: the batch stays queued and is retried', async () => {
  const clock = new FakeClock();
  let calls = 0;
  const capture = new Capture();
  const store = new SlotStore(new FakeStorage(), 'sightline/t/');
  const logger = Logger.resume(coreConfig(options), store.stored(), 0, clock.wall());
  const h = new Host(logger, store, 'https://collect.example', (url, init) => {
    calls += 1;
    if (calls === 1) return Promise.reject(new TypeError('Failed to fetch'));
    return capture.transport()(url, init);
  }, clock, () => {});
  h.drain();
  record(h, 2, clock);
  h.input(undefined, (l, m, w) => l.flush(m, w));
  await settle();
  assert.equal(h.counters.traps, 0);
  clock.t += 120_000;
  h.input(undefined, (l, m, w) => l.handle_timeout(m, w));
  await settle();
  assert.equal(calls, 2, 'the next attempt was made');
  assert.deepEqual(capture.impressions.map((i) => i.seq), [1, 2]);
  h.close();
});

test('keepalive requests in flight together stay within 64 KiB; one beyond goes without keepalive', () => {
  const upload = (n) => ({ path: '/v1/batches', headers: [], body: new Uint8Array(n) });
  const own = request('https://collect.example', upload(40_000));
  const adopted = request('https://collect.example', upload(40_000));
  assert.deepEqual([own.init.keepalive, adopted.init.keepalive], [true, false]);
  assert.equal(keepaliveBytesInFlight(), 40_000);
  own.done();
  own.done();
  assert.equal(keepaliveBytesInFlight(), 0, 'answered once, returned once');
  adopted.done();
  assert.equal(keepaliveBytesInFlight(), 0);
  const full = request('https://collect.example', upload(KEEPALIVE_BYTES));
  assert.equal(full.init.keepalive, true);
  full.done();
});
