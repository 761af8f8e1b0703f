// The SDK in real headless Chromium: a page served from loopback, its uploads reaching the
// real collector, each spec asserting exact counts there (nothing missing, nothing twice).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { beforeEach, test } from 'node:test';

import { eventually, rig } from './harness.mjs';

const env = rig();

beforeEach(async () => {
  await env.collector.reset();
});

/** A fresh browser profile (its own storage) with an 800x600 viewport. */
function context() {
  return env.browser.newContext({ viewport: { width: 800, height: 600 } });
}

async function open(ctx, query = '') {
  const page = await ctx.newPage();
  await page.goto(`${env.site.url}/grid.html${query}`);
  await page.waitForFunction(() => window.page !== undefined);
  return page;
}

/** The collector's good rows as `row-column` names, sorted. */
async function tiles() {
  const rows = await env.collector.good();
  return rows.map((r) => `${r.row}-${r.column}`).sort();
}

function names(rows, columns) {
  const out = [];
  for (const r of rows) for (let c = 0; c < columns; c++) out.push(`${r}-${c}`);
  return out.sort();
}

/** Every session at the collector: delivered `n` in total, no duplicates, none missing. */
async function accounted(expected) {
  const sessions = Object.values(await env.collector.sessions());
  const sum = (k) => sessions.reduce((n, s) => n + s[k], 0);
  assert.deepEqual(
    { delivered: sum('delivered'), duplicates: sum('duplicates'), missing: sum('missing'), rejected: sum('rejected') },
    { delivered: expected, duplicates: 0, missing: 0, rejected: 0 },
  );
  return sessions;
}

test('scrolling logs exactly the rows that stayed on screen long enough', async () => {
  const ctx = await context();
  const page = await open(ctx);
  await page.evaluate(() => window.page.grid(10, 5));
  await page.waitForTimeout(1_500);
  await page.evaluate(() => window.scrollTo(0, 1_000));
  await page.waitForTimeout(1_500);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForTimeout(200);
  await page.evaluate(() => window.page.flush());
  const expected = names([0, 1, 2, 5, 6, 7], 5);
  await eventually('30 impressions', async () => (await env.collector.good()).length >= expected.length);
  assert.deepEqual(await tiles(), expected);
  await accounted(30);
  await ctx.close();
});

test('hiding the tab pauses the minimum time and closes the batch, which is sent while hidden', async () => {
  const ctx = await context();
  const page = await open(ctx);
  await page.evaluate(() => window.page.grid(1, 2));
  await page.waitForTimeout(1_300);
  await page.evaluate(() => window.page.setHidden(true));
  await eventually('the batch closed by hiding', async () => (await env.collector.good()).length >= 2);
  assert.deepEqual(await tiles(), ['0-0', '0-1']);

  // A tile visible 0.6 s before hiding and 0.6 s after: the timers pause while hidden, so
  // it qualifies on 1.2 s of visible time, the 1.5 s hidden not counted.
  await page.evaluate(() => window.page.setHidden(false));
  await page.evaluate(() => window.page.grid(1, 1, 'detail'));
  await page.waitForTimeout(600);
  await page.evaluate(() => window.page.setHidden(true));
  await page.waitForTimeout(1_500);
  await page.evaluate(() => window.page.setHidden(false));
  await page.waitForTimeout(600);
  await page.evaluate(() => window.page.end());
  await eventually('the detail tile', async () => (await env.collector.good()).length >= 3);
  const detail = (await env.collector.good()).find((r) => r.page === 'detail');
  assert.ok(detail.visible_ms >= 1_000 && detail.visible_ms < 1_700, `visible ${detail.visible_ms} ms, hidden time excluded`);
  await accounted(3);
  await ctx.close();
});

test('closing the tab sends what qualified with a keepalive request', async () => {
  const ctx = await context();
  const page = await open(ctx);
  await page.evaluate(() => window.page.grid(2, 5));
  await page.waitForTimeout(1_500);
  await page.close({ runBeforeUnload: true });
  await eventually('the beacon', async () => (await env.collector.good()).length >= 10);
  assert.deepEqual(await tiles(), names([0, 1], 5));
  await accounted(10);
  await ctx.close();
});

test('a reload resumes the stored queue and sends it once', async () => {
  const ctx = await context();
  const page = await open(ctx);
  // The collector is down for the first page: its batch stays stored.
  await env.collector.faults({ status: 503, remaining: 100 });
  await page.evaluate(() => window.page.grid(1, 4));
  await page.waitForTimeout(1_500);
  await page.evaluate(() => window.page.end());
  await eventually('a refused attempt', async () => (await page.evaluate(() => window.page.stats().uploads)) >= 1);
  const session = await page.evaluate(() => window.page.stats().session_id);
  await env.collector.faults({ status: 0, remaining: 0 });
  await page.reload();
  await page.waitForFunction(() => window.page !== undefined);
  await eventually('the resumed batch', async () => (await env.collector.good()).length >= 4, 15_000);
  assert.deepEqual(await tiles(), names([0], 4));
  const [only] = await accounted(4);
  assert.ok(only !== undefined);
  assert.equal(await page.evaluate(() => window.page.stats().session_id), session, 'the tab keeps its session');
  await ctx.close();
});

test('offline, the batch waits; back online it is delivered once', async () => {
  const ctx = await context();
  const page = await open(ctx);
  await ctx.setOffline(true);
  await page.evaluate(() => window.page.grid(1, 3));
  await page.waitForTimeout(1_500);
  await page.evaluate(() => window.page.end());
  await eventually('a failed attempt', async () => (await page.evaluate(() => window.page.stats().retries)) >= 1);
  assert.equal((await env.collector.good()).length, 0);
  await ctx.setOffline(false);
  await eventually('delivery after the network is back', async () => (await env.collector.good()).length >= 3, 15_000);
  assert.deepEqual(await tiles(), names([0], 3));
  await accounted(3);
  assert.equal(await page.evaluate(() => window.page.stats().delivered), 3);
  await ctx.close();
});

test('two tabs log two sessions; a tab adopts the queue of one that closed, and a batch sent twice is absorbed', async () => {
  const ctx = await context();
  const a = await open(ctx);
  const b = await open(ctx);
  await a.bringToFront();
  await a.evaluate(() => window.page.grid(1, 2));
  await a.waitForTimeout(1_300);
  // A's batch is stored by the collector, but every answer is lost: A keeps it.
  await env.collector.faults({ status: 503, remaining: 100, after_ingest: true });
  await a.close({ runBeforeUnload: true });
  await eventually('the stored first copy', async () => (await env.collector.good()).length >= 2);
  await env.collector.faults({ status: 0, remaining: 0 });

  await b.bringToFront();
  await b.evaluate(() => window.page.grid(1, 3));
  await b.waitForTimeout(1_300);
  await b.evaluate(() => window.page.end());
  // A third tab starts, finds A's slot unlocked and sends A's queue again.
  const c = await open(ctx);
  await eventually('A adopted and settled', async () => {
    const s = await c.evaluate(() => window.page.stats());
    return s.adopted === 1 && s.adopting === 0;
  }, 15_000);
  await eventually('B delivered', async () => (await env.collector.good()).length >= 5);
  const sessions = Object.values(await env.collector.sessions());
  assert.equal(sessions.length, 2, 'A and B; C logged nothing');
  const delivered = sessions.map((s) => s.delivered).sort();
  assert.deepEqual(delivered, [2, 3]);
  const duplicates = sessions.reduce((n, s) => n + s.duplicates, 0);
  assert.ok(duplicates >= 2, `A's batch arrived again and was absorbed (duplicates ${duplicates})`);
  assert.equal(sessions.reduce((n, s) => n + s.missing, 0), 0);
  assert.equal((await env.collector.good()).length, 5, 'no impression stored twice');
  await ctx.close();
});

test('a tab that stays open adopts the queue of a tab closed after it started', async () => {
  const ctx = await context();
  const stays = await open(ctx, '?scan=1000');
  const closes = await open(ctx);
  await closes.evaluate(() => window.page.grid(1, 2));
  await closes.waitForTimeout(1_300);
  await env.collector.faults({ status: 503, remaining: 100 });
  await closes.close({ runBeforeUnload: true });
  await env.collector.faults({ status: 0, remaining: 0 });
  await eventually('adopted by the open tab', async () => {
    const s = await stays.evaluate(() => window.page.stats());
    return s.adopted === 1 && s.adopting === 0;
  }, 15_000);
  assert.deepEqual(await tiles(), ['0-0', '0-1'], 'each impression stored once');
  const [session] = Object.values(await env.collector.sessions());
  assert.equal(session.delivered, 2);
  assert.equal(session.missing, 0);
  // The closing tab's keepalive upload may land after the fault is lifted (its answer lost
  // with the page): then the adopted copy arrives twice and is absorbed.
  assert.ok([0, 2].includes(session.duplicates), `duplicates ${session.duplicates}`);
  await ctx.close();
});

test('blocked storage: the SDK runs in memory, counts it and throws nothing at the page', async () => {
  const ctx = await context();
  await ctx.addInitScript(() => {
    // What Chromium and Safari do when the user blocks site data.
    Object.defineProperty(window, 'localStorage', {
      get() {
        throw new DOMException('The user denied permission to access the database.', 'SecurityError');
      },
    });
  });
  const page = await open(ctx);
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e));
  await page.evaluate(() => window.page.grid(1, 2));
  await page.waitForTimeout(1_300);
  await page.evaluate(() => window.page.end());
  await eventually('delivery from memory', async () => (await env.collector.good()).length >= 2);
  const stats = await page.evaluate(() => window.page.stats());
  assert.equal(stats.storage, 'memory');
  assert.deepEqual(await page.evaluate(() => window.page.errors), ['Error: sightline: storage unavailable (unavailable)']);
  assert.deepEqual(pageErrors, []);
  await accounted(2);
  await ctx.close();
});

test('an element removed from the page stops being tracked; its exposure ends there', async () => {
  const ctx = await context();
  const page = await open(ctx);
  await page.evaluate(() => window.page.grid(1, 3));
  await page.waitForTimeout(1_200);
  await page.evaluate(() => document.getElementById('tile-0-1').remove());
  await page.waitForFunction(() => window.page.stats().observed === 2);
  assert.equal(await page.evaluate(() => window.page.stats().recorded), 1, 'logged when it left');
  await page.waitForTimeout(400);
  await page.evaluate(() => window.page.end());
  await eventually('three impressions', async () => (await env.collector.good()).length >= 3);
  const removed = (await env.collector.good()).find((r) => r.column === 1);
  assert.ok(removed.visible_ms >= 1_000 && removed.visible_ms < 1_600, `visible ${removed.visible_ms} ms`);
  await accounted(3);
  await ctx.close();
});

test('TV web apps: focus moved by the remote is counted on the focused tile', async () => {
  const ctx = await context();
  const page = await open(ctx, '?tv');
  await page.evaluate(() => window.page.grid(1, 3));
  await page.focus('#tile-0-0');
  await page.waitForTimeout(1_200);
  await page.focus('#tile-0-1');
  await page.waitForTimeout(300);
  await page.evaluate(() => window.page.end());
  await eventually('three impressions', async () => (await env.collector.good()).length >= 3);
  const rows = await env.collector.good();
  assert.ok(rows.every((r) => r.platform === 'tv'));
  const focused = Object.fromEntries(rows.map((r) => [r.column, r.focused_ms]));
  assert.ok(focused[0] >= 1_000, `tile 0 focused ${focused[0]} ms`);
  assert.ok(focused[1] > 0 && focused[1] < 1_000, `tile 1 focused ${focused[1]} ms`);
  assert.equal(focused[2], 0);
  await ctx.close();
});

test('opting out with purge sends nothing queued; opting in logs again', async () => {
  const ctx = await context();
  const page = await open(ctx);
  await page.evaluate(() => window.page.grid(1, 2));
  await page.waitForTimeout(1_300);
  await page.evaluate(() => window.page.sightline.unobserve(document.getElementById('tile-0-0')));
  await page.evaluate(() => window.page.sightline.optOut({ purge: true }));
  await page.evaluate(() => window.page.flush());
  assert.equal(await page.evaluate(() => window.page.sightline.enabled), false);
  await page.evaluate(() => window.page.sightline.optIn());
  await page.evaluate(() => window.page.grid(1, 1, 'after'));
  await page.waitForTimeout(1_300);
  await page.evaluate(() => window.page.end());
  await eventually('the impression after opting in', async () => (await env.collector.good()).length >= 1);
  await page.waitForTimeout(300);
  const rows = await env.collector.good();
  assert.deepEqual(rows.map((r) => r.page), ['after']);
  const stats = await page.evaluate(() => window.page.stats());
  assert.equal(stats.dropped.purged, 1);
  await ctx.close();
});

/** README.md's web quickstart, as a module a page can run against this env.collector. */
function quickstart() {
  const readme = readFileSync(new URL('../../../../README.md', import.meta.url), 'utf8');
  const m = /<!-- quickstart:web -->\s*```js\n([\s\S]*?)```/.exec(readme);
  assert.ok(m !== null, 'README.md has a web quickstart');
  const code = m[1];
  assert.ok(code.includes("'https://collect.example.com'") && code.includes("'your-collector-key'"));
  return code.replace("'https://collect.example.com'", 'location.origin').replace("'your-collector-key'", "'key-1'");
}

test("README's web quickstart logs the tiles a visitor saw", async () => {
  const ctx = await context();
  const page = await ctx.newPage();
  const tilesHtml = [0, 1, 2]
    .map((c) => `<div class="tile" data-item="title:${c}" data-row="0" data-column="${c}" style="height:150px">${c}</div>`)
    .join('');
  const html = `<!doctype html><script type="importmap">{"imports":{"@sightline/web":"/sdk/index.js"}}</script>
<body>${tilesHtml}<script type="module">${quickstart()}\nwindow.started = true;</script></body>`;
  await page.route(`${env.site.url}/quickstart.html`, (route) => route.fulfill({ body: html, contentType: 'text/html' }));
  await page.goto(`${env.site.url}/quickstart.html`);
  await page.waitForFunction(() => window.started === true);
  await page.waitForTimeout(1_300);
  await page.close({ runBeforeUnload: true });
  await eventually('the quickstart impressions', async () => (await env.collector.good()).length >= 3);
  const rows = await env.collector.good();
  assert.deepEqual(rows.map((r) => r.item_id).sort(), ['title:0', 'title:1', 'title:2']);
  assert.ok(rows.every((r) => r.request_id === 'req-123' && r.platform === 'web'));
  await accounted(3);
  await ctx.close();
});

test('the example page (examples/web) logs exactly the tiles its overlay marks logged', async () => {
  const ctx = await context();
  const page = await ctx.newPage();
  await page.goto(`${env.site.url}/example/`);
  await page.waitForFunction(() => window.sightline !== undefined);
  await page.waitForTimeout(1_300);
  await page.evaluate(() => window.scrollTo(0, 2_000));
  await page.waitForTimeout(1_300);
  await page.evaluate(() => {
    window.sightline.endPageView(1);
    window.sightline.flush();
  });
  const logged = await page.evaluate(() =>
    [...document.querySelectorAll('[data-sightline="logged"]')].map((t) => t.dataset.item).sort(),
  );
  assert.ok(logged.length >= 12, `the first screen and the one scrolled to (${logged.length})`);
  await eventually('the example impressions', async () => (await env.collector.good()).length >= logged.length);
  assert.deepEqual((await env.collector.good()).map((r) => r.item_id).sort(), logged);
  await accounted(logged.length);
  await ctx.close();
});

/** Hides Web Locks from the context's pages, as in browsers without them (older TVs). */
async function withoutLocks(ctx) {
  await ctx.addInitScript(() => {
    Object.defineProperty(Navigator.prototype, 'locks', { configurable: true, get: () => undefined });
  });
}

for (const locks of [true, false]) {
  const how = locks ? 'with Web Locks' : 'without Web Locks (a heartbeat)';
  test(`a duplicated tab (its sessionStorage copied) logs a session of its own, ${how}`, async () => {
    const ctx = await context();
    if (!locks) await withoutLocks(ctx);
    const a = await open(ctx);
    const [b] = await Promise.all([ctx.waitForEvent('page'), a.evaluate(() => window.open(location.href))]);
    await b.waitForFunction(() => window.page !== undefined);
    assert.equal(await b.evaluate(() => navigator.locks === undefined), !locks);
    assert.deepEqual(
      await b.evaluate(() => Object.keys(sessionStorage)),
      await a.evaluate(() => Object.keys(sessionStorage)),
      'the duplicate starts with a copy of the sessionStorage',
    );
    for (const p of [a, b]) await p.evaluate(() => window.page.grid(1, 2));
    await a.waitForTimeout(1_300);
    for (const p of [a, b]) await p.evaluate(() => window.page.end());
    await eventually('both tabs delivered', async () => (await env.collector.good()).length >= 4);
    const sessions = await accounted(4);
    assert.deepEqual(sessions.map((s) => s.delivered), [2, 2]);
    await ctx.close();
  });
}

test('without Web Locks, a tab closed with its queue unsent is adopted by the next tab', async () => {
  const ctx = await context();
  await withoutLocks(ctx);
  const closes = await open(ctx);
  await closes.evaluate(() => window.page.grid(1, 2));
  await closes.waitForTimeout(1_300);
  await env.collector.faults({ status: 503, remaining: 100 });
  await closes.close({ runBeforeUnload: true });
  await env.collector.faults({ status: 0, remaining: 0 });
  const next = await open(ctx);
  await eventually('adopted and sent', async () => {
    const s = await next.evaluate(() => window.page.stats());
    return s.adopted === 1 && s.adopting === 0;
  }, 15_000);
  assert.deepEqual(await tiles(), ['0-0', '0-1'], 'each impression stored once');
  const [session] = Object.values(await env.collector.sessions());
  assert.deepEqual([session.delivered, session.missing], [2, 0]);
  // As above: the closing tab's keepalive upload may land after the fault is lifted.
  assert.ok([0, 2].includes(session.duplicates), `duplicates ${session.duplicates}`);
  await ctx.close();
});

/** Leaves `page` for another page of the site, then comes back through the history. */
async function awayAndBack(page, meanwhile) {
  await page.goto(`${env.site.url}/elsewhere.html`);
  await meanwhile();
  await page.goBack({ waitUntil: 'commit' });
  await page.waitForFunction(() => window.page?.shows.length === 2);
  return page.evaluate(() => window.page.shows);
}

/** The names of the Web Locks held on the site, asked from `page`. */
const heldLocks = (page) => page.evaluate(async () => (await navigator.locks.query()).held.map((l) => l.name));

test('a page in the back/forward cache lets its slot go, and takes it back when shown again', async () => {
  const ctx = await context();
  const page = await open(ctx);
  const witness = await ctx.newPage();
  await witness.goto(`${env.site.url}/elsewhere.html`);
  await page.evaluate(() => window.page.grid(1, 2));
  await page.waitForTimeout(1_300);
  const session = await page.evaluate(() => window.page.stats().session_id);
  const shows = await awayAndBack(page, async () => {
    await eventually('the batch sent at pagehide', async () => (await env.collector.good()).length >= 2);
    assert.deepEqual(await heldLocks(witness), [], 'no lock held while in the cache');
  });
  assert.deepEqual(shows, [false, true], 'restored from the back/forward cache');
  assert.equal((await heldLocks(witness)).length, 1, 'the slot is held again');
  await page.evaluate(() => window.page.grid(1, 1, 'after'));
  await page.waitForTimeout(1_300);
  await page.evaluate(() => window.page.end());
  await eventually('the impression after coming back', async () => (await env.collector.good()).length >= 3);
  await accounted(3);
  assert.deepEqual(Object.keys(await env.collector.sessions()), [session]);
  assert.equal(await page.evaluate(() => window.page.stats().session_id), session, 'the same slot and session');
  await ctx.close();
});

test('a page whose slot was adopted while it was in the back/forward cache goes on in a new slot, nothing twice', async () => {
  const ctx = await context();
  const page = await open(ctx);
  await page.evaluate(() => window.page.grid(1, 2));
  await page.waitForTimeout(1_300);
  const session = await page.evaluate(() => window.page.stats().session_id);
  await env.collector.faults({ status: 503, remaining: 100 });
  let adopter;
  const shows = await awayAndBack(page, async () => {
    await env.collector.faults({ status: 0, remaining: 0 });
    // Its clock past AWAY_STALE_MS (15 min): the cached page is taken to be gone for good.
    adopter = await open(ctx, '?scan=1000&shift=960000');
    await eventually('adopted and sent', async () => {
      const s = await adopter.evaluate(() => window.page.stats());
      return s.adopted === 1 && s.adopting === 0;
    }, 15_000);
  });
  assert.deepEqual(shows, [false, true]);
  await page.evaluate(() => window.page.grid(1, 1, 'after'));
  await page.waitForTimeout(1_300);
  await page.evaluate(() => window.page.end());
  await eventually('the impression in the new slot', async () => (await env.collector.good()).length >= 3);
  const now = await page.evaluate(() => window.page.stats().session_id);
  assert.notEqual(now, session, 'a new session in a new slot');
  assert.equal(await page.evaluate(() => window.page.stats().slot_moves), 1);
  assert.ok((await page.evaluate(() => window.page.errors)).some((e) => e.includes('another tab took over')), 'the page is told');
  const sessions = await accounted(3);
  assert.deepEqual(sessions.map((s) => s.delivered).sort(), [1, 2]);
  await ctx.close();
});
