// The SDK as a page starts it (`start()`), in Node with the browser's storages replaced by
// fakes: tabs sharing an origin without Web Locks (Node has none, like older TV browsers),
// apps sharing an origin, storage that fails or is blocked, bad positions, and what the SDK
// answers once it is closed. Chromium specs cover the same with Web Locks (test/browser).
import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';

import './wasm.mjs';
import { AWAY_STALE_MS, STALE_MS, start } from '../dist/index.js';
import { Capture } from '../dist/testing.js';
import { FakeClock, FakeStorage } from './fakes.mjs';

const base = { endpoint: 'https://collect.example', appId: 'com.example.web', appVersion: '1.0.0', appKey: 'key-1' };
const offline = () => Promise.resolve({ status: 0, retryAfter: null });

let open = [];
let clock;

beforeEach(() => {
  clock = new FakeClock(10_000);
  globalThis.localStorage = new FakeStorage();
  globalThis.sessionStorage = new FakeStorage();
});

afterEach(() => {
  for (const sdk of open) sdk.close();
  open = [];
  delete globalThis.localStorage;
  delete globalThis.sessionStorage;
});

/** Each tab's `window` and `document`, where its lifecycle events are dispatched. */
const pages = new WeakMap();

/**
 * A tab: the SDK started with `options`, its own sessionStorage unless one is given, and
 * its own `window` and `document` (event targets; the document visible).
 */
async function tab(options = {}, session = new FakeStorage()) {
  globalThis.sessionStorage = session;
  const page = { window: new EventTarget(), document: Object.assign(new EventTarget(), { visibilityState: 'visible' }) };
  globalThis.window = page.window;
  globalThis.document = page.document;
  try {
    const sdk = await start({ ...base, clock, adoptScanMs: 1_000, transport: offline, ...options });
    open.push(sdk);
    pages.set(sdk, page);
    return sdk;
  } finally {
    delete globalThis.window;
    delete globalThis.document;
  }
}

/**
 * A new tab that adopts `n` slots and sends them to `capture`: the clock moves on once they
 * are adopted, past the backoff of the failed attempts the closed tabs left.
 */
async function adopterOf(n, capture) {
  const adopter = await tab({ transport: capture.transport() });
  await eventually('adopted', () => adopter.stats().adopted === n);
  clock.t += 60_000;
  await eventually('sent', () => adopter.stats().adopting === 0);
  return adopter;
}

/** The page goes into the back/forward cache (`pagehide` with `persisted`). */
function cache(sdk) {
  const e = new Event('pagehide');
  Object.defineProperty(e, 'persisted', { value: true });
  pages.get(sdk).window.dispatchEvent(e);
}

/** The page is shown again from the cache (`pageshow` with `persisted`). */
function restore(sdk) {
  const e = new Event('pageshow');
  Object.defineProperty(e, 'persisted', { value: true });
  pages.get(sdk).window.dispatchEvent(e);
}

/** Longer than taking a slot back takes (`CONFIRM_MS` without Web Locks). */
const claimed = () => new Promise((resolve) => setTimeout(resolve, 150));

/** Records `n` impressions the page qualified, on a new page view. */
function record(sdk, n, from = 0) {
  const pv = sdk.startPageView('home');
  assert.equal(pv.refused, null);
  const first = clock.mono();
  clock.t += 2_000;
  for (let i = from; i < from + n; i++) {
    const o = sdk.recordImpression(pv, { itemId: `title:${i}`, row: 0, column: i, firstVisibleAt: first, visibleMs: 1_500, maxVisibleFraction: 1 });
    assert.equal(o.kind, 'accepted');
  }
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

async function eventually(what, check, ms = 5_000) {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const keys = (prefix) => [...globalThis.localStorage.map.keys()].filter((k) => k.startsWith(prefix));

test('a duplicated tab (its sessionStorage copied) gets a slot and session of its own while the original lives', async () => {
  const session = new FakeStorage();
  const original = await tab({}, session);
  const copy = new FakeStorage();
  for (const [k, v] of session.map) copy.setItem(k, v);
  const duplicate = await tab({}, copy);
  assert.notEqual(duplicate.stats().session_id, original.stats().session_id);
  assert.notEqual(copy.getItem('sightline:com.example.web/slot'), session.getItem('sightline:com.example.web/slot'));
});

test('a reload resumes its own slot: the heartbeat it let go at close is taken back', async () => {
  const session = new FakeStorage();
  const first = await tab({}, session);
  record(first, 2);
  first.flush();
  const id = first.stats().session_id;
  first.close();
  const reloaded = await tab({}, session);
  assert.equal(reloaded.stats().session_id, id);
  assert.equal(reloaded.stats().adopted, 0);
});

test('without Web Locks, a crashed tab is adopted once its heartbeat is stale, never while it is fresh', async () => {
  const crashed = await tab();
  record(crashed, 3);
  crashed.flush();
  const session = crashed.stats().session_id;
  // The tab dies here: its storage as it was, its heartbeat as last written.
  const left = new Map(globalThis.localStorage.map);
  crashed.close();
  globalThis.localStorage.map = left;

  const capture = new Capture();
  const next = await tab({ transport: capture.transport() });
  await new Promise((resolve) => setTimeout(resolve, 1_200));
  assert.equal(next.stats().adopted, 0, 'a fresh heartbeat is a live tab');
  clock.t += STALE_MS;
  await eventually('the stale slot adopted and sent', () => next.stats().adopted === 1 && next.stats().adopting === 0);
  assert.deepEqual(capture.impressions.map((i) => [i.session_id, i.seq]), [[session, 1], [session, 2], [session, 3]]);
  capture.assertAccounted();
  const own = slotOf();
  assert.deepEqual(
    keys('sightline:com.example.web/').filter((k) => !k.startsWith(`sightline:com.example.web/${own}/`) && k !== `sightline:com.example.web/owner/${own}`),
    [],
    'the adopted slot is removed once sent',
  );
});

/** The slot id a tab keeps in its sessionStorage. */
function slotOf() {
  return globalThis.sessionStorage.getItem('sightline:com.example.web/slot');
}

test('a tab closed with its queue unsent is adopted by the next tab at once', async () => {
  const closed = await tab();
  record(closed, 2);
  closed.flush();
  closed.close();
  const capture = new Capture();
  const next = await tab({ transport: capture.transport() });
  await eventually('adopted and sent', () => next.stats().adopted === 1 && next.stats().adopting === 0);
  assert.equal(capture.impressions.length, 2);
  capture.assertAccounted();
});

test('another app on the same origin never adopts the queue', async () => {
  const a = await tab({ appId: 'com.example.a' });
  record(a, 2);
  a.flush();
  a.close();
  const other = await tab({ appId: 'com.example.b' });
  await new Promise((resolve) => setTimeout(resolve, 1_200));
  assert.equal(other.stats().adopted, 0);
  assert.ok(keys('sightline:com.example.a/').length > 0, "a's queue is still stored");
  const capture = new Capture();
  const same = await tab({ appId: 'com.example.a', transport: capture.transport() });
  await eventually('adopted by its own app', () => same.stats().adopted === 1 && same.stats().adopting === 0);
  assert.equal(capture.impressions.length, 2);
});

test('a quota error mid-visit is reported; what the page held only in memory and never sent is counted by the next page', async () => {
  globalThis.localStorage = new FakeStorage(3_000);
  const errors = [];
  const full = await tab({ onError: (e) => errors.push(String(e)) });
  assert.deepEqual(errors, []);
  record(full, 30);
  full.flush();
  assert.equal(full.stats().storage, 'memory');
  await settle();
  assert.deepEqual(errors, ['Error: sightline: storage failed (QuotaExceededError), queue kept in memory']);
  const pending = full.stats().issued - full.stats().delivered;
  assert.ok(pending > 0);
  full.close();

  const nextErrors = [];
  const next = await tab({ onError: (e) => nextErrors.push(String(e)) });
  await settle();
  assert.equal(next.stats().unsent_by_closed_pages, pending);
  assert.deepEqual(nextErrors, [`Error: sightline: ${pending} impressions of closed pages were kept only in memory and may be lost`]);
  const after = await tab();
  assert.equal(after.stats().unsent_by_closed_pages, 0, 'each loss is counted once');
});

test('blocked storage: the SDK runs in memory, counts and reports it, and delivers', async () => {
  Object.defineProperty(globalThis, 'localStorage', {
    configurable: true,
    get() {
      throw new DOMException('The user denied permission to access the database.', 'SecurityError');
    },
  });
  const errors = [];
  const capture = new Capture();
  const sdk = await tab({ transport: capture.transport(), onError: (e) => errors.push(String(e)) });
  record(sdk, 2);
  sdk.flush();
  await settle();
  const stats = sdk.stats();
  assert.deepEqual([stats.storage, stats.storage_fallbacks, stats.delivered], ['memory', 1, 2]);
  assert.deepEqual(errors, ['Error: sightline: storage unavailable (unavailable)']);
  assert.equal(capture.impressions.length, 2);
});

test('a row or column that is not a whole number is refused by the position rule and counted', async () => {
  const sdk = await tab();
  const pv = sdk.startPageView('home');
  clock.t += 2_000;
  const bad = [Number.NaN, -1, 1.5, 2 ** 32, Infinity];
  for (const row of bad) {
    const o = sdk.recordImpression(pv, { itemId: 'title:1', row, column: 0, firstVisibleAt: 0, visibleMs: 1_500, maxVisibleFraction: 1 });
    assert.deepEqual(o, { kind: 'refused', rule: 'position' }, `row ${row}`);
  }
  assert.equal(sdk.visibility({ pageView: pv.id, itemId: 'title:2', row: 0, column: Number.NaN }, 1), 'position');
  assert.equal(sdk.focus({ pageView: pv.id, itemId: 'title:2', row: -3, column: 0 }, true), 'position');
  assert.equal(sdk.stats().invalid_by_rule.position, bad.length + 2);
  assert.equal(sdk.stats().recorded, 0);
});

test('a page-view id that is not a whole number names no page view: refused, never rounded to one', async () => {
  const sdk = await tab();
  const pv = sdk.startPageView('home');
  assert.equal(pv.id, 1);
  clock.t += 2_000;
  for (const id of [1.7, 0.5, Number.NaN, -1]) {
    const o = sdk.recordImpression(id, { itemId: 'title:1', row: 0, column: 0, firstVisibleAt: 0, visibleMs: 1_500, maxVisibleFraction: 1 });
    assert.deepEqual(o, { kind: 'refused', rule: 'unknown_page_view' }, `page view ${id}`);
  }
  assert.equal(sdk.stats().recorded, 0);
});

test('once closed, inputs answer unavailable and stats keep the final counters', async () => {
  const capture = new Capture();
  const sdk = await tab({ transport: capture.transport() });
  record(sdk, 2);
  sdk.flush();
  await settle();
  sdk.close();
  assert.deepEqual(sdk.startPageView('home'), { id: 0, refused: 'unavailable' });
  const o = sdk.recordImpression(1, { itemId: 'title:9', row: 0, column: 0, firstVisibleAt: 0, visibleMs: 1_500, maxVisibleFraction: 1 });
  assert.deepEqual(o, { kind: 'unavailable' });
  const stats = sdk.stats();
  assert.deepEqual([stats.state, stats.delivered, stats.recorded], ['closed', 2, 2]);
  assert.match(stats.session_id, /./);
});

test('adoptScanMs outside its bounds is refused, naming it', async () => {
  for (const adoptScanMs of [0, 999, Number.NaN, 3_600_001]) {
    await assert.rejects(start({ ...base, adoptScanMs }), /adoptScanMs: expected 1000 to 3600000 ms/);
  }
});

/** The owner mark of the slot `sdk`'s tab keeps in its sessionStorage now. */
function markOf(session) {
  const id = session.getItem('sightline:com.example.web/slot');
  return [id, globalThis.localStorage.getItem(`sightline:com.example.web/owner/${id}`)];
}

test('a page back from the back/forward cache whose slot nobody took goes on in its own session', async () => {
  const capture = new Capture();
  const page = await tab({ transport: capture.transport() });
  record(page, 2);
  const session = page.stats().session_id;
  cache(page);
  await settle();
  assert.equal(capture.impressions.length, 2, 'the batch sent as the page went');
  const other = await tab();
  await new Promise((resolve) => setTimeout(resolve, 1_200));
  assert.equal(other.stats().adopted, 0, 'a cached page keeps its slot');
  restore(page);
  await claimed();
  record(page, 1, 2);
  page.flush();
  await settle();
  assert.deepEqual(capture.impressions.map((i) => [i.session_id, i.seq]), [[session, 1], [session, 2], [session, 3]]);
  assert.equal(page.stats().slot_moves, 0);
});

test('a page away past AWAY_STALE_MS is adopted; back, it goes on in a new session, is told, and old page views are never taken for new ones', async () => {
  const errors = [];
  const page = await tab({ onError: (e) => errors.push(String(e)) });
  const old = page.startPageView('home');
  record(page, 2);
  page.flush();
  const session = page.stats().session_id;
  cache(page);
  clock.t += AWAY_STALE_MS;
  const capture = new Capture();
  const adopter = await tab({ transport: capture.transport() });
  await eventually('adopted and sent', () => adopter.stats().adopted === 1 && adopter.stats().adopting === 0);
  assert.deepEqual(capture.impressions.map((i) => i.session_id), [session, session]);

  restore(page);
  await eventually('a new slot', () => page.stats().slot_moves === 1);
  await settle();
  assert.notEqual(page.stats().session_id, session);
  assert.match(errors.at(-1), /another tab took over this tab's queue while the page was away/);
  const stale = page.recordImpression(old, { itemId: 'title:9', row: 0, column: 0, firstVisibleAt: clock.mono(), visibleMs: 1_500, maxVisibleFraction: 1 });
  assert.deepEqual(stale, { kind: 'refused', rule: 'unknown_page_view' });
  const fresh = page.startPageView('home');
  assert.ok(fresh.id > old.id + 1, `a new id (${fresh.id}) past the old ones`);
  clock.t += 2_000;
  const o = page.recordImpression(fresh, { itemId: 'title:9', row: 0, column: 0, firstVisibleAt: clock.mono() - 1_600, visibleMs: 1_500, maxVisibleFraction: 1 });
  assert.equal(o.kind, 'accepted');
});

test('a pagehide that comes while the page is being shown again leaves it away', async () => {
  const session = new FakeStorage();
  const page = await tab({}, session);
  cache(page);
  restore(page);
  cache(page);
  await claimed();
  const [id, mark] = markOf(session);
  assert.match(mark, /^[0-9a-f]{16} a\d+$/, `slot ${id} let go as away, not held`);
  restore(page);
  await claimed();
  assert.match(markOf(session)[1], /^[0-9a-f]{16} \d+$/, 'held again, by a heartbeat');
});

test('close() while the page is being shown again lets its slot go', async () => {
  const session = new FakeStorage();
  const page = await tab({}, session);
  cache(page);
  restore(page);
  page.close();
  await claimed();
  assert.equal(markOf(session)[1], null, 'no mark left: the slot is free');
});

test('start() with a bad setting throws before it takes a slot, and one the core refuses lets it go', async () => {
  const session = new FakeStorage();
  const first = await tab({}, session);
  record(first, 1);
  const id = first.stats().session_id;
  first.close();
  const before = new Map(globalThis.localStorage.map);
  await assert.rejects(tab({ maxAttempts: 1.5 }, session), /max_attempts: expected a whole number/);
  assert.deepEqual(globalThis.localStorage.map, before, 'nothing written');
  const refused = new FakeStorage();
  await assert.rejects(tab({ appId: '' }, refused), /app_id is not a well-formed id/);
  const taken = refused.getItem('sightline:/slot');
  assert.match(taken, /^[0-9a-f]{16}$/, 'it took a slot');
  assert.equal(globalThis.localStorage.getItem(`sightline:/owner/${taken}`), null, 'and let it go');
  const next = await tab({}, session);
  assert.equal(next.stats().session_id, id, 'the tab resumes its slot');
});

test("an onError that calls close() does not turn the module off", async () => {
  globalThis.localStorage = new FakeStorage(3_000);
  let sdk;
  sdk = await tab({ onError: () => sdk.close() });
  record(sdk, 30);
  sdk.flush();
  await settle();
  assert.equal(sdk.stats().state, 'closed');
  const next = await tab({ storage: 'memory' });
  assert.equal(next.stats().state, 'running');
  record(next, 1);
});

test('without Web Locks, a tab whose heartbeat stalled and was taken over writes nothing more there and goes on in a new slot', async () => {
  const errors = [];
  const session = new FakeStorage();
  const stalled = await tab({ onError: (e) => errors.push(String(e)) }, session);
  record(stalled, 2);
  stalled.flush();
  await settle();
  const [oldSlot] = markOf(session);
  clock.t += STALE_MS;
  const capture = new Capture();
  await adopterOf(1, capture);
  assert.equal(capture.impressions.length, 2);
  assert.deepEqual(keys(`sightline:com.example.web/${oldSlot}/`), []);

  // The stalled tab wakes: its next input finds the slot taken (unless a timer found it
  // first) and is refused, never taken into a logger that can store nothing.
  const first = stalled.startPageView('home');
  assert.ok(first.refused === 'unavailable' || stalled.stats().slot_moves === 1, `refused: ${first.refused}`);
  await eventually('a new slot', () => stalled.stats().slot_moves === 1);
  const next = stalled.startPageView('home');
  assert.equal(next.refused, null);
  assert.ok(next.id > Math.max(first.id, 1), `a new page view's id (${next.id}) is no old one's`);
  assert.deepEqual(keys(`sightline:com.example.web/${oldSlot}/`), [], 'nothing written to the old slot');
  record(stalled, 1);
  stalled.flush();
  assert.deepEqual(keys(`sightline:com.example.web/${oldSlot}/`), [], 'logging goes on elsewhere');
  assert.equal(stalled.stats().recorded, 1, 'in the new slot');
  assert.match(errors.join('\n'), /another tab took over this tab's queue/);
});

test('hidden and shown again quickly, twice, the page ends up present: its slot held, its queue stored and sent', async () => {
  const session = new FakeStorage();
  const capture = new Capture();
  const page = await tab({ transport: capture.transport() }, session);
  cache(page);
  restore(page);
  cache(page);
  restore(page);
  await claimed();
  assert.match(markOf(session)[1], /^[0-9a-f]{16} \d+$/, 'held by a heartbeat, not let go');
  record(page, 1);
  page.flush();
  await settle();
  assert.equal(capture.impressions.length, 1);
});

test('a later load of the page in the same tab resumes the slot its cached page let go', async () => {
  const session = new FakeStorage();
  const cached = await tab({}, session);
  record(cached, 1);
  const id = cached.stats().session_id;
  cache(cached);
  const reloaded = await tab({}, session);
  assert.equal(reloaded.stats().session_id, id, 'the same slot and session');
  assert.equal(reloaded.stats().adopted, 0);
});

test('a frozen tab that is then closed frees its slot at once', async () => {
  const page = await tab();
  record(page, 1);
  page.flush();
  await settle();
  pages.get(page).document.dispatchEvent(new Event('freeze'));
  const unload = new Event('pagehide');
  Object.defineProperty(unload, 'persisted', { value: false });
  pages.get(page).window.dispatchEvent(unload);
  const capture = new Capture();
  await adopterOf(1, capture);
  assert.equal(capture.impressions.length, 1);
});
