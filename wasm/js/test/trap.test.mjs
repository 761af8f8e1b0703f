// A trap in the module (the core panicked: a bug) turns off every logger the module holds,
// a tab's own and the ones it adopted, since the module's memory may be inconsistent. Its
// own file: the module stays off for the rest of the process.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import './wasm.mjs';
import { Logger, coreConfig } from '../dist/core.js';
import { Host } from '../dist/host.js';
import { SlotStore } from '../dist/store.js';
import { FakeClock } from './fakes.mjs';

const options = { appId: 'com.example.web', appVersion: '1.0.0', appKey: 'key-1' };

function host(onError) {
  const clock = new FakeClock();
  const store = new SlotStore(null, `sightline/${Math.random()}/`);
  const logger = Logger.resume(coreConfig(options), store.stored(), clock.mono(), clock.wall());
  const h = new Host(logger, store, 'https://collect.example', () => Promise.resolve({ status: 200, retryAfter: null }), clock, onError);
  h.drain();
  return h;
}

test('an input the glue throws for is counted and reported; the SDK goes on', () => {
  const errors = [];
  const h = host((e) => errors.push(e));
  assert.equal(h.input('fallback', () => {
    throw new TypeError('Cannot convert a BigInt value to a number');
  }), 'fallback');
  assert.deepEqual([h.counters.input_errors, h.counters.traps, h.state], [1, 0, 'running']);
  assert.equal(errors.length, 1);
  assert.equal(h.input(0, (l, m, w) => l.start_page_view('home', null, null, null, m, w)), 1);
  h.close();
});

test('a trap turns off every logger of the module, is reported even when the handler throws, and stats keep the last counters', () => {
  const own = host(() => {
    throw new Error('the page handler is broken too');
  });
  const adoptedErrors = [];
  const adopted = host((e) => adoptedErrors.push(e));
  assert.equal(adopted.input(0, (l, m, w) => l.start_page_view('home', null, null, null, m, w)), 1);
  assert.equal(adopted.stats().recorded, 0);
  const before = adopted.stats();

  assert.equal(own.input('fallback', () => {
    throw new WebAssembly.RuntimeError('unreachable');
  }), 'fallback');
  assert.deepEqual([own.counters.traps, own.state, adopted.state], [1, 'trapped', 'trapped']);
  let called = false;
  assert.equal(adopted.input('off', () => {
    called = true;
    return 'on';
  }), 'off');
  assert.equal(called, false, 'the other logger is never called again');
  assert.deepEqual(adopted.stats(), before, 'the last counters read');
  assert.equal(own.stats(), null, 'never read before the trap');
  own.close();
  adopted.close();
});
