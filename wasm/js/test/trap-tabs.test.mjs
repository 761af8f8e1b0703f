// A tab whose module trapped lets every slot it holds go, so the other tabs of the origin
// send what it cannot, and adopts nothing more. Its own file: the module stays off.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import './wasm.mjs';
import { start } from '../dist/index.js';
import { FakeClock, FakeStorage } from './fakes.mjs';

test('a tab whose module trapped lets its slot go and adopts no closed tab’s queue', async () => {
  const clock = new FakeClock(10_000);
  const storage = new FakeStorage();
  globalThis.localStorage = storage;
  globalThis.sessionStorage = new FakeStorage();
  const errors = [];
  const sdk = await start({
    endpoint: 'https://collect.example',
    appId: 'com.example.web',
    appVersion: '1.0.0',
    appKey: 'key-1',
    clock,
    adoptScanMs: 1_000,
    transport: () => Promise.resolve({ status: 0, retryAfter: null }),
    onError: (e) => errors.push(e),
  });
  const pv = sdk.startPageView('home');
  clock.t += 2_000;
  sdk.recordImpression(pv, { itemId: 'title:1', row: 0, column: 0, firstVisibleAt: 10_000, visibleMs: 1_500, maxVisibleFraction: 1 });
  sdk.flush();
  const slot = globalThis.sessionStorage.getItem('sightline:com.example.web/slot');
  const mark = `sightline:com.example.web/owner/${slot}`;
  assert.notEqual(storage.getItem(mark), null);

  // The module traps (reached through the runtime's host: no public call can make it).
  sdk.host.input(undefined, () => {
    throw new WebAssembly.RuntimeError('unreachable');
  });
  assert.equal(sdk.stats().state, 'trapped');
  assert.equal(storage.getItem(mark), null, 'the slot is free for other tabs');
  assert.ok([...storage.map.keys()].some((k) => k.startsWith(`sightline:com.example.web/${slot}/`)), 'its queue stays stored');

  // A closed tab's queue appears: a copy of this one under another slot id.
  const orphan = '0123456789abcdef';
  for (const [k, v] of [...storage.map]) {
    if (k.startsWith(`sightline:com.example.web/${slot}/`)) storage.setItem(k.replace(slot, orphan), v);
  }
  await new Promise((resolve) => setTimeout(resolve, 1_300));
  assert.equal(sdk.stats().adopted, 0);
  assert.equal(storage.getItem(`sightline:com.example.web/owner/${orphan}`), null, 'not taken');
  assert.equal(errors.length, 1, 'the trap, reported once');
  sdk.close();
});
